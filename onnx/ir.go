package onnx

import "mpsearch/tensor"

// DataType is ONNX's TensorProto.DataType.
type DataType int32

// The ONNX element types the project reads or writes.
const (
	Undefined DataType = 0
	Float     DataType = 1
	Uint8     DataType = 2
	Int8      DataType = 3
	Uint16    DataType = 4
	Int16     DataType = 5
	Int32     DataType = 6
	Int64     DataType = 7
	String    DataType = 8
	Bool      DataType = 9
	Float16   DataType = 10
	Double    DataType = 11
	Uint32    DataType = 12
	Uint64    DataType = 13
	Bfloat16  DataType = 16
	Uint4     DataType = 21
	Int4      DataType = 22
)

// Model is an ONNX model reduced to what the engine needs, independent of
// the protobuf bindings.
type Model struct {
	IRVersion    int64
	Opset        int64 // version of the default ("" or "ai.onnx") domain
	ProducerName string
	Graph        *Graph
	// OtherOpsets holds the opset versions imported for domains other than
	// the default one (for example "com.microsoft"); nil when there are none.
	OtherOpsets map[string]int64
}

// Graph is the main graph of a model.
type Graph struct {
	Name    string
	Inputs  []ValueInfo // graph inputs that are not initializers
	Outputs []ValueInfo
	Nodes   []Node // in file order (ONNX requires topological order)
	// Initializers holds every initializer converted to float64 (integer
	// tensors such as Reshape shapes are converted exactly).
	Initializers map[string]*tensor.Tensor
	// InitTypes is the element type each initializer had in the file.
	InitTypes map[string]DataType
	// InitOrder lists initializer names in file order (for determinism).
	InitOrder []string
}

// ValueInfo describes a graph input or output.
type ValueInfo struct {
	Name     string
	ElemType DataType
	Shape    []Dim // nil when the file gives no shape
}

// Dim is one dimension of a ValueInfo shape: a fixed Value, or dynamic
// (Value < 0, with Param naming it when the file does).
type Dim struct {
	Value int64
	Param string
}

// Node is one operator application.
type Node struct {
	Name    string
	OpType  string
	Domain  string
	Inputs  []string // "" marks an omitted optional input
	Outputs []string
	Attrs   map[string]Attribute
}

// AttrType is ONNX's AttributeProto.AttributeType.
type AttrType int32

// Attribute kinds.
const (
	AttrFloat   AttrType = 1
	AttrInt     AttrType = 2
	AttrString  AttrType = 3
	AttrTensor  AttrType = 4
	AttrGraph   AttrType = 5
	AttrFloats  AttrType = 6
	AttrInts    AttrType = 7
	AttrStrings AttrType = 8
	AttrTensors AttrType = 9
	AttrGraphs  AttrType = 10
)

// Attribute is one node attribute; the field matching Type is set.
type Attribute struct {
	Name    string
	Type    AttrType
	F       float32
	I       int64
	S       string
	T       *tensor.Tensor
	TType   DataType // element type of T in the file
	Floats  []float32
	Ints    []int64
	Strings []string
	// G is the subgraph of a graph attribute (the body of If, Loop, Scan).
	G *Graph
	// Tensors and TTypes are the values and file element types of a
	// tensors attribute; Graphs is the value of a graphs attribute.
	Tensors []*tensor.Tensor
	TTypes  []DataType
	Graphs  []*Graph
}
