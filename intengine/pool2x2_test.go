package intengine

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"mpsearch/network"
)

// poolNet is a convolution with c output channels, its ReLU and a 2x2
// stride-2 MaxPool over an h×w map (odd sizes drop the last row or
// column), then another convolution and a Gemm: as in LeNet, the pool
// between two convolutions runs channels-last.
func poolNet(t testing.TB, c, h, w int) *network.Network {
	b := newGraphBuilder(uint64(c*100+h*10+w), []int64{3, int64(h), int64(w)})
	cv := b.node("c1", "Conv", []string{"x", b.init("w1", 0.4, []int{c, 3, 3, 3}), b.init("b1", 0.1, []int{c})}, aInts("pads", 1, 1, 1, 1))
	r := b.node("r1", "Relu", []string{cv})
	mp := b.node("mp", "MaxPool", []string{r}, aInts("kernel_shape", 2, 2), aInts("strides", 2, 2))
	c2 := b.node("c2", "Conv", []string{mp, b.init("w2", 0.3, []int{4, c, 3, 3}), b.init("b2", 0.1, []int{4})}, aInts("pads", 1, 1, 1, 1))
	fl := b.node("flat", "Flatten", []string{c2})
	n := 4 * (h / 2) * (w / 2)
	return b.build(t, b.node("fc", "Gemm", []string{fl, b.init("wf", 0.2, []int{5, n}), b.init("bf", 0.1, []int{5})}, aInt("transB", 1)))
}

// The channels-last 2x2 MaxPool (runMax2x2NHWC: the per-channel loop below
// maxPairBytes channels, kernels.MaxBytes from it) gives the simulated
// reference's codes bit for bit, on channel counts around the threshold
// and the vector width, even and odd maps.
func TestMaxPool2x2NHWC(t *testing.T) {
	for _, c := range []int{2, 6, 31, 32, 33, 64, 70} {
		for _, hw := range [][2]int{{8, 8}, {7, 9}} {
			net := poolNet(t, c, hw[0], hw[1])
			m := compileSynthetic(t, net, []int{8, 4, 8})
			var pool *poolStep
			for _, s := range m.plan.steps {
				if p, ok := s.(*poolStep); ok {
					pool = p
				}
			}
			if pool == nil || !pool.nhwc || !pool.max2x2 {
				t.Fatalf("c %d: pool step %+v; want a channels-last 2x2 max pool", c, pool)
			}
			x := randBatch(rand.New(rand.NewPCG(uint64(c), 9)), 5, net.SampleShape)
			runBoth(t, m, x, fmt.Sprintf("%d channels, %dx%d", c, hw[0], hw[1]))
		}
	}
}
