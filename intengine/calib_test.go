package intengine

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"

	"mpsearch/quant"
	"mpsearch/tensor"
)

var testCalibs = []quant.ActCalib{{}, {Method: quant.CalibPercentile, Percentile: quant.DefaultPercentile}, {Method: quant.CalibMSE}, {Method: quant.CalibKL}}

// Every calibration method's ranges are the same bit for bit on any
// number of threads, with the batches observed one by one or
// concatenated (the float64 residual network computes the same values
// whatever the batch), and in sub-batches of one sample.
func TestObserveRangesCalibThreads(t *testing.T) {
	ctx := context.Background()
	net := residualNet(t)
	rng := rand.New(rand.NewPCG(11, 12))
	var batches []*tensor.Tensor
	all := &tensor.Tensor{Shape: append([]int{0}, net.SampleShape...)}
	for _, n := range []int{6, 9, 1, 5, 3} {
		x := randBatch(rng, n, net.SampleShape)
		batches = append(batches, x)
		all.Data = append(all.Data, x.Data...)
		all.Shape[0] += n
	}
	for _, c := range testCalibs {
		want, err := ObserveRangesCalib(ctx, net, []*tensor.Tensor{all}, 1, c)
		if err != nil {
			t.Fatal(err)
		}
		check := func(what string, got Ranges) {
			t.Helper()
			if len(got) != len(want) {
				t.Fatalf("%s, %s: %d ranges; want %d", c, what, len(got), len(want))
			}
			for name, w := range want {
				if got[name] != w {
					t.Errorf("%s, %s: range of %s: got %v; want %v (one batch of all samples)", c, what, name, got[name], w)
				}
			}
		}
		for _, threads := range []int{1, 2, 3, 8} {
			got, err := ObserveRangesCalib(ctx, net, batches, threads, c)
			if err != nil {
				t.Fatal(err)
			}
			check(fmt.Sprintf("batches on %d threads", threads), got)
		}
		old := rangePassBytes
		rangePassBytes = 1
		got, err := ObserveRangesCalib(ctx, net, []*tensor.Tensor{all}, 1, c)
		rangePassBytes = old
		if err != nil {
			t.Fatal(err)
		}
		check("sub-batches of one sample", got)
	}
}

// With ranges from every method the fixture LeNet compiles and its codes
// and logits equal the simulated reference's bit for bit; the methods
// other than minmax narrow at least one range (else this checks little);
// and the engine agrees with package quant's simulation on the top-1 class
// of nearly every test image, as under minmax.
func TestLeNetCalibExact(t *testing.T) {
	ctx := context.Background()
	net := loadLeNet(t)
	calib := loadCalib(t).X
	minmax, err := ObserveRanges(ctx, net, []*tensor.Tensor{calib})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range testCalibs[1:] {
		r, err := ObserveRangesCalib(ctx, net, []*tensor.Tensor{calib}, 2, c)
		if err != nil {
			t.Fatal(err)
		}
		narrower := 0
		for name, w := range r {
			if w[0] < minmax[name][0] || w[1] > minmax[name][1] {
				t.Errorf("%s: range of %s %v is wider than minmax's %v", c, name, w, minmax[name])
			}
			if w != minmax[name] {
				narrower++
			}
		}
		if narrower == 0 {
			t.Errorf("%s: every range equals minmax's", c)
		}
		m, err := Compile(net, Config{Bits: []int{8, 4, 3, 2, 8}, Ranges: r})
		if err != nil {
			t.Fatal(err)
		}
		runExact(t, m, 500, 250)
		// Package quant's simulation with its own ranges of the same
		// method (at the layer inputs, behind the pools) predicts the same
		// class on nearly every image.
		qr, err := quant.ObserveRangesCalib(ctx, net, []*tensor.Tensor{calib}, c)
		if err != nil {
			t.Fatal(err)
		}
		ws := quant.NewWeightSetter(net)
		if err := ws.SetAll([]int{8, 4, 3, 2, 8}); err != nil {
			t.Fatal(err)
		}
		x, _ := loadTest(t).Subset(0, 2000).Batch(0, 2000)
		got, err := m.Run(ctx, x)
		if err != nil {
			t.Fatal(err)
		}
		pass, err := net.ForwardHook(ctx, x, quant.ActHook(qr.ActQuantizers()))
		ws.Restore()
		if err != nil {
			t.Fatal(err)
		}
		pi, ps := argmaxRows(got), argmaxRows(pass.Output())
		same := 0
		for i := range pi {
			same += boolInt(pi[i] == ps[i])
		}
		if agree := float64(same) / float64(len(pi)); agree < quantSimAgreement {
			t.Errorf("%s: top-1 agreement with package quant's simulation: got %.2f%%; want >= %.0f%%", c, 100*agree, 100*quantSimAgreement)
		}
	}
}
