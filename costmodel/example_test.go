package costmodel_test

import (
	"fmt"

	"mpsearch/costmodel"
	"mpsearch/kernels"
)

// Predict the latency of a 3x3 convolution (64 to 128 channels on a 16x16
// image) at each weight bit width with the shipped analytic profile.
func ExamplePredict() {
	p, err := costmodel.ReadProfileFile("../profiles/avx2-analytic.yaml")
	if err != nil {
		fmt.Println(err)
		return
	}
	g := kernels.ConvShape{C: 64, H: 16, W: 16, KH: 3, KW: 3, PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1}
	conv, err := costmodel.ConvLayer("conv", g, 128, 1)
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, bits := range []int{8, 4, 2} {
		d, err := costmodel.Predict(p, conv, bits, 1)
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Printf("%d bits: %.0f µs, %d bytes, %.3g BOPs\n", bits, d.Seconds()*1e6, conv.SizeBytes(bits), conv.BOPs(bits))
	}
	// Output:
	// 8 bits: 356 µs, 74240 bytes, 1.21e+09 BOPs
	// 4 bits: 265 µs, 37376 bytes, 6.04e+08 BOPs
	// 2 bits: 247 µs, 18944 bytes, 3.02e+08 BOPs
}
