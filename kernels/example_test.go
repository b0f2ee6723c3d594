package kernels_test

import (
	"fmt"

	"mpsearch/kernels"
)

// A 2 x 3 uint8 activation matrix with zero point 10 against two 4-bit
// output channels, first as exact int32 sums, then requantized with
// M = 0.5 (m = 1<<30, shift 31), output zero point 100.
func ExampleGEMM() {
	a := []uint8{
		10, 11, 12,
		20, 0, 255,
	}
	w, err := kernels.PackWeights([]int8{
		1, -2, 3,
		-8, 7, 0,
	}, 2, 3, 4)
	if err != nil {
		fmt.Println(err)
		return
	}
	acc := make([]int32, 2*2)
	if err := kernels.GEMM(acc, a, 2, 3, 10, w, kernels.Options{}); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(acc)

	out := make([]uint8, 2*2)
	rq := &kernels.Requant{Mult: []int32{1 << 30}, Shift: []int{31}, Zero: 100, Lo: 0, Hi: 255}
	if err := kernels.GEMMRequant(out, a, 2, 3, 10, w, rq, kernels.Options{}); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(out)
	// Output:
	// [4 7 765 -150]
	// [102 104 255 25]
}
