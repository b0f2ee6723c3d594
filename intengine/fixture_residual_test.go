package intengine

import (
	"context"
	"fmt"
	"testing"

	"mpsearch/network"
	"mpsearch/onnx"
	"mpsearch/tensor"
)

// TestResNetFixtureMatchesSimulation runs the trained residual CNN of
// testdata/resnet-fmnist (16 layers, identity shortcuts, channels-last
// tensors throughout) at mixed 2- to 8-bit weights on 64 Fashion-MNIST
// test images and checks every integer of the run against simulated
// quantization (Reference), bit for bit.
func TestResNetFixtureMatchesSimulation(t *testing.T) {
	om, err := onnx.Load("../testdata/resnet-fmnist/model.onnx")
	if err != nil {
		t.Fatal(err)
	}
	net, err := network.Build(om, network.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ds := loadTest(t)
	calib, _ := ds.Batch(0, 256)
	x, _ := ds.Batch(10, 64)
	ctx := context.Background()
	r, err := ObserveRanges(ctx, net, []*tensor.Tensor{calib})
	if err != nil {
		t.Fatal(err)
	}
	bits := make([]int, len(net.Layers()))
	for i := range bits {
		bits[i] = []int{4, 2, 8, 3}[i%4]
	}
	bits[0], bits[len(bits)-1] = 8, 8
	m, err := Compile(net, Config{Bits: bits, Ranges: r})
	if err != nil {
		t.Fatal(err)
	}
	nhwc := 0
	for _, f := range m.plan.nhwc {
		if f {
			nhwc++
		}
	}
	if nhwc < len(m.plan.bufs)/2 {
		t.Errorf("%d of %d tensors channels-last; want most (every convolution's and Add's)", nhwc, len(m.plan.bufs))
	}
	runBoth(t, m, x, fmt.Sprint("bits ", bits))
}
