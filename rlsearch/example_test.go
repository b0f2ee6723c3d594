package rlsearch_test

import (
	"context"
	"fmt"
	"math"

	"mpsearch/rlsearch"
)

// A four-layer network with widths 2, 4 and 8 under a size budget: the
// agent searches for 100 episodes and its best configuration is polished.
func Example() {
	layer := func(name string, op rlsearch.OpKind, in, out, k int, trace float64) rlsearch.Layer {
		params := float64(in * out * k * k)
		l := rlsearch.Layer{
			Name:     name,
			Features: rlsearch.LayerFeatures{Op: op, InChannels: in, OutChannels: out, Kernel: k, Stride: 1, Params: params, MACs: params * 100},
			Bits:     []int{2, 4, 8},
		}
		for _, b := range l.Bits {
			step := 1 / (math.Exp2(float64(b-1)) - 1)
			l.Omega = append(l.Omega, trace*step*step)
			l.Costs = append(l.Costs, []float64{params * float64(b) / 8}) // bytes
		}
		return l
	}
	p := &rlsearch.Problem{
		Resources: []rlsearch.Resource{{Name: "size", Limit: 6000}},
		Layers: []rlsearch.Layer{
			layer("conv1", rlsearch.OpConv, 3, 16, 3, 5),
			layer("conv2", rlsearch.OpConv, 16, 32, 3, 1),
			layer("fc1", rlsearch.OpGemm, 512, 16, 1, 0.5),
			layer("fc2", rlsearch.OpGemm, 16, 10, 1, 3),
		},
	}
	res, err := rlsearch.Search(context.Background(), p, rlsearch.Config{Episodes: 100, Seed: 1})
	if err != nil {
		fmt.Println(err)
		return
	}
	for i, l := range p.Layers {
		fmt.Printf("%s: %d bits\n", l.Name, res.Bits[i])
	}
	fmt.Printf("objective %.4f, size %g bytes (budget %g)\n", res.Objective, res.Costs[0], p.Resources[0].Limit)
	// Output:
	// conv1: 8 bits
	// conv2: 4 bits
	// fc1: 2 bits
	// fc2: 8 bits
	// objective 0.5209, size 4944 bytes (budget 6000)
}
