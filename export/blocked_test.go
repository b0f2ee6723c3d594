package export

import (
	"context"
	"math"
	"testing"

	"mpsearch/dataset"
	"mpsearch/internal/fixture"
	"mpsearch/onnx"
	"mpsearch/quant"
	"mpsearch/tensor"
)

// refBlockedDQ is ONNX's DequantizeLinear (opset 21) on a constant
// quantized tensor, written from the operator's definition: y = (x - zp)
// · s in float32, where s and zp are the scale and zero point of the
// element's block: the same index on every axis but axis, where it is the
// element's index divided by block_size (0: per-axis, one scale per index
// along axis).
func refBlockedDQ(x, s, zp *tensor.Tensor, axis, block int) []float64 {
	out := make([]float64, x.Size())
	inner := 1
	for _, d := range x.Shape[axis+1:] {
		inner *= d
	}
	for i, v := range x.Data {
		j := (i / inner) % x.Shape[axis]
		outer := i / (inner * x.Shape[axis])
		var k int
		if block == 0 {
			k = j
		} else {
			k = (outer*s.Shape[axis]+j/block)*inner + i%inner
		}
		out[i] = float64(float32(float32(v-zp.Data[k]) * float32(s.Data[k])))
	}
	return out
}

// TestBlockedExportEqualsSimulation exports the fixture LeNet with blocked
// codes (round to nearest with the clipping search, and GPTQ; block sizes
// 2 and 32; mixed 8/4/3/2/4 bits) and checks, reading the file back, that
// every weight DequantizeLinear has block_size, the blocked axis and the
// scale tensor's shape, its scales stored as FLOAT16 and cast to FLOAT,
// and that dequantizing it by ONNX's definition
// (refBlockedDQ) gives exactly our simulated weights (quant.Fake).
func TestBlockedExportEqualsSimulation(t *testing.T) {
	net := loadLeNet(t)
	ds := loadCalib(t)
	act := calibActs(t, net, ds)
	bits := []int{8, 4, 3, 2, 4}
	for _, method := range []string{quant.MethodRTN, quant.MethodGPTQ} {
		for _, block := range []int{2, 32} {
			codes, err := quant.NewBlockCodes(context.Background(), method, net, []*tensor.Tensor{ds.X}, quant.BlockCodesOptions{CodesOptions: quant.CodesOptions{Widths: []int{2, 3, 4, 8}}, Block: block, MSE: true})
			if err != nil {
				t.Fatal(err)
			}
			m, note, err := Compact(net, Config{Bits: bits, Act: act, Weights: codes})
			if err != nil || note != "" || m.Opset != Int4Opset {
				t.Fatalf("%s block %d: opset %d, note %q, error %v; want opset 21", method, block, m.Opset, note, err)
			}
			data, err := onnx.Marshal(m, onnx.SaveOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if m, err = onnx.Parse(data, ""); err != nil {
				t.Fatal(err)
			}
			g := m.Graph
			prod := producers(g)
			byName := map[string]onnx.Node{}
			for _, n := range g.Nodes {
				byName[n.Name] = n
			}
			for li, l := range net.Layers() {
				dq := g.Nodes[prod[byName[l.Node].Inputs[1]]]
				w := net.Params()[l.Weight].Value
				wq, err := codes.Codes(li, bits[li])
				if err != nil {
					t.Fatal(err)
				}
				// The scales are FLOAT16 initializers cast to FLOAT.
				sName := dq.Inputs[1]
				if pi, ok := prod[sName]; ok && g.Nodes[pi].OpType == "Cast" && g.Nodes[pi].Int("to", 0) == int64(onnx.Float) {
					sName = g.Nodes[pi].Inputs[0]
				}
				if g.InitTypes[sName] != onnx.Float16 {
					t.Fatalf("%s block %d, %s: scales %q are %v; want FLOAT16 initializers cast to FLOAT", method, block, l.Node, sName, g.InitTypes[sName])
				}
				x, s, zp := g.Initializers[dq.Inputs[0]], g.Initializers[sName], g.Initializers[dq.Inputs[2]]
				axis, bs := int(dq.Int("axis", 1)), int(dq.Int("block_size", 0))
				wantShape := quant.BlockScaleShape(w.Shape, l.ChannelAxis, wq.Block)
				if dq.OpType != "DequantizeLinear" || bs != wq.Block || bs < 1 || axis != quant.BlockedAxis(w.Shape, l.ChannelAxis) || !tensor.SameShape(s.Shape, wantShape) || !tensor.SameShape(zp.Shape, wantShape) {
					t.Fatalf("%s block %d, %s: %s axis %d block_size %d, scale %v, zero point %v; want blocked DequantizeLinear, block %d, scale %v", method, block, l.Node, dq.OpType, axis, bs, s.Shape, zp.Shape, wq.Block, wantShape)
				}
				got := refBlockedDQ(x, s, zp, axis, bs)
				want, err := quant.Fake(codes, net, li, bits[li])
				if err != nil {
					t.Fatal(err)
				}
				for i := range want {
					if got[i] != want[i] {
						t.Fatalf("%s block %d, %s: weight %d dequantized from the file %v; simulated %v (want equal)", method, block, l.Node, i, got[i], want[i])
					}
				}
				if q := float64(quant.QMax(bits[li])); maxAbs(x.Data) > q {
					t.Errorf("%s block %d, %s: codes beyond ±%v", method, block, l.Node, q)
				}
			}
		}
	}
}

func maxAbs(v []float64) float64 {
	m := 0.0
	for _, x := range v {
		m = math.Max(m, math.Abs(x))
	}
	return m
}

// TestORTBlocked runs the fixture LeNet exported with blocked codes (GPTQ
// and round to nearest with the clipping search, blocks of 32, mixed
// 8/4/3/2/4 bits) in ONNX Runtime, unoptimized and optimized, against our
// simulation on the 256 calibration images (compareORT's bounds) and, for
// GPTQ optimized, top-1 on the 10,000 test images within
// ortAccuracyPoints.
func TestORTBlocked(t *testing.T) {
	run := ortRunner(t)
	net := loadLeNet(t)
	ds := loadCalib(t)
	act := calibActs(t, net, ds)
	bits := []int{8, 4, 3, 2, 4}
	var test *tensor.Tensor
	var labels []int
	if !testing.Short() {
		ts := fixtureTestSet(t)
		test, labels = ts.X, ts.Y
	}
	for _, method := range []string{quant.MethodGPTQ, quant.MethodRTN} {
		codes, err := quant.NewBlockCodes(context.Background(), method, net, []*tensor.Tensor{ds.X}, quant.BlockCodesOptions{CodesOptions: quant.CodesOptions{Widths: []int{2, 3, 4, 8}}, Block: 32, MSE: true})
		if err != nil {
			t.Fatal(err)
		}
		path, _ := exportTo(t, net, Config{Bits: bits, Act: act, Weights: codes, Opset21: true})
		for _, level := range []string{"disabled", "all"} {
			t.Run(method+" "+level, func(t *testing.T) {
				compareORT(t, run(t, path, level, ortInput{X: ds.X}), simLogitsCodes(t, net, codes, bits, act, ds.X), level)
			})
		}
		if test == nil || method != quant.MethodGPTQ {
			continue
		}
		ortAcc := accuracy(argmax(run(t, path, "all", ortInput{X: test})), labels)
		simAcc := accuracy(argmax(simLogitsCodes(t, net, codes, bits, act, test)), labels)
		t.Logf("%s, blocks of 32, bits %v: top-1 on 10,000 test images: ONNX Runtime %.2f%%, simulated %.2f%%", method, bits, ortAcc, simAcc)
		if math.Abs(ortAcc-simAcc) > ortAccuracyPoints {
			t.Errorf("ONNX Runtime accuracy %.2f%% vs simulated %.2f%%: differ by more than %.1f points", ortAcc, simAcc, ortAccuracyPoints)
		}
	}
}

// fixtureTestSet is the 10,000 Fashion-MNIST test images with float32
// values (the exported model's input type), both sides fed the same.
func fixtureTestSet(t *testing.T) *dataset.Dataset {
	ts := fixture.TestSet(t, 0)
	for i, v := range ts.X.Data {
		ts.X.Data[i] = float64(float32(v))
	}
	return ts
}
