package ilp_test

import (
	"context"
	"fmt"

	"mpsearch/ilp"
)

// Three layers, 4 or 8 bits each, under a size budget; the first and last
// layer are tied to the same bit width.
func Example() {
	opt := func(bits int, omega, size float64) ilp.Option {
		return ilp.Option{Bits: bits, Omega: omega, Costs: []float64{size}}
	}
	p := &ilp.Problem{
		Resources: []ilp.Resource{{Name: "size", Unit: "B", Limit: 300}},
		Layers: []ilp.Layer{
			{Name: "conv1", Options: []ilp.Option{opt(4, 0.020, 50), opt(8, 0.001, 100)}},
			{Name: "conv2", Options: []ilp.Option{opt(4, 0.300, 100), opt(8, 0.002, 200)}},
			{Name: "fc", Options: []ilp.Option{opt(4, 0.010, 25), opt(8, 0.001, 50)}},
		},
		Ties: [][]string{{"conv1", "fc"}},
	}
	sol, err := ilp.Default().Solve(context.Background(), p)
	if err != nil {
		fmt.Println(err)
		return
	}
	for i, c := range sol.Choices {
		fmt.Printf("%s: %d bits\n", p.Layers[i].Name, c.Bits)
	}
	fmt.Printf("objective %.3f, size %gB, optimal %v\n", sol.Objective, sol.Costs[0], sol.Optimal)

	p.Resources[0].Limit = 150
	_, err = ilp.Default().Solve(context.Background(), p)
	fmt.Println(err)
	// Output:
	// conv1: 4 bits
	// conv2: 8 bits
	// fc: 4 bits
	// objective 0.032, size 275B, optimal true
	// ilp: infeasible: size budget 150B below the minimum 175B achievable
}
