package hessian_test

import (
	"context"
	"fmt"

	"gonum.org/v1/gonum/mat"

	"mpsearch/hessian"
)

// A five-parameter model with two layers: exact traces are 7 and 3.5.
func Example() {
	h := mat.NewSymDense(5, []float64{
		4, 1, 0.5, 0, 0,
		1, 3, 0, 0.2, 0,
		0.5, 0, 2, 0.3, 0.1,
		0, 0.2, 0.3, 1, 0,
		0, 0, 0.1, 0, 0.5,
	})
	o, err := hessian.NewMatrixOracle(h, []hessian.Block{
		{Name: "conv1", Offset: 0, Len: 2},
		{Name: "fc", Offset: 2, Len: 3},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx := context.Background()

	res, err := hessian.Hutchinson(ctx, o, hessian.Options{Seed: 1, Tol: 0.05})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, bt := range res.Blocks {
		fmt.Printf("Hutchinson %s: %.2f ± %.2f\n", bt.Name, bt.Trace, bt.StdErr)
	}
	fmt.Println("converged:", res.Converged, "products:", res.Products)

	// Blocks no longer than the sketch are deflated completely: exact.
	pp, err := hessian.HutchPlusPlus(ctx, o, hessian.PPOptions{Deflation: hessian.DeflatePerBlock})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, bt := range pp.Blocks {
		fmt.Printf("Hutch++ %s: %.4f\n", bt.Name, bt.Trace)
	}

	eig, err := hessian.TopEigenvalues(ctx, o, hessian.EigenOptions{Method: hessian.Lanczos})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, be := range eig.Blocks {
		fmt.Printf("top eigenvalue %s: %.4f\n", be.Name, be.Value)
	}
	// Output:
	// Hutchinson conv1: 6.82 ± 0.32
	// Hutchinson fc: 3.42 ± 0.14
	// converged: true products: 48
	// Hutch++ conv1: 7.0000
	// Hutch++ fc: 3.5000
	// top eigenvalue conv1: 4.6180
	// top eigenvalue fc: 2.0889
}
