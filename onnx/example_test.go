package onnx_test

import (
	"fmt"
	"log"

	"mpsearch/onnx"
)

func ExampleLoad() {
	m, err := onnx.Load("testdata/lenet.onnx")
	if err != nil {
		log.Fatal(err)
	}
	g := m.Graph
	fmt.Println("opset", m.Opset)
	for _, in := range g.Inputs {
		fmt.Println("input", in.Name, in.ElemType, in.Shape)
	}
	conv := &g.Nodes[0]
	fmt.Println(conv.Name, conv.OpType, "pads", conv.Ints("pads", nil), "group", conv.Int("group", 1))
	w := g.Initializers[conv.Inputs[1]]
	fmt.Println(conv.Inputs[1], g.InitTypes[conv.Inputs[1]], w.Shape)
	// Output:
	// opset 13
	// input input FLOAT [{-1 batch} {1 } {28 } {28 }]
	// /conv1/Conv Conv pads [2 2 2 2] group 1
	// conv1.weight FLOAT [6 1 5 5]
}
