package sensitivity

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"slices"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"

	"mpsearch/internal/atomicfile"
	"mpsearch/quant"
)

// ErrTable is wrapped by every error about a malformed sensitivity table.
var ErrTable = errors.New("invalid sensitivity table")

// Table is the per-layer, per-bit-width sensitivity table (sens.yaml). It
// is written by `mpsearch sensitivity` and read by `mpsearch search
// --table`; users may also write one by hand from traces computed
// elsewhere (only name, omega or trace+params+delta, and costs are needed).
type Table struct {
	// Provenance.
	Model       string  `yaml:"model,omitempty"`
	ModelSHA256 string  `yaml:"model_sha256,omitempty"`
	Data        string  `yaml:"data,omitempty"`
	DataSHA256  string  `yaml:"data_sha256,omitempty"`
	Samples     int     `yaml:"samples,omitempty"`
	Loss        string  `yaml:"loss,omitempty"`   // "cross-entropy" or "kl"
	Metric      string  `yaml:"metric,omitempty"` // metric of the omega column
	Trace       string  `yaml:"trace,omitempty"`  // "hutchinson", "hutch++" or "exact"
	Probes      int     `yaml:"probes,omitempty"`
	Tol         float64 `yaml:"tol,omitempty"`
	Seed        uint64  `yaml:"seed,omitempty"`
	// Quantizer is the weight rounding every metric measured
	// (quant.MethodRTN or quant.MethodGPTQ; see CheckQuantizer). Tables
	// written before it was recorded, and hand-written ones, have none.
	Quantizer string `yaml:"quantizer,omitempty"`
	// BiasCorrection: every metric measured the weights with their biases
	// corrected (quant.WithBiasCorrection; see CheckQuantizer). Tables
	// written before it was recorded had none.
	BiasCorrection bool `yaml:"bias_correction,omitempty"`
	// Equalized: the model was equalized across layers before it was
	// measured (package equalize, --equalize; see CheckEqualized).
	Equalized bool `yaml:"equalized,omitempty"`
	// ActCalib is the activation calibration the metrics quantized
	// activations with (quant.ActCalib.String; see CheckActCalib), absent
	// for minmax, which tables written before it was recorded used.
	ActCalib string `yaml:"act_calib,omitempty"`
	// Bits lists the candidate weight bit widths: option codes
	// (quant.OptionCode), the width itself per output channel and
	// group·100 + width for weights in groups of that many inputs, whose
	// cells hold the same metrics and (always) size_bytes with the scales.
	Bits   []int      `yaml:"bits,omitempty"`
	Layers []Layer    `yaml:"layers"`
	Ties   [][]string `yaml:"ties,omitempty"`
	// Shard, when set, marks the table as one shard of a sharded run: it
	// holds only that shard's cells and must be merged (Merge) before use.
	Shard *ShardInfo `yaml:"shard,omitempty"`
}

// Layer is one quantizable layer's row.
type Layer struct {
	Name   string `yaml:"name"`
	Op     string `yaml:"op,omitempty"`
	Params int64  `yaml:"params,omitempty"` // weights only
	MACs   int64  `yaml:"macs,omitempty"`   // per sample
	// Trace is Tr(H_i) of the weight block; TraceStderr its standard error
	// (0 for an exact trace).
	Trace         float64 `yaml:"trace,omitempty"`
	TraceStderr   float64 `yaml:"trace_stderr,omitempty"`
	TopEigenvalue float64 `yaml:"top_eigenvalue,omitempty"`
	// Delta is ||Q_b(W)-W||^2 per bit width.
	Delta map[int]float64 `yaml:"delta,omitempty"`
	// Omega is the sensitivity used by the search; if absent it is
	// Trace/Params*Delta (HAWQ).
	Omega map[int]float64 `yaml:"omega,omitempty"`
	// Metrics holds Omega under every metric computed (hessian, quadratic,
	// fisher, direct), so the search can compare their optima. direct is
	// the signed change of the calibration loss of the integer model with
	// this layer at b bits and every other layer at 8, from the all-8-bit
	// integer model (so exactly 0 at 8 bits, and negative where the loss
	// fell); see the package documentation.
	Metrics map[string]map[int]float64 `yaml:"metrics,omitempty"`
	// Stderr holds, per metric and bit width, the standard error of a
	// measured metric's value over the calibration data (direct: from the
	// spread of the loss change over chunks of directChunk samples; see
	// the package documentation); 0 at 8 bits, where the direct value is
	// the baseline itself. Metrics computed in closed form (hessian,
	// quadratic, fisher) have none. Tables written before it existed have
	// none either and still read; the search then applies no noise rule
	// to them (see SearchInput).
	Stderr map[string]map[int]float64 `yaml:"stderr,omitempty"`
	// Optional explicit costs per bit width; they override computed ones.
	LatencyMs map[int]float64 `yaml:"latency_ms,omitempty"`
	SizeBytes map[int]float64 `yaml:"size_bytes,omitempty"`
	BOPs      map[int]float64 `yaml:"bops,omitempty"`
	// Bits fixes the layer's weight bit width (0: free).
	Bits int `yaml:"bits,omitempty"`
	// ABits is the activation bit width (0 means 8).
	ABits int `yaml:"a_bits,omitempty"`
}

// CheckQuantizer returns nil when the table (read from file name) can be
// used with weights rounded by q: it records q, or it records none and has
// no model provenance (a hand-written table, whose values the user
// vouches for). Otherwise it returns one line wrapping ErrTable naming
// both roundings and the flag to pass: a table measured with another
// rounding priced other weights than the ones that would be exported, and
// a table mpsearch wrote before it recorded the rounding (issue 11) may
// have been measured with either (rtn was the default until GPTQ became
// it), so it is refused rather than guessed.
func (t *Table) CheckQuantizer(name, q string) error {
	switch {
	case t.Quantizer == q:
		return nil
	case t.Quantizer != "":
		return fmt.Errorf("%s was measured with weights rounded by %s, not %s: pass --quantizer %s (or recompute the table with --quantizer %s): %w", name, t.Quantizer, q, t.Quantizer, q, ErrTable)
	case t.ModelSHA256 == "":
		return nil
	}
	return fmt.Errorf("%s does not record the weight rounding it was measured with (written before mpsearch recorded it; rtn or gptq): add the line `quantizer: rtn` or `quantizer: gptq` as it was computed, or recompute it with `mpsearch sensitivity --quantizer %s`: %w", name, q, ErrTable)
}

// CheckBiasCorrection returns nil when the table (read from file name)
// was measured with bias correction as bc asks, or is hand-written (no
// model provenance); otherwise one line wrapping ErrTable naming the flag
// to pass: a table measured without the corrected biases priced other
// weights than the ones the search would verify and export (tables
// written before the setting existed were measured without it).
func (t *Table) CheckBiasCorrection(name string, bc bool) error {
	if t.BiasCorrection == bc || t.ModelSHA256 == "" {
		return nil
	}
	with := map[bool]string{true: "with", false: "without"}
	return fmt.Errorf("%s was measured %s bias correction: pass --bias-correction=%t (or recompute the table with --bias-correction=%t): %w", name, with[t.BiasCorrection], t.BiasCorrection, bc, ErrTable)
}

// CheckEqualized returns nil when the table (read from file name) was
// measured on the model equalized as eq asks, or is hand-written (no
// model provenance); otherwise one line wrapping ErrTable naming the flag
// to pass (tables written before the setting existed were measured
// without it).
func (t *Table) CheckEqualized(name string, eq bool) error {
	if t.Equalized == eq || t.ModelSHA256 == "" {
		return nil
	}
	with := map[bool]string{true: "with", false: "without"}
	return fmt.Errorf("%s was measured %s cross-layer equalization: pass --equalize=%t (or recompute the table with --equalize=%t): %w", name, with[t.Equalized], t.Equalized, eq, ErrTable)
}

// CheckActCalib returns nil when the table (read from file name) was
// measured with activation ranges chosen as c says, or is hand-written (no
// model provenance); otherwise one line wrapping ErrTable naming the flag
// to pass.
func (t *Table) CheckActCalib(name string, c quant.ActCalib) error {
	if t.ActCalibOf() == c || t.ModelSHA256 == "" {
		return nil
	}
	return fmt.Errorf("%s was measured with activation ranges by %s: pass --act-calib %s (or recompute the table with --act-calib %s): %w", name, t.ActCalibName(), t.ActCalibName(), c, ErrTable)
}

// ActCalibName is the table's activation calibration (minmax when absent).
func (t *Table) ActCalibName() string {
	if t.ActCalib == "" {
		return quant.CalibMinMax
	}
	return t.ActCalib
}

// ActCalibOf parses the table's activation calibration; a value that does
// not parse compares unequal to every method.
func (t *Table) ActCalibOf() quant.ActCalib {
	c, err := quant.ParseActCalib(t.ActCalibName())
	if err != nil {
		return quant.ActCalib{Method: "invalid " + t.ActCalib}
	}
	return c
}

// OmegaAt returns the layer's sensitivity at b bits and whether it is known.
func (l *Layer) OmegaAt(b int) (float64, bool) {
	if v, ok := l.Omega[b]; ok {
		return v, true
	}
	if d, ok := l.Delta[b]; ok && l.Params > 0 {
		return l.Trace / float64(l.Params) * d, true
	}
	return 0, false
}

// ActBits returns the activation bit width.
func (l *Layer) ActBits() int {
	if l.ABits > 0 {
		return l.ABits
	}
	return 8
}

// Read parses a complete table from YAML. Unknown fields are errors, and
// so is a shard table (merge the shards first).
func Read(r io.Reader, name string) (*Table, error) {
	t, err := ReadShard(r, name)
	if err != nil {
		return nil, err
	}
	if t.Shard != nil {
		return nil, fmt.Errorf("%s is shard %d/%d of a sharded run; combine all shards with `mpsearch merge` first: %w", name, t.Shard.Index, t.Shard.Count, ErrTable)
	}
	return t, nil
}

// ReadShard parses a table from YAML, complete or a shard.
func ReadShard(r io.Reader, name string) (*Table, error) {
	dec := yaml.NewDecoder(r)
	dec.KnownFields(true)
	var t Table
	if err := dec.Decode(&t); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%s: empty file: %w", name, ErrTable)
		}
		return nil, fmt.Errorf("%s: %v: %w", name, oneLine(err.Error()), ErrTable)
	}
	if err := t.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return &t, nil
}

// ReadFile reads a complete table file (see Read).
func ReadFile(path string) (*Table, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return Read(f, path)
}

// ReadShardFile reads a table file, complete or a shard.
func ReadShardFile(path string) (*Table, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return ReadShard(f, path)
}

func yamlUnmarshal(b []byte, v any) error {
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	return dec.Decode(v)
}

// Marshal returns the table as YAML (deterministic: map keys are sorted).
func (t *Table) Marshal() ([]byte, error) {
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(t); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// WriteFile writes the table atomically.
func (t *Table) WriteFile(path string) error {
	b, err := t.Marshal()
	if err != nil {
		return err
	}
	return atomicfile.Write(path, b, 0o644)
}

func oneLine(s string) string {
	return string(bytes.Join(bytes.Fields([]byte(s)), []byte(" ")))
}

// checkMap checks a per-bit-width map: bit widths in 1..32, finite
// values, non-negative unless signed (omegas and metrics may be negative:
// the direct metric is a signed loss change).
func checkMap(layer, field string, m map[int]float64, signed bool) error {
	keys := make([]int, 0, len(m))
	for b := range m {
		keys = append(keys, b)
	}
	sort.Ints(keys)
	for _, b := range keys {
		v := m[b]
		if bb, g := quant.SplitOption(b); g == 0 && (b < 1 || b > 32) || g > 0 && (bb < 1 || bb > 8) {
			return fmt.Errorf("layer %q: %s has bit width %d outside 1..32 (or a width in 1..8 in groups, group·%d + width): %w", layer, field, b, quant.OptionGroupUnit, ErrTable)
		}
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return fmt.Errorf("layer %q: %s at %d bits is %v; want a finite number: %w", layer, field, b, v, ErrTable)
		}
		if v < 0 && !signed {
			return fmt.Errorf("layer %q: %s at %d bits is negative (%g): %w", layer, field, b, v, ErrTable)
		}
	}
	return nil
}

// Validate checks the table's consistency: unique names, finite values,
// non-negative deltas, standard errors and costs (omegas and metrics may be
// negative: the direct metric is a signed loss change), an omega for every candidate bit
// width, ties naming known layers.
func (t *Table) Validate() error {
	if len(t.Layers) == 0 {
		return fmt.Errorf("no layers: %w", ErrTable)
	}
	if t.Quantizer != "" && !slices.Contains(quant.Methods, t.Quantizer) {
		return fmt.Errorf("quantizer %q is not %s: %w", t.Quantizer, strings.Join(quant.Methods, " or "), ErrTable)
	}
	if t.ActCalib != "" {
		if _, err := quant.ParseActCalib(t.ActCalib); err != nil {
			return fmt.Errorf("act_calib: %v: %w", err, ErrTable)
		}
	}
	seen := map[string]bool{}
	for i := range t.Layers {
		l := &t.Layers[i]
		if l.Name == "" {
			return fmt.Errorf("layer %d has no name: %w", i, ErrTable)
		}
		if seen[l.Name] {
			return fmt.Errorf("layer %q appears twice: %w", l.Name, ErrTable)
		}
		seen[l.Name] = true
		if math.IsNaN(l.Trace) || math.IsInf(l.Trace, 0) {
			return fmt.Errorf("layer %q: trace is %v: %w", l.Name, l.Trace, ErrTable)
		}
		if l.Params < 0 || l.MACs < 0 {
			return fmt.Errorf("layer %q: negative params or macs: %w", l.Name, ErrTable)
		}
		for _, f := range []struct {
			name   string
			m      map[int]float64
			signed bool
		}{{"delta", l.Delta, false}, {"omega", l.Omega, true}, {"latency_ms", l.LatencyMs, false}, {"size_bytes", l.SizeBytes, false}, {"bops", l.BOPs, false}} {
			if err := checkMap(l.Name, f.name, f.m, f.signed); err != nil {
				return err
			}
		}
		names := make([]string, 0, len(l.Metrics))
		for k := range l.Metrics {
			names = append(names, k)
		}
		sort.Strings(names)
		for _, k := range names {
			if err := checkMap(l.Name, "metrics."+k, l.Metrics[k], true); err != nil {
				return err
			}
		}
		for _, k := range slices.Sorted(maps.Keys(l.Stderr)) {
			if err := checkMap(l.Name, "stderr."+k, l.Stderr[k], false); err != nil {
				return err
			}
		}
		for _, b := range t.Bits {
			if _, ok := l.OmegaAt(b); !ok {
				return fmt.Errorf("layer %q: no omega (nor trace, params and delta) at %d bits: %w", l.Name, b, ErrTable)
			}
		}
		if l.Bits != 0 {
			if _, ok := l.OmegaAt(l.Bits); !ok && len(l.Omega)+len(l.Delta) > 0 {
				return fmt.Errorf("layer %q: fixed at %d bits, which the table gives no omega for: %w", l.Name, l.Bits, ErrTable)
			}
		}
	}
	for _, tie := range t.Ties {
		if len(tie) < 2 {
			return fmt.Errorf("tie %v names fewer than two layers: %w", tie, ErrTable)
		}
		for _, name := range tie {
			if !seen[name] {
				return fmt.Errorf("tie %v: unknown layer %q: %w", tie, name, ErrTable)
			}
		}
	}
	return nil
}

// CandidateBits returns the table's bit widths: Bits if given, else every
// width some layer has an omega or delta for, sorted.
func (t *Table) CandidateBits() []int {
	if len(t.Bits) > 0 {
		return append([]int(nil), t.Bits...)
	}
	set := map[int]bool{}
	for _, l := range t.Layers {
		for b := range l.Omega {
			set[b] = true
		}
		for b := range l.Delta {
			set[b] = true
		}
	}
	var out []int
	for b := range set {
		out = append(out, b)
	}
	return quant.SortOptions(out)
}
