package pipeline

import (
	"bytes"
	"fmt"

	"mpsearch/costmodel"
	"mpsearch/network"
	"mpsearch/profiles"
)

// LayerShapes describes the network's quantizable layers as the integer
// engine runs them, for the cost model.
func LayerShapes(net *network.Network) ([]costmodel.LayerShape, error) {
	var out []costmodel.LayerShape
	for _, l := range net.Layers() {
		w := net.Params()[l.Weight].Value
		switch {
		case l.Op == "Conv" && len(l.InShape) == 4 && len(l.OutShape) == 4 && w.Rank() == 4:
			groups := l.InShape[1] / w.Shape[1]
			g, err := costmodel.InferConv(l.InShape[1]/groups, l.InShape[2], l.InShape[3], w.Shape[2], w.Shape[3], l.OutShape[2], l.OutShape[3])
			if err != nil {
				return nil, fmt.Errorf("layer %q: %w", l.Node, err)
			}
			s, err := costmodel.ConvLayer(l.Node, g, w.Shape[0], groups)
			if err != nil {
				return nil, err
			}
			out = append(out, s)
		case l.Op == "Gemm" || l.Op == "MatMul":
			outF := w.Shape[l.ChannelAxis]
			inF := w.Size() / outF
			rows := 1
			if n := len(l.OutShape); n > 2 {
				rows = 1
				for _, d := range l.OutShape[1 : n-1] {
					rows *= d
				}
			}
			out = append(out, costmodel.GemmLayer(l.Node, l.Op, rows, inF, outF))
		default:
			return nil, fmt.Errorf("layer %q (%s): no cost-model shape for input %v, output %v", l.Node, l.Op, l.InShape, l.OutShape)
		}
	}
	return out, nil
}

// ProfileLatency predicts layer latencies at batch 1 from a hardware
// profile.
type ProfileLatency struct {
	Profile *costmodel.Profile
	Shapes  []costmodel.LayerShape
}

// LayerLatency implements LatencyModel.
func (p *ProfileLatency) LayerLatency(layer, bits int) (float64, error) {
	d, err := costmodel.Predict(p.Profile, p.Shapes[layer], bits, 1)
	if err != nil {
		return 0, err
	}
	return float64(d.Nanoseconds()) / 1e6, nil
}

// LoadProfile reads a profile file, or with path "" picks the shipped
// profile measured on a CPU of this model, else the analytic AVX2 one. It
// returns the profile and a name for messages.
func LoadProfile(path string) (*costmodel.Profile, string, error) {
	if path != "" {
		p, err := costmodel.ReadProfileFile(path)
		return p, path, err
	}
	cpu := costmodel.DetectCPU()
	for _, name := range profiles.Names() {
		b, _ := profiles.Get(name)
		p, err := costmodel.ReadProfile(bytes.NewReader(b), name)
		if err != nil {
			return nil, "", fmt.Errorf("shipped profile %s: %w", name, err)
		}
		if p.Source == "measured" && p.CPU.Model == cpu.Model && p.CPU.Family == cpu.Family && p.CPU.ModelID == cpu.ModelID {
			return p, "profiles/" + name + ".yaml (measured on this CPU model)", nil
		}
	}
	b, _ := profiles.Get(profiles.Analytic)
	p, err := costmodel.ReadProfile(bytes.NewReader(b), profiles.Analytic)
	return p, "profiles/" + profiles.Analytic + ".yaml (analytic; run 'mpsearch profile' for this CPU)", err
}
