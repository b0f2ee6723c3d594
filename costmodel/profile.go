package costmodel

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"

	"mpsearch/internal/atomicfile"
	"mpsearch/kernels"
)

// ErrProfile is wrapped by the errors returned for malformed profiles.
var ErrProfile = errors.New("costmodel: invalid profile")

// Format is the value of a profile's format field.
const Format = "mpsearch-profile/3"

// ProfileBits are the kernel weight bit widths a profile models.
var ProfileBits = []int{8, 4, 2, 1}

// Profile is a hardware profile: a latency model of the kernels on one CPU
// at one thread count, measured by BuildProfile or derived analytically
// (AnalyticAVX2). All times are in nanoseconds.
//
// The GEMM time of a kernels.GEMMRequant call with R rows, reduction K and
// N outputs at kernel width b is a linear model whose terms mirror what the
// kernels do (see gemmFeatures): a constant, output channels, padded MACs
// (whole 6 x 16 tiles over K rounded up to 4), micro-kernel tiles, row
// tiles, requantized rows, scalar outputs and the rows they span, packed
// activation elements (vector and scalar), weight-panel bytes streamed and
// packed activation bytes beyond the L2 cache. A Conv adds, per image and
// group, the im2col (call_ns + ns_per_pixel*M + ns_per_run*M*C*KH +
// ns_per_element*M*K) and the transpose to NCHW (call_ns + ns_per_row*M +
// ns_per_element*M*N, plus ns_per_conflict*M*N when the N strided writes of
// a row overflow the L1 sets they map to, cpu.l1d, and
// ns_per_conflict_4k*M*N more when M is also a multiple of 4096).
type Profile struct {
	Format string `yaml:"format"`
	Name   string `yaml:"name"`
	// Source is "measured" or "analytic".
	Source  string  `yaml:"source"`
	CPU     CPUInfo `yaml:"cpu"`
	Threads int     `yaml:"threads"`
	// Clock is the clock of the measurements ("thread-cpu" or "wall"), or
	// "model" for an analytic profile.
	Clock string `yaml:"clock"`
	// Created (RFC 3339) and Go (toolchain version) are provenance only.
	Created string `yaml:"created,omitempty"`
	Go      string `yaml:"go,omitempty"`
	// MemoryGBps is the bandwidth of a streaming copy, counting the bytes
	// read and written, in GB/s (1e9 bytes per second).
	MemoryGBps float64 `yaml:"memory_gbps"`
	// CallOverheadNs is the time of the smallest GEMMRequant call
	// (1 x 4 x 16, 8-bit weights).
	CallOverheadNs float64     `yaml:"call_overhead_ns"`
	GEMM           []GEMMModel `yaml:"gemm"`
	// Stream models the small-M kernels (kernels.GEMMStreamRequant) per
	// kernel width, for layers the engine runs on them.
	Stream    []StreamModel  `yaml:"stream"`
	Im2Col    Im2ColModel    `yaml:"im2col"`
	Transpose TransposeModel `yaml:"transpose"`
	// Im2ColNHWC and Depthwise model the channels-last patch matrix
	// (kernels.Im2ColNHWC) and the depthwise kernel
	// (kernels.DepthwiseNHWC), per image.
	Im2ColNHWC Im2ColNHWCModel `yaml:"im2col_nhwc"`
	Depthwise  DepthwiseModel  `yaml:"depthwise"`
	// Ops models the integer engine's operations between layers (input
	// quantization, pooling, additions, output dequantization).
	Ops OpsModel `yaml:"ops"`
	// Cold is what a whole-model pass adds when its weights do not stay
	// in the cache (ColdShare); nil in profiles measured before it existed,
	// which then predict the hot figures.
	Cold *ColdModel `yaml:"cold,omitempty"`
	// Reference holds the GEMM throughput (int32 output, activation packing
	// included) at 256^3, 512^3 and 1024^3 per bit width (kernels.GEMM),
	// then at m = 1 with k = n = 1024, 4096 and 8192 (kernels.GEMMStream,
	// the small-M kernels, whose time follows the weight bytes).
	Reference []GEMMPoint `yaml:"reference,omitempty"`

	// Comment is written as '#' lines before the YAML; not read back.
	Comment string `yaml:"-"`
}

// CPUInfo identifies the processor of a profile.
type CPUInfo struct {
	Model       string   `yaml:"model"`
	Vendor      string   `yaml:"vendor,omitempty"`
	Family      int      `yaml:"family,omitempty"`
	ModelID     int      `yaml:"model_id,omitempty"`
	LogicalCPUs int      `yaml:"logical_cpus,omitempty"`
	Flags       []string `yaml:"flags"` // the vector-ISA flags relevant to the kernels
	// KernelISA is the instruction set the kernels ran (kernels.ISA:
	// "avx512_vnni", "avx2" or "go"). The GEMM model's terms depend on it
	// (gemmFeatures), and a profile predicts the kernels of its own ISA
	// only (CheckISA).
	KernelISA string `yaml:"kernel_isa"`
	// L1D is the level-1 data cache geometry; zero when unknown (then no
	// conflict terms are predicted).
	L1D CacheInfo `yaml:"l1d,omitempty"`
	// L2Bytes is the level-2 cache of one core; zero when unknown.
	L2Bytes int `yaml:"l2_bytes,omitempty"`
}

// CacheInfo is a cache's geometry.
type CacheInfo struct {
	Sets int `yaml:"sets"`
	Ways int `yaml:"ways"`
	Line int `yaml:"line"` // bytes
}

// GEMMModel is the GEMMRequant time model of one kernel bit width.
type GEMMModel struct {
	Bits       int     `yaml:"bits"`
	OverheadNs float64 `yaml:"overhead_ns"`
	// NsPerChannel is the per-call setup of one output channel.
	NsPerChannel float64 `yaml:"ns_per_channel"`
	// NsPerMAC is per padded MAC; 2/NsPerMAC is the peak GOPS.
	NsPerMAC           float64 `yaml:"ns_per_mac"`
	NsPerTile          float64 `yaml:"ns_per_tile"`
	NsPerRowTile       float64 `yaml:"ns_per_row_tile"`
	NsPerRequantRow    float64 `yaml:"ns_per_requant_row"`
	NsPerRequantScalar float64 `yaml:"ns_per_requant_scalar"`
	NsPerScalarRow     float64 `yaml:"ns_per_scalar_row"`
	NsPerPack          float64 `yaml:"ns_per_pack"`
	NsPerPackScalar    float64 `yaml:"ns_per_pack_scalar"`
	NsPerWeightByte    float64 `yaml:"ns_per_weight_byte"`
	// NsPerSpilledByte is per packed activation byte when they exceed
	// cpu.l2_bytes.
	NsPerSpilledByte float64 `yaml:"ns_per_spilled_byte"`
	Fit              *Fit    `yaml:"fit,omitempty"`
}

// Im2ColModel is the time model of kernels.Im2Col on one image (see
// im2colFeatures for how its terms are counted).
type Im2ColModel struct {
	CallNs     float64 `yaml:"call_ns"`
	NsPerPixel float64 `yaml:"ns_per_pixel"` // per output pixel (patch row)
	// NsPerLine is per output row, input channel and kernel row.
	NsPerLine float64 `yaml:"ns_per_line"`
	// NsPerRun is per run of KW taps copied with one 8-byte move.
	NsPerRun float64 `yaml:"ns_per_run"`
	// NsPerElement is per byte written one at a time (padding rows,
	// borders, runs the 8-byte move cannot take).
	NsPerElement float64 `yaml:"ns_per_element"`
	Fit          *Fit    `yaml:"fit,omitempty"`
}

// TransposeModel is the time model of moving one image's M x N GEMM output
// to N x M (NCHW).
type TransposeModel struct {
	CallNs       float64 `yaml:"call_ns"`
	NsPerElement float64 `yaml:"ns_per_element"`
	NsPerRow     float64 `yaml:"ns_per_row"`
	// NsPerConflict is the extra time per element when the writes of one
	// row conflict in L1, NsPerConflict4K the further extra time when the
	// stride is also a multiple of 4 KiB (see transposeFeatures).
	NsPerConflict   float64 `yaml:"ns_per_conflict"`
	NsPerConflict4K float64 `yaml:"ns_per_conflict_4k"`
	Fit             *Fit    `yaml:"fit,omitempty"`
}

// Fit reports how well a model reproduces the measurements it was fitted
// to: the median and largest |predicted/measured - 1| over Points timed
// groups of sweep calls.
type Fit struct {
	Points    int     `yaml:"points"`
	MedianErr float64 `yaml:"median_err"`
	MaxErr    float64 `yaml:"max_err"`
}

// GEMMPoint is one throughput figure.
type GEMMPoint struct {
	Bits int     `yaml:"bits" json:"bits"`
	M    int     `yaml:"m" json:"m"`
	K    int     `yaml:"k" json:"k"`
	N    int     `yaml:"n" json:"n"`
	GOPS float64 `yaml:"gops" json:"gops"` // 2 ops per MAC
}

// Marshal returns the profile as YAML, preceded by Comment as '#' lines.
// The output depends only on the field values.
func (p *Profile) Marshal() ([]byte, error) {
	var buf bytes.Buffer
	if p.Comment != "" {
		for _, l := range strings.Split(strings.TrimRight(p.Comment, "\n"), "\n") {
			buf.WriteString(strings.TrimRight("# "+l, " ") + "\n")
		}
	}
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(p); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// WriteFile validates p and writes it to path atomically.
func (p *Profile) WriteFile(path string) error {
	if err := p.Validate(); err != nil {
		return err
	}
	b, err := p.Marshal()
	if err != nil {
		return err
	}
	return atomicfile.Write(path, b, 0o644)
}

// MaxProfileBytes bounds the size of a profile ReadProfile accepts: a
// profile is about 4 KB, so a larger input is not one (a device, a model
// file given by mistake) and is refused before it is read whole.
const MaxProfileBytes = 1 << 20

// ReadProfile parses and validates a profile. Unknown fields, missing
// required fields and non-finite or negative numbers are errors naming the
// field; name (the file name) prefixes them. Inputs over MaxProfileBytes
// are refused.
func ReadProfile(r io.Reader, name string) (*Profile, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxProfileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if len(data) > MaxProfileBytes {
		return nil, fmt.Errorf("%s: larger than %d bytes, so not a profile (they are a few KB); give a profile written by 'mpsearch profile': %w", name, MaxProfileBytes, ErrProfile)
	}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, fmt.Errorf("%s: %v: %w", name, oneLine(err.Error()), ErrProfile)
	}
	if len(root.Content) == 0 {
		return nil, fmt.Errorf("%s: empty file: %w", name, ErrProfile)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var p Profile
	if err := dec.Decode(&p); err != nil {
		return nil, fmt.Errorf("%s: %v: %w", name, oneLine(err.Error()), ErrProfile)
	}
	if err := checkRequired(root.Content[0]); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if err := p.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return &p, nil
}

// ReadProfileFile reads a profile file.
func ReadProfileFile(path string) (*Profile, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return ReadProfile(f, path)
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", " ")), " ")
}

// Required keys, so that an absent coefficient is not read as zero.
var (
	requiredTop       = []string{"format", "name", "source", "cpu", "threads", "clock", "memory_gbps", "call_overhead_ns", "gemm", "stream", "im2col", "transpose", "im2col_nhwc", "depthwise", "ops"}
	requiredCPU       = []string{"model", "flags", "kernel_isa"}
	requiredGEMM      = []string{"bits", "overhead_ns", "ns_per_channel", "ns_per_mac", "ns_per_tile", "ns_per_row_tile", "ns_per_requant_row", "ns_per_requant_scalar", "ns_per_scalar_row", "ns_per_pack", "ns_per_pack_scalar", "ns_per_weight_byte", "ns_per_spilled_byte"}
	requiredIm2Col    = []string{"call_ns", "ns_per_pixel", "ns_per_line", "ns_per_element", "ns_per_run"}
	requiredTranspose = []string{"call_ns", "ns_per_element", "ns_per_row", "ns_per_conflict", "ns_per_conflict_4k"}
	requiredStream    = []string{"bits", "overhead_ns", "ns_per_channel", "ns_per_weight_byte", "ns_per_output", "ns_per_activation"}
	requiredNHWC      = []string{"call_ns", "ns_per_pixel", "ns_per_segment", "ns_per_copy", "ns_per_copied_byte", "ns_per_byte"}
	requiredDepthwise = []string{"call_ns", "ns_per_row", "ns_per_tap", "ns_per_lane", "ns_per_output"}
)

func checkRequired(top *yaml.Node) error {
	if err := requireKeys(top, "", requiredTop); err != nil {
		return err
	}
	for i := 0; i+1 < len(top.Content); i += 2 {
		k, v := top.Content[i].Value, top.Content[i+1]
		var err error
		switch k {
		case "cpu":
			err = requireKeys(v, "cpu.", requiredCPU)
		case "im2col":
			err = requireKeys(v, "im2col.", requiredIm2Col)
		case "transpose":
			err = requireKeys(v, "transpose.", requiredTranspose)
		case "stream":
			for j, item := range v.Content {
				if err = requireKeys(item, fmt.Sprintf("stream[%d].", j), requiredStream); err != nil {
					break
				}
			}
		case "im2col_nhwc":
			err = requireKeys(v, "im2col_nhwc.", requiredNHWC)
		case "depthwise":
			err = requireKeys(v, "depthwise.", requiredDepthwise)
		case "ops":
			err = requireKeys(v, "ops.", requiredOps)
		case "cold":
			err = requireKeys(v, "cold.", requiredCold)
		case "gemm":
			for j, item := range v.Content {
				if err = requireKeys(item, fmt.Sprintf("gemm[%d].", j), requiredGEMM); err != nil {
					break
				}
			}
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func requireKeys(n *yaml.Node, prefix string, keys []string) error {
	if n.Kind != yaml.MappingNode {
		return fmt.Errorf("line %d: %s must be a mapping: %w", n.Line, strings.TrimSuffix(prefix, "."), ErrProfile)
	}
	for _, k := range keys {
		found := false
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == k {
				found = true
				break
			}
		}
		if !found {
			return fmt.Errorf("line %d: missing field %s%s: %w", n.Line, prefix, k, ErrProfile)
		}
	}
	return nil
}

// Validate checks that p is complete and every number is finite and in
// range.
func (p *Profile) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), ErrProfile)
	}
	if p.Format != Format {
		return bad("format is %q; want %q", p.Format, Format)
	}
	if p.Name == "" {
		return bad("name is empty")
	}
	if p.Source != "measured" && p.Source != "analytic" {
		return bad("source is %q; want measured or analytic", p.Source)
	}
	if p.CPU.Model == "" {
		return bad("cpu.model is empty")
	}
	if !slices.Contains(kernelISAs, p.CPU.KernelISA) {
		return bad("cpu.kernel_isa is %q; want one of %s", p.CPU.KernelISA, strings.Join(kernelISAs, ", "))
	}
	if l := p.CPU.L1D; l.Sets < 0 || l.Ways < 0 || l.Line < 0 || p.CPU.L2Bytes < 0 {
		return bad("cpu.l1d %+v or cpu.l2_bytes %d is negative", l, p.CPU.L2Bytes)
	}
	if p.Threads < 1 {
		return bad("threads is %d; want at least 1", p.Threads)
	}
	if p.Clock != "thread-cpu" && p.Clock != "wall" && p.Clock != "model" {
		return bad("clock is %q; want thread-cpu, wall or model", p.Clock)
	}
	type num struct {
		name     string
		v        float64
		positive bool
	}
	nums := []num{
		{"memory_gbps", p.MemoryGBps, true},
		{"call_overhead_ns", p.CallOverheadNs, false},
		{"im2col.call_ns", p.Im2Col.CallNs, false},
		{"im2col.ns_per_pixel", p.Im2Col.NsPerPixel, false},
		{"im2col.ns_per_element", p.Im2Col.NsPerElement, true},
		{"im2col.ns_per_line", p.Im2Col.NsPerLine, false},
		{"im2col.ns_per_run", p.Im2Col.NsPerRun, false},
		{"transpose.call_ns", p.Transpose.CallNs, false},
		{"transpose.ns_per_element", p.Transpose.NsPerElement, true},
		{"transpose.ns_per_row", p.Transpose.NsPerRow, false},
		{"transpose.ns_per_conflict", p.Transpose.NsPerConflict, false},
		{"transpose.ns_per_conflict_4k", p.Transpose.NsPerConflict4K, false},
	}
	for i, v := range p.Im2ColNHWC.coef() {
		nums = append(nums, num{"im2col_nhwc." + requiredNHWC[i], v, false})
	}
	for i, v := range p.Depthwise.coef() {
		nums = append(nums, num{"depthwise." + requiredDepthwise[i], v, false})
	}
	for _, o := range p.Ops.nums() {
		nums = append(nums, num{o.name, o.v, false})
	}
	if p.Cold != nil {
		for _, o := range p.Cold.nums() {
			nums = append(nums, num{o.name, o.v, false})
		}
		if err := validatePass(p.Cold.Pass); err != nil {
			return bad("%v", err)
		}
	}
	seen := map[int]bool{}
	for _, g := range p.GEMM {
		if !slices.Contains(ProfileBits, g.Bits) {
			return bad("gemm entry for %d bits; want one of %v", g.Bits, ProfileBits)
		}
		if seen[g.Bits] {
			return bad("two gemm entries for %d bits", g.Bits)
		}
		seen[g.Bits] = true
		pre := fmt.Sprintf("gemm[bits=%d].", g.Bits)
		nums = append(nums,
			num{pre + "overhead_ns", g.OverheadNs, false},
			num{pre + "ns_per_channel", g.NsPerChannel, false},
			num{pre + "ns_per_mac", g.NsPerMAC, true},
			num{pre + "ns_per_tile", g.NsPerTile, false},
			num{pre + "ns_per_row_tile", g.NsPerRowTile, false},
			num{pre + "ns_per_requant_row", g.NsPerRequantRow, false},
			num{pre + "ns_per_requant_scalar", g.NsPerRequantScalar, false},
			num{pre + "ns_per_scalar_row", g.NsPerScalarRow, false},
			num{pre + "ns_per_pack", g.NsPerPack, false},
			num{pre + "ns_per_pack_scalar", g.NsPerPackScalar, false},
			num{pre + "ns_per_weight_byte", g.NsPerWeightByte, false},
			num{pre + "ns_per_spilled_byte", g.NsPerSpilledByte, false})
	}
	for _, b := range ProfileBits {
		if !seen[b] {
			return bad("no gemm entry for %d-bit weights", b)
		}
	}
	seenStream := map[int]bool{}
	for _, st := range p.Stream {
		if !slices.Contains(ProfileBits, st.Bits) || seenStream[st.Bits] {
			return bad("stream entry for %d bits: want one for each of %v", st.Bits, ProfileBits)
		}
		seenStream[st.Bits] = true
		for i, v := range st.coef() {
			nums = append(nums, num{fmt.Sprintf("stream[bits=%d].%s", st.Bits, streamCoefNames[i]), v, false})
		}
	}
	for _, b := range ProfileBits {
		if !seenStream[b] {
			return bad("no stream entry for %d-bit weights", b)
		}
	}
	for _, n := range nums {
		switch {
		case math.IsNaN(n.v) || math.IsInf(n.v, 0):
			return bad("%s is %v; want a finite number", n.name, n.v)
		case n.v < 0:
			return bad("%s is %v; want a non-negative number", n.name, n.v)
		case n.positive && n.v == 0:
			return bad("%s is 0; want a positive number", n.name)
		}
	}
	for _, r := range p.Reference {
		if math.IsNaN(r.GOPS) || math.IsInf(r.GOPS, 0) || r.GOPS < 0 {
			return bad("reference gops at %d bits %dx%dx%d is %v; want a finite non-negative number", r.Bits, r.M, r.K, r.N, r.GOPS)
		}
	}
	return nil
}

// kernelISAs are the values of cpu.kernel_isa.
var kernelISAs = []string{kernels.ISAVNNI, kernels.ISAAVX2, kernels.ISAGo}

// ErrISA is wrapped by CheckISA's error: the profile was measured with
// other kernels than the ones this program runs.
// It wraps ErrProfile.
var ErrISA = fmt.Errorf("costmodel: profile of other kernels: %w", ErrProfile)

// CheckISA returns an error wrapping ErrISA (so ErrProfile) when the profile
// was measured with kernels of another instruction set than isa (usually
// kernels.ISA(), what this program runs): its GEMM coefficients and terms
// describe other kernels (with VNNI every bit width runs at the 8-bit
// rate; with AVX2 narrower weights are up to twice as fast), so its
// latencies are not this machine's. Analytic profiles are checked too:
// they model one instruction set.
func (p *Profile) CheckISA(isa string) error {
	if p.CPU.KernelISA == isa {
		return nil
	}
	how := "measure this CPU with 'mpsearch profile --out FILE' and pass --profile FILE"
	if p.CPU.KernelISA == kernels.ISAAVX2 && isa == kernels.ISAVNNI {
		how += ", or run with GODEBUG=cpu.avx512f=off to use the AVX2 kernels it describes"
	}
	return fmt.Errorf("profile %q describes the %s kernels but this program runs the %s ones, so its latencies do not apply here; %s: %w", p.Name, p.CPU.KernelISA, isa, how, ErrISA)
}

// gemmModel returns the model of kernel width kb.
func (p *Profile) gemmModel(kb int) (*GEMMModel, error) {
	for i := range p.GEMM {
		if p.GEMM[i].Bits == kb {
			return &p.GEMM[i], nil
		}
	}
	return nil, fmt.Errorf("%w: profile %q has no model for %d-bit weights", ErrProfile, p.Name, kb)
}

// ErrThreads is wrapped by CheckThreads's error: the profile was measured
// with another kernel thread count. It wraps ErrProfile.
var ErrThreads = fmt.Errorf("costmodel: profile of another thread count: %w", ErrProfile)

// CheckThreads returns an error wrapping ErrThreads when the profile was
// measured with another number of kernel threads than threads, the count
// the latencies are wanted for (a search's --threads): the kernels split
// their tiles over the threads, so a profile's latencies hold for its own
// count only (issue 13).
func (p *Profile) CheckThreads(threads int) error {
	if p.Threads == threads {
		return nil
	}
	return fmt.Errorf("profile %q was measured with %d kernel thread(s) but this run uses --threads %d, so its latencies do not apply; pass --threads %d, or measure this CPU with 'mpsearch profile --threads %d --out FILE' and pass --profile FILE: %w", p.Name, p.Threads, threads, p.Threads, threads, ErrThreads)
}
