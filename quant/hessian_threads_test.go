package quant

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"testing"
	"time"

	"mpsearch/network"
	"mpsearch/onnx"
	"mpsearch/tensor"
)

// TestConvColumnsInto: the columns made on 1, 2, 3 or 5 goroutines into a
// buffer full of NaN (reused, so every entry must be overwritten) equal
// ConvColumns' bit for bit, on testNet's grouped, strided, dilated and
// unevenly padded Conv.
func TestConvColumnsInto(t *testing.T) {
	net := testNet(t)
	rng := rand.New(rand.NewPCG(34, 1))
	x := tensor.New(3, 4, 9, 8)
	for i := range x.Data {
		x.Data[i] = rng.NormFloat64()
	}
	want, wantG, err := net.ConvColumns(0, x)
	if err != nil {
		t.Fatal(err)
	}
	for _, workers := range []int{1, 2, 3, 5} {
		buf := make([]float64, len(want)+7)
		for i := range buf {
			buf[i] = math.NaN()
		}
		got, g, err := net.ConvColumnsInto(0, x, buf, workers)
		if err != nil {
			t.Fatal(err)
		}
		if &got[0] != &buf[0] {
			t.Errorf("%d workers: the columns were not written into the buffer", workers)
		}
		if g != wantG || !slices.Equal(got, want) {
			t.Errorf("%d workers: got %d values in %d groups differing from ConvColumns; want the %d values, %d groups", workers, len(got), g, len(want), wantG)
		}
	}
}

// TestHessianThreadIndependence: H and the sums (Mean) of every layer of
// testNet are the same bit for bit on 1, 2 or 3 CPUs, with H in one block
// or in blocks of 5 columns, and equal to the accumulation of the old
// path (hessianLegacy: single-threaded im2col and sums) on one CPU.
func TestHessianThreadIndependence(t *testing.T) {
	net := testNet(t)
	rng := rand.New(rand.NewPCG(35, 1))
	batches := []*tensor.Tensor{tensor.New(5, 4, 9, 8), tensor.New(3, 4, 9, 8)}
	for _, b := range batches {
		for i := range b.Data {
			b.Data[i] = rng.NormFloat64()
		}
	}
	oldLimit := hessianColsLimit
	hessianColsLimit = 2 * 12 * 45 * 2 // two samples' columns per chunk
	defer func() { hessianColsLimit = oldLimit }()
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	run := func(block, procs int, legacy bool) []*LayerHessian {
		oldBlock := hessianBlock
		hessianBlock, hessianLegacy = block, legacy
		defer func() { hessianBlock, hessianLegacy = oldBlock, false }()
		runtime.GOMAXPROCS(procs)
		hs, err := AccumulateHessians(context.Background(), net, batches, []int{0, 1, 2, 3}, nil)
		if err != nil {
			t.Fatal(err)
		}
		return hs
	}
	for _, block := range []int{256, 5} {
		want := run(block, 1, true)
		for _, procs := range []int{1, 2, 3} {
			got := run(block, procs, false)
			for i, h := range got {
				for g := range h.Groups {
					if !slices.Equal(h.h[g], want[i].h[g]) || !slices.Equal(h.sum[g], want[i].sum[g]) || h.N != want[i].N {
						t.Errorf("block %d, %d CPUs: %s group %d: H or the sums differ from the old path's on one CPU; want them equal bit for bit", block, procs, h.Node, g)
					}
				}
			}
		}
	}
}

// BenchmarkAccumulateHessians measures the Hessian pass of every layer of
// ResNet18 (resnet18-opset17.onnx in MPSEARCH_TORCHVISION_DIR, from
// scripts/export_torchvision.py) on MPSEARCH_HESSIAN_BENCH_IMAGES random
// 224×224 images (default 8), float32 products as mpsearch runs by
// default, on GOMAXPROCS CPUs (the forward's products too): wall and process CPU seconds of the old
// path (hessianLegacy) and of the current one in the same run (the least
// of two alternated passes each), and their ratios; and the same for the
// layers' Adds alone (LayerHessian.Add on the inputs of one forward pass,
// kept: old-add-*, new-add-*). Layers are taken 8 at a time to bound H's memory, as
// NewGPTQCodes's passes do. A measurement run on request (go test -run
// '^$' -bench AccumulateHessians -benchtime 1x ./quant).
func BenchmarkAccumulateHessians(b *testing.B) {
	dir := os.Getenv("MPSEARCH_TORCHVISION_DIR")
	if dir == "" {
		b.Skip("opt-in: MPSEARCH_TORCHVISION_DIR=/work/models")
	}
	n := 8
	if s := os.Getenv("MPSEARCH_HESSIAN_BENCH_IMAGES"); s != "" {
		if _, err := fmt.Sscan(s, &n); err != nil {
			b.Fatal(err)
		}
	}
	m, err := onnx.Load(filepath.Join(dir, "resnet18-opset17.onnx"))
	if err != nil {
		b.Fatal(err)
	}
	net, err := network.Build(m, network.Options{Precision: network.F32})
	if err != nil {
		b.Fatal(err)
	}
	x := tensor.New(n, 3, 224, 224)
	rng := rand.New(rand.NewPCG(1, 1))
	for i := range x.Data {
		x.Data[i] = rng.NormFloat64()
	}
	ctx := context.Background()
	// The forward's products on every CPU, as search --threads runs them.
	network.SetBLASThreads(runtime.GOMAXPROCS(0))
	defer network.SetBLASThreads(1)
	pass := func(legacy bool) (wall, cpu float64) {
		hessianLegacy = legacy
		defer func() { hessianLegacy = false }()
		t0, c0 := time.Now(), processCPU()
		for l0 := 0; l0 < len(net.Layers()); l0 += 8 {
			var layers []int
			for li := l0; li < min(l0+8, len(net.Layers())); li++ {
				layers = append(layers, li)
			}
			if _, err := AccumulateHessians(ctx, net, []*tensor.Tensor{x}, layers, nil); err != nil {
				b.Fatal(err)
			}
		}
		return time.Since(t0).Seconds(), (processCPU() - c0).Seconds()
	}
	// The layers' inputs, for the Adds alone.
	inputs := map[string]*tensor.Tensor{}
	if _, err := net.InferHook(ctx, x, func(node string, input int, v *tensor.Tensor) *tensor.Tensor {
		if input == 0 {
			inputs[node] = v.Clone()
		}
		return v
	}); err != nil {
		b.Fatal(err)
	}
	adds := func(legacy bool) (wall, cpu float64) {
		hessianLegacy = legacy
		defer func() { hessianLegacy = false }()
		cols := new(colsBuffers)
		t0, c0 := time.Now(), processCPU()
		for li, l := range net.Layers() {
			h, err := NewLayerHessian(net, li)
			if err != nil {
				b.Fatal(err)
			}
			h.cols = cols
			if err := h.Add(inputs[l.Node]); err != nil {
				b.Fatal(err)
			}
		}
		return time.Since(t0).Seconds(), (processCPU() - c0).Seconds()
	}
	for b.Loop() {
		aow, aoc := adds(true)
		anw, anc := adds(false)
		aow2, aoc2 := adds(true)
		anw2, anc2 := adds(false)
		b.ReportMetric(min(aow, aow2), "old-add-wall-s")
		b.ReportMetric(min(aoc, aoc2), "old-add-cpu-s")
		b.ReportMetric(min(anw, anw2), "new-add-wall-s")
		b.ReportMetric(min(anc, anc2), "new-add-cpu-s")
		// Twice each, alternating, the least of each: the first pass
		// pays the heap's growth.
		ow, oc := pass(true)
		nw, nc := pass(false)
		ow2, oc2 := pass(true)
		nw2, nc2 := pass(false)
		ow, oc, nw, nc = min(ow, ow2), min(oc, oc2), min(nw, nw2), min(nc, nc2)
		b.ReportMetric(ow, "old-wall-s")
		b.ReportMetric(oc, "old-cpu-s")
		b.ReportMetric(nw, "new-wall-s")
		b.ReportMetric(nc, "new-cpu-s")
		b.ReportMetric(nw/ow, "wall-ratio")
		b.ReportMetric(nc/oc, "cpu-ratio")
	}
}
