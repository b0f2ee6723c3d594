package pipeline

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"syscall"

	"gopkg.in/yaml.v3"

	"mpsearch/internal/atomicfile"
	"mpsearch/quant"
	"mpsearch/sensitivity"
)

// Summary is summary.json: stable keys that scripts rely on (DESIGN.md).
type Summary struct {
	Objective float64 `json:"objective"`
	Method    string  `json:"method"`
	Metric    string  `json:"metric"`
	// Quantizer is the weight rounding of every quantized model of the
	// job (quant.MethodRTN or quant.MethodGPTQ).
	Quantizer string `json:"quantizer"`
	// BiasCorrection: biases corrected for the rounding (--bias-correction).
	BiasCorrection bool `json:"bias_correction"`
	// Equalize: the weights were equalized across layers first (--equalize).
	Equalize bool `json:"equalize"`
	// ActCalib: how the activation ranges were chosen (--act-calib:
	// minmax, percentile[:P], mse or kl; quant.ActCalib.String).
	ActCalib  string                   `json:"act_calib"`
	Budgets   map[string]SummaryBudget `json:"budgets"`
	Predicted map[string]float64       `json:"predicted"`
	Accuracy  map[string]float64       `json:"accuracy,omitempty"`
	Measured  *SummaryMeasured         `json:"measured,omitempty"`
	Layers    []SummaryLayer           `json:"layers"`
	Plain     *SummaryCandidate        `json:"proposal,omitempty"`
	Uniform   []SummaryCandidate       `json:"uniform"`
	Verified  []SummaryCandidate       `json:"candidates,omitempty"`
	// Refinement is the path from the verified configuration to the
	// returned one (with verification).
	Refinement *SummaryRefinement `json:"refinement,omitempty"`
	// Front is the measured Pareto front: at each budget of the sweep, the
	// configuration search returns there; FrontCost its measurements.
	Front     []SummaryFrontPoint `json:"front,omitempty"`
	FrontCost *SummaryFrontCost   `json:"front_cost,omitempty"`
	Latency   []SummaryLatency    `json:"latency_check,omitempty"`
	// Export is model.qdq.onnx's size and opset (absent without a model).
	Export *SummaryExport `json:"export,omitempty"`
	// SearchInput says what the search made of the table's omega column
	// (sensitivity.SearchInput): objectives are sums of these values, the
	// layers' omega is the table's measured value.
	SearchInput *SummarySearchInput `json:"search_input,omitempty"`
}

// SummaryExport describes the exported model file: its size in bytes
// (the predicted size, predicted.size, counts the weights' bits only),
// its opset (21 when weights of 4 bits or fewer are stored as INT4), and
// why it is not opset 21 when such weights were stored as INT8.
type SummaryExport struct {
	File  string `json:"file"`
	Bytes int64  `json:"bytes"`
	Opset int64  `json:"opset"`
	Note  string `json:"note,omitempty"`
}

// SummarySearchInput is the rule that turned the table's signed values and
// standard errors into the ILP's input: cells within noise_k standard
// errors of zero priced at that bound (noise_cells), and cells raised to
// the value of a wider width (repaired_cells, the monotone repair).
type SummarySearchInput struct {
	NoiseK        float64 `json:"noise_k"`
	NoiseCells    int     `json:"noise_cells"`
	RepairedCells int     `json:"repaired_cells"`
}

// SummaryLatency is a configuration's predicted and measured latency
// (integer-only engine, batch 1, one thread, median).
type SummaryLatency struct {
	Label       string  `json:"label"`
	PredictedMs float64 `json:"predicted_ms"`
	MeasuredMs  float64 `json:"measured_ms"`
}

// SummaryRefinement is the refinement on measured loss: where it started
// (the verified configuration), each accepted step with its move, bits,
// costs and measured loss, the measurements made against the budget of
// --refine, and why it stopped.
type SummaryRefinement struct {
	Start       SummaryCandidate    `json:"start"`
	Steps       []SummaryRefineStep `json:"steps"`
	Evaluations int                 `json:"evaluations"`
	Budget      int                 `json:"budget"`
	Stopped     string              `json:"stopped"`
}

// SummaryRefineStep is one accepted move and the configuration it gave.
type SummaryRefineStep struct {
	Move string `json:"move"`
	SummaryCandidate
}

// SummaryFrontPoint is one point of the measured front: the swept
// resource's budget, the returned configuration (bits, costs, measured
// loss, accuracy) and the proxy's unverified optimum at the same budget.
type SummaryFrontPoint struct {
	Resource string  `json:"resource"`
	Budget   float64 `json:"budget"`
	SummaryCandidate
	Proxy SummaryCandidate `json:"proxy"`
}

// SummaryFrontCost is what the measured front cost: points swept, the
// refinement budget of each, and the held-out measurements made.
type SummaryFrontCost struct {
	Points         int `json:"points"`
	RefinePerPoint int `json:"refine_per_point"`
	Measurements   int `json:"measurements"`
}

// SummaryBudget is one budget and its use.
type SummaryBudget struct {
	Limit float64 `json:"limit"`
	Used  float64 `json:"used"`
}

// SummaryMeasured is the chosen configuration's measured held-out loss.
type SummaryMeasured struct {
	Loss  float64 `json:"loss"`
	Label string  `json:"label"`
}

// SummaryLayer is one layer of the chosen configuration.
type SummaryLayer struct {
	Name  string `json:"name"`
	Op    string `json:"op"`
	WBits int    `json:"w_bits"`
	// GroupSize is the number of inputs per weight scale (0: one scale per
	// output channel; quant.OptionCode).
	GroupSize int     `json:"group_size"`
	ABits     int     `json:"a_bits"`
	Omega     float64 `json:"omega"`
	LatencyMs float64 `json:"latency_ms,omitempty"`
	SizeBytes float64 `json:"size_bytes"`
	BOPs      float64 `json:"bops"`
}

// SummaryCandidate is a configuration with its proxy and measured values.
type SummaryCandidate struct {
	Label string `json:"label"`
	// Bits are option codes (quant.OptionCode: the width, or
	// group·100 + width for weights in groups); Options writes them as
	// "3" or "3g64" when some layer is in groups.
	Bits      []int              `json:"bits"`
	Options   []string           `json:"options,omitempty"`
	Objective float64            `json:"objective"`
	Costs     map[string]float64 `json:"costs"`
	Fits      bool               `json:"fits"`
	// ReferenceOnly: the configuration overrides a fixed layer (table bits
	// or --keep-ends), so it is a reference point, never a candidate.
	ReferenceOnly bool     `json:"reference_only,omitempty"`
	MeasuredLoss  *float64 `json:"measured_loss,omitempty"`
	Accuracy      *float64 `json:"accuracy,omitempty"`
}

func finitePtr(v float64) *float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return nil
	}
	return &v
}

func summaryCandidate(c *Candidate) SummaryCandidate {
	s := SummaryCandidate{Label: c.Label, Bits: c.Bits, Objective: c.Objective, Costs: c.Costs, Fits: c.Fits, ReferenceOnly: c.ReferenceOnly, MeasuredLoss: finitePtr(c.MeasuredLoss)}
	if quant.AnyGrouped(c.Bits) {
		for _, b := range c.Bits {
			s.Options = append(s.Options, quant.FormatOption(b))
		}
	}
	return s
}

// costKey maps a resource to its summary.json key.
var costKey = map[string]string{Latency: "latency_ms", Size: "size_bytes", BOPs: "bops"}

// NewSummary builds summary.json's content from a search result.
func NewSummary(res *SearchResult, method string) *Summary {
	s := &Summary{Objective: res.Chosen.Objective, Method: method, Metric: metricName(res.Table), Budgets: map[string]SummaryBudget{}, Predicted: map[string]float64{}}
	for r, lim := range res.Limits {
		s.Budgets[r] = SummaryBudget{Limit: lim, Used: res.Chosen.Costs[r]}
	}
	for r, v := range res.Chosen.Costs {
		s.Predicted[costKey[r]] = v
	}
	if !math.IsNaN(res.Chosen.MeasuredLoss) {
		s.Measured = &SummaryMeasured{Loss: res.Chosen.MeasuredLoss, Label: res.Chosen.Label}
	}
	ct := res.costs
	for i, l := range res.Table.Layers {
		b := res.Chosen.Bits[i]
		om, _ := l.OmegaAt(b)
		wb, g := quant.SplitOption(b)
		sl := SummaryLayer{Name: l.Name, Op: l.Op, WBits: wb, GroupSize: g, ABits: l.ActBits(), Omega: om, SizeBytes: ct[Size][i][b], BOPs: ct[BOPs][i][b]}
		s.Layers = append(s.Layers, sl)
	}
	p := summaryCandidate(res.Plain)
	s.Plain = &p
	for _, u := range res.Uniform {
		s.Uniform = append(s.Uniform, summaryCandidate(u))
	}
	for _, c := range res.Measured {
		s.Verified = append(s.Verified, summaryCandidate(c))
	}
	if in := res.Input; in != nil {
		s.SearchInput = &SummarySearchInput{NoiseK: sensitivity.NoiseK, NoiseCells: in.Noise, RepairedCells: in.Repaired}
	}
	for _, p := range res.MeasuredFront {
		s.Front = append(s.Front, SummaryFrontPoint{Resource: p.Resource, Budget: p.Budget, SummaryCandidate: summaryCandidate(p.Chosen), Proxy: summaryCandidate(p.Proxy)})
	}
	if fc := res.FrontCost; fc != nil {
		s.FrontCost = &SummaryFrontCost{Points: fc.Points, RefinePerPoint: fc.RefinePerPoint, Measurements: fc.Measurements}
	}
	if rf := res.Refinement; rf != nil {
		sr := &SummaryRefinement{Start: summaryCandidate(rf.Start), Steps: []SummaryRefineStep{}, Evaluations: rf.Evaluations, Budget: rf.Budget, Stopped: rf.Stopped}
		for i, c := range rf.Steps {
			sr.Steps = append(sr.Steps, SummaryRefineStep{Move: rf.Moves[i], SummaryCandidate: summaryCandidate(c)})
		}
		s.Refinement = sr
	}
	return s
}

// SetLayerLatency fills the per-layer predicted latency of the summary.
func (s *Summary) SetLayerLatency(ms []float64) {
	for i := range s.Layers {
		if i < len(ms) {
			s.Layers[i].LatencyMs = ms[i]
		}
	}
}

// Marshal returns the JSON with sorted keys and a trailing newline.
func (s *Summary) Marshal() ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	if err := enc.Encode(s); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// BitsFile is bits.yaml: the chosen configuration.
type BitsFile struct {
	Model  string `yaml:"model,omitempty"`
	Method string `yaml:"method"`
	// Quantizer is the weight rounding the configuration was chosen with
	// (absent in files of earlier versions: round to nearest); eval --bits
	// uses it unless --quantizer is given.
	Quantizer string `yaml:"quantizer,omitempty"`
	// BiasCorrection: the biases were corrected for the rounding
	// (quant.WithBiasCorrection; absent in files of earlier versions,
	// which had none); eval and run --bits follow it unless
	// --bias-correction is given.
	BiasCorrection bool `yaml:"bias_correction,omitempty"`
	// Equalize: the model was equalized across layers before quantizing
	// (--equalize; absent in files of earlier versions, which had none);
	// eval and run --bits follow it unless --equalize is given.
	Equalize bool `yaml:"equalize,omitempty"`
	// ActCalib is how the activation ranges were chosen (--act-calib;
	// absent in files of earlier versions: minmax); eval and run --bits
	// use it unless --act-calib is given.
	ActCalib string      `yaml:"act_calib,omitempty"`
	Layers   []BitsLayer `yaml:"layers"`
}

// BitsLayer is one layer of bits.yaml.
type BitsLayer struct {
	Name  string `yaml:"name"`
	WBits int    `yaml:"w_bits"`
	// GroupSize is the number of inputs per weight scale, 0 (absent) for
	// one scale per output channel.
	GroupSize int `yaml:"group_size,omitempty"`
	ABits     int `yaml:"a_bits"`
}

// NewBitsFile makes bits.yaml's content.
func NewBitsFile(res *SearchResult, model, method string) *BitsFile {
	f := &BitsFile{Model: model, Method: method}
	for i, l := range res.Table.Layers {
		b, g := quant.SplitOption(res.Chosen.Bits[i])
		f.Layers = append(f.Layers, BitsLayer{Name: l.Name, WBits: b, GroupSize: g, ABits: l.ActBits()})
	}
	return f
}

// Marshal returns the YAML.
func (f *BitsFile) Marshal() ([]byte, error) {
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(f); err != nil {
		return nil, err
	}
	return buf.Bytes(), enc.Close()
}

// ReadBitsFile reads bits.yaml (unknown fields are errors).
func ReadBitsFile(path string) (*BitsFile, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var f BitsFile
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	for _, l := range f.Layers {
		if l.WBits < 1 || l.WBits > 8 {
			return nil, fmt.Errorf("%s: layer %q: w_bits %d outside 1..8", path, l.Name, l.WBits)
		}
	}
	return &f, nil
}

// WriteFiles writes the named files into dir, all or nothing: every file
// is first written and synced into a new temporary directory (beside dir
// when dir does not exist yet, which is then renamed to dir in one step;
// inside dir otherwise, so the moves stay within one file system), and only
// when all were written are they renamed into place. A failure while
// writing leaves dir as it was.
func WriteFiles(dir string, files map[string][]byte, order []string) error {
	if err := CheckOutDir(dir); err != nil {
		return err
	}
	_, statErr := os.Stat(dir)
	fresh := os.IsNotExist(statErr)
	parent := dir
	if fresh {
		parent = filepath.Dir(filepath.Clean(dir))
		if err := os.MkdirAll(parent, 0o755); err != nil {
			return fmt.Errorf("--out %s: %w", dir, err)
		}
	}
	tmp, err := os.MkdirTemp(parent, ".mpsearch-out-*")
	if err != nil {
		return fmt.Errorf("--out %s: %w", dir, err)
	}
	defer os.RemoveAll(tmp)
	for _, name := range order {
		if err := atomicfile.Write(filepath.Join(tmp, name), files[name], 0o644); err != nil {
			return fmt.Errorf("--out %s: %w (nothing written)", dir, err)
		}
	}
	if fresh {
		if err := os.Chmod(tmp, 0o755); err != nil {
			return fmt.Errorf("--out %s: %w", dir, err)
		}
		if err := os.Rename(tmp, dir); err != nil {
			return fmt.Errorf("--out %s: %w (nothing written)", dir, err)
		}
		return nil
	}
	for _, name := range order {
		if err := os.Rename(filepath.Join(tmp, name), filepath.Join(dir, name)); err != nil {
			return fmt.Errorf("--out %s: %w", dir, err)
		}
	}
	return nil
}

// CheckOutDir reports, before a job runs, whether dir can receive its
// outputs: an existing dir must be a writable directory; otherwise its
// nearest existing ancestor must be. It creates nothing that it leaves.
func CheckOutDir(dir string) error {
	return checkDir(dir, dir)
}

// CheckOutFile reports, before a job runs, whether the file path can be
// written: it must not be a directory, and its directory (or that
// directory's nearest existing ancestor) must be a writable directory.
func CheckOutFile(path string) error {
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		return fmt.Errorf("--out %s is a directory; give a file name", path)
	}
	return checkDir(filepath.Dir(path), path)
}

// checkDir checks dir for the flag value flag.
func checkDir(dir, flag string) error {
	p := filepath.Clean(dir)
	for {
		st, err := os.Stat(p)
		if err == nil {
			if !st.IsDir() {
				if p == filepath.Clean(flag) {
					return fmt.Errorf("--out %s is a file, not a directory; give a directory", flag)
				}
				return fmt.Errorf("--out %s: %s is a file, not a directory", flag, p)
			}
			return checkWritable(p, flag)
		}
		if !os.IsNotExist(err) && !errors.Is(err, syscall.ENOTDIR) {
			return fmt.Errorf("--out %s: %w", flag, err)
		}
		up := filepath.Dir(p)
		if up == p {
			return fmt.Errorf("--out %s: no existing parent directory", flag)
		}
		p = up
	}
}

// checkWritable creates and removes a temporary file in dir.
func checkWritable(dir, flag string) error {
	f, err := os.CreateTemp(dir, ".mpsearch-check-*")
	if err != nil {
		return fmt.Errorf("--out %s: cannot write in %s (%v); choose a writable directory", flag, dir, errors.Unwrap(err))
	}
	name := f.Name()
	f.Close()
	return os.Remove(name)
}
