package export

import (
	"context"
	"testing"

	"mpsearch/quant"
	"mpsearch/tensor"
)

// TestBiasCorrectedExport exports the fixture LeNet with bias-corrected
// GPTQ codes (8/4/3/2/8 bits): every layer reads a new FLOAT bias equal
// to float32(bias + shift), and ONNX Runtime agrees with our simulation
// (which applies the same shifts) on the 256 calibration images.
func TestBiasCorrectedExport(t *testing.T) {
	net := loadLeNet(t)
	ds := loadCalib(t)
	act := calibActs(t, net, ds)
	bits := []int{8, 4, 3, 2, 8}
	codes, err := quant.WithBiasCorrection(context.Background(), lenetGPTQ(t, net), net, []*tensor.Tensor{ds.X})
	if err != nil {
		t.Fatal(err)
	}
	path, m := exportTo(t, net, Config{Bits: bits, Act: act, Weights: codes})
	byName := map[string][]string{}
	for _, n := range m.Graph.Nodes {
		byName[n.Name] = n.Inputs
	}
	for li, l := range net.Layers() {
		shift, err := codes.(quant.BiasShifter).BiasShift(li, bits[li])
		if err != nil || shift == nil {
			t.Fatalf("%s: shift %v, error %v; want a shift", l.Node, shift, err)
		}
		orig := net.Model.Graph.Initializers[net.Params()[l.Bias].Name]
		got := m.Graph.Initializers[byName[l.Node][2]]
		if got == nil || got.Size() != len(shift) {
			t.Fatalf("%s: bias input %q is not an initializer of %d values", l.Node, byName[l.Node][2], len(shift))
		}
		for c := range shift {
			if want := float64(float32(orig.Data[c] + shift[c])); got.Data[c] != want {
				t.Fatalf("%s channel %d: exported bias %v; want float32(%v + %v) = %v", l.Node, c, got.Data[c], orig.Data[c], shift[c], want)
			}
		}
	}
	run := ortRunner(t)
	compareORT(t, run(t, path, "disabled", ortInput{X: ds.X}), simLogitsCodes(t, net, codes, bits, act, ds.X), "disabled")
}
