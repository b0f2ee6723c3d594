package export

import (
	"context"
	"fmt"
	"math"
	"testing"

	"mpsearch/dataset"
	"mpsearch/internal/fixture"
	"mpsearch/network"
	"mpsearch/onnx"
	"mpsearch/quant"
	"mpsearch/tensor"
)

func loadLeNet(t testing.TB) *network.Network { return fixture.LeNet(t) }

func loadCalib(t testing.TB) *dataset.Dataset { return fixture.LeNetCalib(t) }

// calibActs observes the layer input ranges on the 256 calibration images.
func calibActs(t testing.TB, net *network.Network, ds *dataset.Dataset) map[string]quant.ActQuant {
	t.Helper()
	r, err := quant.ObserveRanges(context.Background(), net, []*tensor.Tensor{ds.X})
	if err != nil {
		t.Fatal(err)
	}
	return r.ActQuantizers()
}

// simLogits runs the project's simulated quantization (quant.WeightSetter
// and quant.ActHook) on x in batches and restores the float weights.
func simLogits(t testing.TB, net *network.Network, bits []int, act map[string]quant.ActQuant, x *tensor.Tensor) *tensor.Tensor {
	t.Helper()
	return simLogitsCodes(t, net, nil, bits, act, x)
}

// simLogitsCodes is simLogits with the weights from codes (nil: round to
// nearest).
func simLogitsCodes(t testing.TB, net *network.Network, codes quant.WeightCodes, bits []int, act map[string]quant.ActQuant, x *tensor.Tensor) *tensor.Tensor {
	t.Helper()
	ws := quant.NewWeightSetterCodes(net, codes)
	defer ws.Restore()
	if err := ws.SetAll(bits); err != nil {
		t.Fatal(err)
	}
	return forwardBatches(t, net, network.Hook(quant.ActHook(act)), x)
}

// lenetGPTQ returns the GPTQ codes of the fixture LeNet at 1, 2, 3, 4 and
// 8 bits, H from the 256 calibration images.
func lenetGPTQ(t testing.TB, net *network.Network) quant.WeightCodes {
	t.Helper()
	c, err := quant.NewGPTQCodes(context.Background(), net, []*tensor.Tensor{loadCalib(t).X}, quant.CodesOptions{Widths: []int{1, 2, 3, 4, 8}})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func forwardBatches(t testing.TB, net *network.Network, hook network.Hook, x *tensor.Tensor) *tensor.Tensor {
	t.Helper()
	const batch = 1000
	n := x.Shape[0]
	inner := x.Size() / n
	var out *tensor.Tensor
	for lo := 0; lo < n; lo += batch {
		hi := min(n, lo+batch)
		xb := tensor.FromData(x.Data[lo*inner:hi*inner], append([]int{hi - lo}, x.Shape[1:]...)...)
		p, err := net.ForwardHook(context.Background(), xb, hook)
		if err != nil {
			t.Fatal(err)
		}
		y := p.Output()
		if out == nil {
			out = tensor.New(append([]int{n}, y.Shape[1:]...)...)
		}
		copy(out.Data[lo*(y.Size()/(hi-lo)):], y.Data)
	}
	return out
}

// argmax returns the index of the largest value of each row.
func argmax(y *tensor.Tensor) []int {
	n := y.Shape[0]
	k := y.Size() / n
	idx := make([]int, n)
	for i := range n {
		row := y.Data[i*k : (i+1)*k]
		for j, v := range row {
			if v > row[idx[i]] {
				idx[i] = j
			}
		}
	}
	return idx
}

func accuracy(pred, labels []int) float64 {
	ok := 0
	for i, p := range pred {
		if p == labels[i] {
			ok++
		}
	}
	return 100 * float64(ok) / float64(len(pred))
}

func agreement(a, b []int) float64 {
	return accuracy(a, b)
}

func maxAbsDiff(a, b *tensor.Tensor) float64 {
	d := 0.0
	for i := range a.Data {
		d = math.Max(d, math.Abs(a.Data[i]-b.Data[i]))
	}
	return d
}

// producers maps each value name to the index of the node producing it.
func producers(g *onnx.Graph) map[string]int {
	p := map[string]int{}
	for i, n := range g.Nodes {
		for _, o := range n.Outputs {
			p[o] = i
		}
	}
	return p
}

// dequantizeGraph is an independent reading of an exported QDQ model by
// ONNX's definitions of the two operators (DequantizeLinear: y = (q - zp)
// · scale, per axis for 1-D scales; QuantizeLinear: y = saturate(round(x /
// scale) + zp), round half to even). Constant DequantizeLinear nodes become
// float initializers; each QuantizeLinear→DequantizeLinear pair on a value
// is removed and returned as the activation quantizer of the nodes that
// read it. The result runs on the float engine with quant.ActHook.
func dequantizeGraph(m *onnx.Model) (*onnx.Model, map[string]quant.ActQuant, error) {
	g := m.Graph.Clone()
	prod := producers(g)
	rename := map[string]string{}        // DQ output -> replacement value
	actOf := map[string]quant.ActQuant{} // DQ output -> activation quantizer
	var kept []onnx.Node
	for _, n := range g.Nodes {
		switch n.OpType {
		case "DequantizeLinear":
			q, s, zp := n.Inputs[0], n.Inputs[1], n.Inputs[2]
			if qt, ok := g.Initializers[q]; ok {
				w := tensor.New(qt.Shape...)
				st, zt := g.Initializers[s], g.Initializers[zp]
				axis := int(n.Int("axis", 1))
				inner := 1
				for _, d := range qt.Shape[axis+1:] {
					inner *= d
				}
				for i, v := range qt.Data {
					c := 0
					if st.Size() > 1 {
						c = (i / inner) % qt.Shape[axis]
					}
					w.Data[i] = float64(float32((v - zt.Data[c]) * st.Data[c]))
				}
				name := n.Outputs[0]
				g.Initializers[name] = w
				g.InitTypes[name] = onnx.Float
				g.InitOrder = append(g.InitOrder, name)
				continue
			}
			qi, ok := prod[q]
			if !ok || g.Nodes[qi].OpType != "QuantizeLinear" {
				return nil, nil, fmt.Errorf("DequantizeLinear %q reads %q, neither an initializer nor a QuantizeLinear output", n.Name, q)
			}
			qn := g.Nodes[qi]
			if qn.Inputs[1] != s || qn.Inputs[2] != zp {
				return nil, nil, fmt.Errorf("QuantizeLinear %q and DequantizeLinear %q use different parameters", qn.Name, n.Name)
			}
			rename[n.Outputs[0]] = qn.Inputs[0]
			actOf[n.Outputs[0]] = quant.ActQuant{Scale: g.Initializers[s].Data[0], ZeroPoint: int(g.Initializers[zp].Data[0])}
		case "QuantizeLinear":
		default:
			kept = append(kept, n)
		}
	}
	act := map[string]quant.ActQuant{}
	for i := range kept {
		for j, in := range kept[i].Inputs {
			if x, ok := rename[in]; ok {
				if j != 0 {
					return nil, nil, fmt.Errorf("node %q reads a quantized activation as input %d", kept[i].Name, j)
				}
				act[kept[i].Name] = actOf[in]
				kept[i].Inputs[j] = x
			}
		}
	}
	g.Nodes = kept
	pruneInits(g)
	return &onnx.Model{IRVersion: m.IRVersion, Opset: m.Opset, Graph: g}, act, nil
}
