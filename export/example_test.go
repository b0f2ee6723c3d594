package export_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"mpsearch/dataset"
	"mpsearch/export"
	"mpsearch/network"
	"mpsearch/onnx"
	"mpsearch/quant"
	"mpsearch/tensor"
)

// Export the fixture LeNet with mixed weight bits and 8-bit activations
// calibrated on its 256 images, at opset 21 so that 4-bit and 2-bit
// weights are stored as INT4.
func ExampleQDQ() {
	m, err := onnx.Load("../testdata/fmnist-lenet/lenet.onnx")
	if err != nil {
		log.Fatal(err)
	}
	net, err := network.Build(m, network.Options{})
	if err != nil {
		log.Fatal(err)
	}
	calib, err := dataset.Load("../testdata/fmnist-lenet/calib.npy", dataset.Options{})
	if err != nil {
		log.Fatal(err)
	}
	ranges, err := quant.ObserveRanges(context.Background(), net, []*tensor.Tensor{calib.X})
	if err != nil {
		log.Fatal(err)
	}
	q, err := export.QDQ(net, export.Config{
		Bits:    []int{8, 4, 4, 2, 8},
		Act:     ranges.ActQuantizers(),
		Opset21: true,
	})
	if err != nil {
		log.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "qdq")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	if err := export.Save(filepath.Join(dir, "model.qdq.onnx"), q); err != nil {
		log.Fatal(err)
	}
	ops := map[string]int{}
	for _, n := range q.Graph.Nodes {
		ops[n.OpType]++
	}
	types := map[onnx.DataType]int{}
	for _, name := range q.Graph.InitOrder {
		types[q.Graph.InitTypes[name]]++
	}
	fmt.Println("opset", q.Opset)
	fmt.Println("QuantizeLinear", ops["QuantizeLinear"], "DequantizeLinear", ops["DequantizeLinear"])
	fmt.Println("INT4", types[onnx.Int4], "INT8", types[onnx.Int8], "UINT8", types[onnx.Uint8])
	// Output:
	// opset 21
	// QuantizeLinear 5 DequantizeLinear 10
	// INT4 6 INT8 4 UINT8 5
}
