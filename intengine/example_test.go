package intengine_test

import (
	"context"
	"fmt"
	"testing"

	"mpsearch/dataset"
	"mpsearch/intengine"
	"mpsearch/network"
	"mpsearch/onnx"
	"mpsearch/tensor"
)

// Compile the fixture LeNet with 8-bit first and last layers and 4-bit
// middle layers, calibrated on its 256 images, and run it integer-only.
func Example() {
	dir := "../testdata/fmnist-lenet/"
	m, err := onnx.Load(dir + "lenet.onnx")
	if err != nil {
		fmt.Println(err)
		return
	}
	net, err := network.Build(m, network.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	calib, err := dataset.Load(dir+"calib.npy", dataset.Options{Labels: dir + "calib_labels.npy"})
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx := context.Background()
	ranges, err := intengine.ObserveRanges(ctx, net, []*tensor.Tensor{calib.X})
	if err != nil {
		fmt.Println(err)
		return
	}
	model, err := intengine.Compile(net, intengine.Config{Bits: []int{8, 4, 4, 4, 8}, Ranges: ranges})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, s := range model.Steps() {
		fmt.Println(s[1], s[0])
	}
	logits, err := model.Run(ctx, calib.X)
	if err != nil {
		fmt.Println(err)
		return
	}
	correct := 0
	for i, y := range calib.Y {
		row := logits.Data[i*10 : (i+1)*10]
		best := 0
		for c := range row {
			if row[c] > row[best] {
				best = c
			}
		}
		if best == y {
			correct++
		}
	}
	fmt.Printf("logits %v, %d of %d correct\n", logits.Shape, correct, calib.Len())
	// Output:
	// QuantizeLinear input
	// Conv /conv1/Conv+/Relu
	// MaxPool /pool/MaxPool
	// Conv /conv2/Conv+/Relu_1
	// MaxPool /pool_1/MaxPool
	// Gemm /fc1/Gemm+/Relu_2
	// Gemm /fc2/Gemm+/Relu_3
	// Gemm /fc3/Gemm
	// logits [256 10], 242 of 256 correct
}

// Serve one image at a time without allocating: RunInto writes the
// dequantized logits into a tensor the caller keeps, and the Model
// recycles its workspace, so after the first run an inference allocates
// nothing (as in a Go service answering requests).
func ExampleModel_RunInto() {
	dir := "../testdata/fmnist-lenet/"
	m, err := onnx.Load(dir + "lenet.onnx")
	if err != nil {
		fmt.Println(err)
		return
	}
	net, err := network.Build(m, network.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	calib, err := dataset.Load(dir+"calib.npy", dataset.Options{Labels: dir + "calib_labels.npy"})
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx := context.Background()
	ranges, err := intengine.ObserveRanges(ctx, net, []*tensor.Tensor{calib.X})
	if err != nil {
		fmt.Println(err)
		return
	}
	model, err := intengine.Compile(net, intengine.Config{Bits: []int{8, 4, 4, 4, 8}, Ranges: ranges, Threads: 1})
	if err != nil {
		fmt.Println(err)
		return
	}
	image, _ := calib.Batch(3, 1) // the fourth image, shape [1 1 28 28]
	logits := tensor.New(model.OutputShape(1)...)
	if err := model.RunInto(ctx, logits, image); err != nil {
		fmt.Println(err)
		return
	}
	best := 0
	for c, v := range logits.Data {
		if v > logits.Data[best] {
			best = c
		}
	}
	allocs := testing.AllocsPerRun(10, func() { _ = model.RunInto(ctx, logits, image) })
	fmt.Printf("class %d (label %d), %v allocations per inference\n", best, calib.Y[3], allocs)
	// Output:
	// class 3 (label 3), 0 allocations per inference
}
