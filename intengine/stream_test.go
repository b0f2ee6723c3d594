package intengine

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"mpsearch/network"
	"mpsearch/tensor"
)

// mlpNet is a fully connected network with large layers: 512 inputs,
// Gemm to 1024 (ReLU), Gemm to 2048 (ReLU), MatMul to 1024 (Clip), Gemm to
// 10 logits. At small batches every layer runs on the stream kernels.
func mlpNet(t testing.TB) *network.Network {
	b := newGraphBuilder(21, []int64{512})
	fc := func(name, in string, k, n int) string {
		return b.node(name, "Gemm", []string{in, b.init(name+"_w", 1/math.Sqrt(float64(k)), []int{n, k}), b.init(name+"_b", 0.1, []int{n})}, aInt("transB", 1))
	}
	h1 := b.node("r1", "Relu", []string{fc("fc1", "x", 512, 1024)})
	h2 := b.node("r2", "Relu", []string{fc("fc2", h1, 1024, 2048)})
	mm := b.node("fc3", "MatMul", []string{h2, b.init("fc3_w", 1/math.Sqrt(2048), []int{2048, 1024})})
	h3 := b.node("clip", "Clip", []string{mm, b.init("lo", 0, []int{}, 0), b.init("hi", 0, []int{}, 1.5)})
	return b.build(t, fc("fc4", h3, 1024, 10))
}

// TestStreamLayersMatchSimulation runs mlpNet at 2, 3, 4 and 8 bits (and
// mixed) at batches 1 to 5, so each layer meets both the stream kernels
// (up to streamMaxRows rows) and the tile GEMM, on 1, 2 and 3 threads: the
// codes equal the simulated quantization bit for bit, and every sample's
// codes equal those of the same sample in a batch of 8 (tile GEMM).
func TestStreamLayersMatchSimulation(t *testing.T) {
	net := mlpNet(t)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(22, 23))
	x := randBatch(rng, 8, net.SampleShape)
	r, err := ObserveRanges(ctx, net, []*tensor.Tensor{randBatch(rng, 64, net.SampleShape)})
	if err != nil {
		t.Fatal(err)
	}
	per := tensor.Size(net.SampleShape)
	for _, bits := range [][]int{{8, 8, 8, 8}, {4, 4, 4, 4}, {3, 3, 3, 3}, {2, 2, 2, 2}, {8, 2, 3, 4}} {
		for threads := 1; threads <= 3; threads++ {
			m, err := Compile(net, Config{Bits: bits, Ranges: r, Threads: threads})
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range m.plan.steps {
				if ls, ok := s.(*layerStep); ok && ls.st == nil {
					t.Fatalf("bits %v: layer %s has no stream weights", bits, ls.node)
				}
			}
			_, full := runBoth(t, m, x, fmt.Sprintf("bits %v, threads %d, batch 8", bits, threads))
			for n := 1; n <= 5; n++ {
				xb := &tensor.Tensor{Shape: []int{n, per}, Data: x.Data[:n*per]}
				got, _ := runBoth(t, m, xb, fmt.Sprintf("bits %v, threads %d, batch %d", bits, threads, n))
				for i, tn := range got.Tensors {
					if want := full.Tensors[i].Codes[:len(tn.Codes)]; !slices.Equal(tn.Codes, want) {
						t.Errorf("bits %v, threads %d, batch %d: tensor %s differs from the batch-8 run", bits, threads, n, tn.Name)
					}
				}
				if !slices.Equal(got.Acc, full.Acc[:len(got.Acc)]) {
					t.Errorf("bits %v, threads %d, batch %d: logit accumulators differ from the batch-8 run", bits, threads, n)
				}
			}
		}
	}
}
