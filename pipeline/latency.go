package pipeline

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"time"

	"mpsearch/costmodel"
	"mpsearch/intengine"
	"mpsearch/network"
	"mpsearch/profiles"
	"mpsearch/tensor"
)

// LayerShapes describes the network's quantizable layers as the integer
// engine runs them, for the cost model: the geometry from the tensor
// shapes, the path (layouts, depthwise, direct, logits) and the rows of a
// Gemm or MatMul from the engine's own plan (intengine.LayerPaths).
func LayerShapes(net *network.Network) ([]costmodel.LayerShape, error) {
	paths, err := intengine.LayerPaths(net)
	if err != nil {
		return nil, fmt.Errorf("pipeline: the integer engine's plan of the layers: %w", err)
	}
	var out []costmodel.LayerShape
	for i, l := range net.Layers() {
		w := net.Params()[l.Weight].Value
		switch {
		case l.Op == "Conv" && len(l.InShape) == 4 && len(l.OutShape) == 4 && w.Rank() == 4:
			groups := l.InShape[1] / w.Shape[1]
			g, err := costmodel.InferConv(l.InShape[1], l.InShape[2], l.InShape[3], w.Shape[2], w.Shape[3], l.OutShape[2], l.OutShape[3])
			if err != nil {
				return nil, fmt.Errorf("layer %q: %w", l.Node, err)
			}
			s, err := costmodel.ConvLayer(l.Node, g, w.Shape[0], groups)
			if err != nil {
				return nil, err
			}
			out = append(out, s.WithPath(paths[i]))
		case l.Op == "Gemm" || l.Op == "MatMul":
			outF := w.Shape[l.ChannelAxis]
			inF := w.Size() / outF
			out = append(out, costmodel.GemmLayer(l.Node, l.Op, max(paths[i].Rows, 1), inF, outF).WithPath(paths[i]))
		default:
			return nil, fmt.Errorf("layer %q (%s): no cost-model shape for input %v, output %v", l.Node, l.Op, l.InShape, l.OutShape)
		}
	}
	return out, nil
}

// OpShapes describes the operations the integer engine runs between the
// network's layers, for the cost model: the quantization of the float input,
// every MaxPool, AveragePool and GlobalAveragePool, every Add, every Relu or
// Clip that the engine cannot fuse into the preceding layer or Add, and the
// dequantization of the output. Views (Flatten, Reshape...) cost nothing.
// Pools record their layout (intengine.StepLayouts). Operations the engine
// runs as float fallback steps (intengine.FloatStepNodes) are left out:
// FloatStepsMs times them, and counting them here too added ViT-B/16's
// 49 float Adds twice (biases, the position embedding, GELU's +1: 12
// ms at the 07:26 profile).
func OpShapes(net *network.Network) ([]costmodel.OpShape, error) {
	probe := tensor.New(append([]int{1}, net.SampleShape...)...)
	pass, err := net.Forward(context.Background(), probe)
	if err != nil {
		return nil, fmt.Errorf("pipeline: shapes of the operations between layers: %w", err)
	}
	size := func(name string) int {
		if v := pass.Value(name); v != nil {
			return v.Size()
		}
		return 0
	}
	layouts, err := intengine.StepLayouts(net)
	if err != nil {
		return nil, fmt.Errorf("pipeline: the integer engine's plan of the operations between layers: %w", err)
	}
	float, err := intengine.FloatStepNodes(net)
	if err != nil {
		return nil, fmt.Errorf("pipeline: the integer engine's float steps: %w", err)
	}
	g := net.Model.Graph
	producer := map[string]string{}
	consumers := map[string]int{}
	for _, n := range g.Nodes {
		for _, in := range n.Inputs {
			consumers[in]++
		}
		for _, o := range n.Outputs {
			producer[o] = n.OpType
		}
	}
	ops := []costmodel.OpShape{{Name: net.InputName, Op: costmodel.OpQuantize, Elements: tensor.Size(net.SampleShape)}}
	for _, n := range g.Nodes {
		if len(n.Outputs) == 0 || len(n.Inputs) == 0 || float[n.Name] {
			// A float fallback step (ViT's bias Adds) is timed with the
			// others by FloatStepsMs, not modelled here.
			continue
		}
		out := size(n.Outputs[0])
		switch n.OpType {
		case "MaxPool", "AveragePool", "GlobalAveragePool":
			in := pass.Value(n.Inputs[0])
			if in == nil || in.Rank() != 4 || out < 1 {
				return nil, fmt.Errorf("pipeline: %s %q: input %v is not a batch of NCHW images", n.OpType, n.Name, in)
			}
			o := costmodel.OpShape{Name: n.Name, Op: costmodel.OpMaxPool, Elements: out, NHWC: layouts[n.Name], Channels: in.Shape[1]}
			if n.OpType != "MaxPool" {
				o.Op = costmodel.OpAvgPool
			}
			if n.OpType == "GlobalAveragePool" {
				o.Taps = in.Shape[2] * in.Shape[3]
			} else {
				o.Taps, o.Max2x2 = poolWindow(n.Attrs["kernel_shape"].Ints, n.Attrs["strides"].Ints, n.Attrs["pads"].Ints, n.Attrs["dilations"].Ints)
				if ap := n.Attrs["auto_pad"].S; ap != "" && ap != "NOTSET" && ap != "VALID" {
					o.Max2x2 = false
				}
			}
			ops = append(ops, o)
		case "Add":
			if out > 0 && pass.Value(n.Inputs[0]) != nil && len(n.Inputs) == 2 && pass.Value(n.Inputs[1]) != nil {
				ops = append(ops, costmodel.OpShape{Name: n.Name, Op: costmodel.OpAdd, Elements: out})
			}
		case "Relu", "Clip":
			// The engine fuses an activation that is the only consumer of
			// a layer's or an Add's output.
			switch producer[n.Inputs[0]] {
			case "Conv", "Gemm", "MatMul", "Add":
				if consumers[n.Inputs[0]] == 1 && n.Inputs[0] != net.OutputName {
					continue
				}
			}
			if out > 0 {
				ops = append(ops, costmodel.OpShape{Name: n.Name, Op: costmodel.OpClamp, Elements: out})
			}
		}
	}
	ops = append(ops, costmodel.OpShape{Name: net.OutputName, Op: costmodel.OpDequantize, Elements: max(1, size(net.OutputName))})
	return ops, nil
}

// poolWindow returns the taps of a pooling window (ignoring padding) and
// whether it is the 2x2, stride-2, unpadded, undilated window the engine
// pools without tap lists.
func poolWindow(kernel, strides, pads, dilations []int64) (int, bool) {
	taps := 1
	for _, k := range kernel {
		taps *= int(k)
	}
	all := func(v []int64, want int64) bool {
		for _, x := range v {
			if x != want {
				return false
			}
		}
		return true
	}
	fast := len(kernel) == 2 && all(kernel, 2) && len(strides) == 2 && all(strides, 2) && all(pads, 0) && all(dilations, 1)
	return max(taps, 1), fast
}

// ProfileLatency predicts layer latencies at batch 1 from a hardware
// profile, as a whole pass meets them: with the profile's cold terms when
// the share of them the model's weights pay (costmodel.ColdShare,
// PredictInPass).
type ProfileLatency struct {
	Profile *costmodel.Profile
	Shapes  []costmodel.LayerShape
	// Ops are the operations between the layers (OpShapes); nil when
	// unknown. They cost the same at every bit configuration.
	Ops []costmodel.OpShape
	// FloatMs is the time of the engine's float fallback steps at batch 1
	// (FloatStepsMs), which also cost the same at every configuration; 0
	// when the engine runs none or they were not timed.
	FloatMs float64
}

// OpsLatency returns the predicted latency of Ops at batch 1 in
// milliseconds: what a whole integer-only run adds to the sum of
// LayerLatency.
func (p *ProfileLatency) OpsLatency() (float64, error) {
	d, err := costmodel.PredictOpsInPass(p.Profile, p.Ops, 1, p.cold())
	if err != nil {
		return 0, err
	}
	return float64(d.Nanoseconds())/1e6 + p.FloatMs, nil
}

// cold is the share of the profile's cold terms a pass of the model
// pays (costmodel.ColdShare at 8 bits, the widest weights: with VNNI
// the GEMM panels hold a byte per weight at every width), the same for
// every configuration so that each layer's latency stays its own
// (additive, for the ILP): a configuration with narrower stream layers
// reads fewer bytes and may pay a smaller share than predicted.
func (p *ProfileLatency) cold() costmodel.PassShare {
	return costmodel.ColdShare(p.Profile, p.Shapes, nil, p.Ops)
}

// FloatStepsMs times the steps the integer engine runs in float (operators
// without an integer path: intengine's float fallback, e.g. ViT's Softmax,
// LayerNormalization and attention products) at batch 1, in milliseconds:
// the model is compiled at 8 bits with ranges observed on x and run on its
// first sample; intengine.Model.Time gives the share of the float steps in
// the sum of the steps' medians (per-step wall clock), and that share of
// the run's time on the cost model's default clock (costmodel.Time: the
// thread's CPU time on Linux, the clock of the shipped profile) is the
// result, so that a loaded machine's wall clock does not inflate it. A
// profile cannot describe arbitrary float operators, so they are timed on
// this machine's engine; they cost the same at every bit configuration.
// It returns 0 without compiling when the engine runs no float step.
func FloatStepsMs(ctx context.Context, net *network.Network, x *tensor.Tensor) (float64, error) {
	n, err := intengine.FloatSteps(net)
	if err != nil || n == 0 {
		return 0, err
	}
	ranges, err := intengine.ObserveRanges(ctx, net, []*tensor.Tensor{x})
	if err != nil {
		return 0, err
	}
	eng, err := intengine.Compile(net, intengine.Config{Ranges: ranges})
	if err != nil {
		return 0, err
	}
	per := tensor.Size(net.SampleShape)
	x1 := tensor.FromData(x.Data[:per], append([]int{1}, net.SampleShape...)...)
	tm, err := eng.Time(ctx, x1, 1, floatRuns)
	if err != nil {
		return 0, err
	}
	var float, all time.Duration
	for _, s := range tm.Steps {
		all += s.Median
		if strings.HasSuffix(s.Op, " (float)") {
			float += s.Median
		}
	}
	out := tensor.New(eng.OutputShape(1)...)
	run, err := costmodel.Time(ctx, func() error { return eng.RunInto(ctx, out, x1) }, costmodel.MeasureOptions{Repeats: floatRuns})
	if err != nil || all <= 0 {
		return 0, err
	}
	return float64(run[0].Median.Nanoseconds()) / 1e6 * float64(float) / float64(all), nil
}

// floatRuns is the number of timed runs of FloatStepsMs (the median of
// each step over them).
const floatRuns = 5

// LayerLatency implements LatencyModel.
func (p *ProfileLatency) LayerLatency(layer, bits int) (float64, error) {
	d, err := costmodel.PredictInPass(p.Profile, p.Shapes[layer], bits, 1, p.cold())
	if err != nil {
		return 0, err
	}
	return float64(d.Nanoseconds()) / 1e6, nil
}

// LoadProfile reads a profile file, or with path "" picks the shipped
// profile measured on a CPU of this model with the kernels this program
// runs (kernels.ISA), else the analytic AVX2 one. It returns the profile
// and a name for messages, which says so when the profile describes other
// kernels than the ones this machine runs (Profile.CheckISA): a profile
// of another machine still predicts that machine.
func LoadProfile(path string) (*costmodel.Profile, string, error) {
	cpu := costmodel.DetectCPU()
	flag := func(p *costmodel.Profile, name string) string {
		if p.CheckISA(cpu.KernelISA) != nil {
			name += fmt.Sprintf(" (%s kernels, but this machine runs the %s ones: latencies of another machine; run 'mpsearch profile' for this one)", p.CPU.KernelISA, cpu.KernelISA)
		}
		return name
	}
	if path != "" {
		p, err := costmodel.ReadProfileFile(path)
		if err != nil {
			return nil, "", err
		}
		return p, flag(p, path), nil
	}
	for _, name := range profiles.Names() {
		b, _ := profiles.Get(name)
		p, err := costmodel.ReadProfile(bytes.NewReader(b), name)
		if err != nil {
			return nil, "", fmt.Errorf("shipped profile %s: %w", name, err)
		}
		if p.Source == "measured" && p.CPU.Model == cpu.Model && p.CPU.Family == cpu.Family && p.CPU.ModelID == cpu.ModelID && p.CheckISA(cpu.KernelISA) == nil {
			return p, "profiles/" + name + ".yaml (measured on this CPU model)", nil
		}
	}
	b, _ := profiles.Get(profiles.Analytic)
	p, err := costmodel.ReadProfile(bytes.NewReader(b), profiles.Analytic)
	if err != nil {
		return nil, "", err
	}
	return p, flag(p, "profiles/"+profiles.Analytic+".yaml (analytic; run 'mpsearch profile' for this CPU)"), nil
}

// OverheadMs implements LatencyOverhead.
func (p *ProfileLatency) OverheadMs() (float64, error) { return p.OpsLatency() }
