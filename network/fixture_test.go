package network

import (
	"context"
	"math"
	"testing"

	"mpsearch/dataset"
	"mpsearch/onnx"
)

// The fixture's calib_logits.npy are ONNX Runtime 1.30 float32 logits; the
// issue bounds our float64 logits' difference at 1e-4.
const fixtureLogitsAbs = 1e-4

const fixtureDir = "../testdata/fmnist-lenet/"

func loadLeNet(t testing.TB) *Network {
	t.Helper()
	m, err := onnx.Load(fixtureDir + "lenet.onnx")
	if err != nil {
		t.Fatal(err)
	}
	net, err := Build(m, Options{})
	if err != nil {
		t.Fatal(err)
	}
	return net
}

func TestLeNetLogitsMatchONNXRuntime(t *testing.T) {
	net := loadLeNet(t)
	ds, err := dataset.Load(fixtureDir+"calib.npy", dataset.Options{Labels: fixtureDir + "calib_labels.npy"})
	if err != nil {
		t.Fatal(err)
	}
	want, err := dataset.Load(fixtureDir+"calib_logits.npy", dataset.Options{})
	if err != nil {
		t.Fatal(err)
	}
	p, err := net.Forward(context.Background(), ds.X)
	if err != nil {
		t.Fatal(err)
	}
	got := p.Output()
	if got.Size() != want.X.Size() || got.Size() != 256*10 {
		t.Fatalf("logits shape: got %v; want [256 10] like %v", got.Shape, want.X.Shape)
	}
	worst := 0.0
	for i := range got.Data {
		worst = math.Max(worst, math.Abs(got.Data[i]-want.X.Data[i]))
	}
	if worst > fixtureLogitsAbs {
		t.Errorf("max |logit - ONNX Runtime logit|: got %.3g; want <= %g", worst, fixtureLogitsAbs)
	}
	t.Logf("max |logit diff| vs ONNX Runtime: %.3g", worst)
}

func TestLeNetLayers(t *testing.T) {
	net := loadLeNet(t)
	want := []struct {
		node string
		macs int64
	}{
		// Conv: out elements × Cin·kh·kw; Gemm: in × out.
		{"/conv1/Conv", 6 * 28 * 28 * 25},
		{"/conv2/Conv", 16 * 10 * 10 * 150},
		{"/fc1/Gemm", 400 * 120},
		{"/fc2/Gemm", 120 * 84},
		{"/fc3/Gemm", 84 * 10},
	}
	ls := net.Layers()
	if len(ls) != len(want) {
		t.Fatalf("layers: got %d; want %d", len(ls), len(want))
	}
	for i, w := range want {
		if ls[i].Node != w.node || ls[i].MACs != w.macs {
			t.Errorf("layer %d: got %s with %d MACs; want %s with %d", i, ls[i].Node, ls[i].MACs, w.node, w.macs)
		}
	}
}
