package pipeline

import (
	"context"
	"errors"
	"math"
	"reflect"
	"testing"

	"mpsearch/dataset"
	"mpsearch/network"
	"mpsearch/quant"
	"mpsearch/sensitivity"
)

// TestVerifierThreads: the verifier's setup (ranges, float outputs), Loss
// and Accuracy run batches on several goroutines and give the same bits
// with 1, 2 and 3 of them, equal to the one-batch-at-a-time sum the loss
// is defined by (InferHook on each batch, SoftTarget per batch, added in
// batch order). The held-out set is cut into uneven batches (50 = 16+16+16+2)
// and the models cover a plain CNN, residual blocks and depthwise
// separable convolutions; with and without labels, minmax and the
// histogram-based KL calibration (whose stats are merged across workers).
func TestVerifierThreads(t *testing.T) {
	ctx := context.Background()
	models := []string{
		"../testdata/fmnist-lenet/lenet.onnx",
		"../testdata/resnet-fmnist/model.onnx",
		"../testdata/dwsep-fmnist/model.onnx",
	}
	for _, path := range models {
		net := loadNet(t, path)
		for _, labels := range []bool{true, false} {
			opts := dataset.Options{}
			if labels {
				opts.Labels = "../testdata/fmnist-lenet/calib_labels.npy"
			}
			all, err := dataset.Load("../testdata/fmnist-lenet/calib.npy", opts)
			if err != nil {
				t.Fatal(err)
			}
			calib, heldOut := all.Subset(0, 40), all.Subset(40, 50)
			for _, ac := range []quant.ActCalib{{}, {Method: quant.CalibKL}} {
				checkVerifierThreads(t, ctx, net, calib, heldOut, ac, path)
			}
		}
	}
}

func checkVerifierThreads(t *testing.T, ctx context.Context, net *network.Network, calib, heldOut *dataset.Dataset, ac quant.ActCalib, name string) {
	t.Helper()
	const batch = 16
	bits := make([]int, len(net.Layers()))
	for i := range bits {
		bits[i] = []int{2, 3, 4, 8}[i%4]
	}
	var ref *NetVerifier
	var refLoss, refAcc float64
	for _, threads := range []int{1, 2, 3} {
		v, err := NewNetVerifierThreads(ctx, net, calib, heldOut, batch, ac, threads, nil)
		if err != nil {
			t.Fatal(err)
		}
		loss, err := v.Loss(ctx, bits)
		if err != nil {
			t.Fatal(err)
		}
		acc, err := v.Accuracy(ctx, bits)
		if err != nil {
			t.Fatal(err)
		}
		if threads == 1 {
			ref, refLoss, refAcc = v, loss, acc
			want := sequentialLoss(t, ctx, v, bits)
			if math.Float64bits(loss) != math.Float64bits(want) {
				t.Errorf("%s %v: Loss %v; want %v (batches one at a time)", name, ac, loss, want)
			}
			continue
		}
		if !reflect.DeepEqual(v.Acts, ref.Acts) {
			t.Errorf("%s %v, %d threads: activation quantizers differ from 1 thread's", name, ac, threads)
		}
		if !reflect.DeepEqual(v.targets, ref.targets) {
			t.Errorf("%s %v, %d threads: targets differ from 1 thread's", name, ac, threads)
		}
		if math.Float64bits(loss) != math.Float64bits(refLoss) {
			t.Errorf("%s %v, %d threads: Loss %v (%#x); want %v (%#x), 1 thread's", name, ac, threads, loss, math.Float64bits(loss), refLoss, math.Float64bits(refLoss))
		}
		if acc != refAcc {
			t.Errorf("%s %v, %d threads: Accuracy %v; want %v, 1 thread's", name, ac, threads, acc, refAcc)
		}
	}
}

// sequentialLoss is the verifier's loss computed batch after batch: the
// definition Loss's workers must reproduce.
func sequentialLoss(t *testing.T, ctx context.Context, v *NetVerifier, bits []int) float64 {
	t.Helper()
	ws := quant.NewWeightSetterCodes(v.net, v.Weights)
	defer ws.Restore()
	if err := ws.SetAll(bits); err != nil {
		t.Fatal(err)
	}
	total := 0.0
	for i, x := range v.batches {
		z, err := v.net.InferHook(ctx, x, v.hook)
		if err != nil {
			t.Fatal(err)
		}
		l, _, err := v.losses[i].Eval(z)
		if err != nil {
			t.Fatal(err)
		}
		total += l
	}
	return total
}

// TestVerifierRangesFromSensitivity checks that the layer-input ranges the
// sensitivity stage observes during its KL targets' pass
// (sensitivity.Config.LayerRanges) build the verifier that observing them
// again builds: the same activation quantizers and the same held-out loss
// and accuracy, bit for bit, under two calibrations.
func TestVerifierRangesFromSensitivity(t *testing.T) {
	ctx := context.Background()
	for _, path := range []string{"../testdata/fmnist-lenet/lenet.onnx", "../testdata/resnet-fmnist/model.onnx"} {
		net := loadNet(t, path)
		all, err := dataset.Load("../testdata/fmnist-lenet/calib.npy", dataset.Options{})
		if err != nil {
			t.Fatal(err)
		}
		calib, heldOut := all.Subset(0, 40), all.Subset(40, 50)
		bits := make([]int, len(net.Layers()))
		for i := range bits {
			bits[i] = []int{2, 4, 8}[i%3]
		}
		for _, ac := range []quant.ActCalib{{}, {Method: quant.CalibPercentile, Percentile: 99.9}} {
			var got quant.ActRanges
			cfg := sensitivity.Config{Bits: []int{4, 8}, Metrics: []string{sensitivity.MetricDirect}, Trace: sensitivity.TraceNone,
				Loss: sensitivity.LossKL, ActCalib: ac, Threads: 2, LayerRanges: func(r quant.ActRanges) { got = r }}
			if _, err := sensitivity.Compute(ctx, net, calib, cfg); err != nil {
				t.Fatal(err)
			}
			if got == nil {
				t.Fatalf("%s, %s: the sensitivity stage gave no layer ranges", path, ac)
			}
			v1, err := NewNetVerifierRanges(ctx, net, calib, heldOut, 16, got, 2, nil)
			if err != nil {
				t.Fatal(err)
			}
			v2, err := NewNetVerifierThreads(ctx, net, calib, heldOut, 16, ac, 2, nil)
			if err != nil {
				t.Fatal(err)
			}
			if len(v1.Acts) != len(v2.Acts) {
				t.Fatalf("%s, %s: %d activation quantizers; want %d", path, ac, len(v1.Acts), len(v2.Acts))
			}
			for node, q := range v2.Acts {
				if v1.Acts[node] != q {
					t.Errorf("%s, %s: %s: quantizer %+v; want %+v (observed again)", path, ac, node, v1.Acts[node], q)
				}
			}
			l1, err1 := v1.Loss(ctx, bits)
			l2, err2 := v2.Loss(ctx, bits)
			a1, err3 := v1.Accuracy(ctx, bits)
			a2, err4 := v2.Accuracy(ctx, bits)
			if err := errors.Join(err1, err2, err3, err4); err != nil {
				t.Fatal(err)
			}
			if math.Float64bits(l1) != math.Float64bits(l2) || a1 != a2 {
				t.Errorf("%s, %s: loss %v, accuracy %v; want %v, %v (observed again)", path, ac, l1, a1, l2, a2)
			}
		}
	}
}
