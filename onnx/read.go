package onnx

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"unicode"

	"google.golang.org/protobuf/proto"

	"mpsearch/onnx/internal/onnxpb"
	"mpsearch/tensor"
)

// The default-domain opset range Load and Parse accept.
const (
	MinOpset = 6
	MaxOpset = 21
)

// LoadOptions configures reading. The zero value accepts opsets MinOpset
// to MaxOpset.
type LoadOptions struct {
	// MinOpset and MaxOpset override the accepted range of the default
	// domain's opset when non-zero. The default starts at opset 6 (the
	// older ONNX conformance cases, whose Add/Mul/Gemm carry the legacy
	// broadcast and axis attributes that the engine handles).
	MinOpset, MaxOpset int64
}

// Load reads an ONNX model file. External-data initializers are read
// relative to the file's directory.
func Load(path string) (*Model, error) { return LoadOptions{}.Load(path) }

// Parse decodes a serialized ONNX model. dir is the directory external
// data is resolved against; "" refuses external data.
func Parse(data []byte, dir string) (*Model, error) { return LoadOptions{}.Parse(data, dir) }

// Load reads an ONNX model file with options o. Errors name the file.
func (o LoadOptions) Load(path string) (*Model, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("onnx: %w", err)
	}
	m, err := o.parse(data, filepath.Dir(path))
	if err != nil {
		return nil, fmt.Errorf("onnx: %s: %w", path, err)
	}
	return m, nil
}

// Parse decodes a serialized ONNX model with options o.
func (o LoadOptions) Parse(data []byte, dir string) (*Model, error) {
	m, err := o.parse(data, dir)
	if err != nil {
		return nil, fmt.Errorf("onnx: %w", err)
	}
	return m, nil
}

func (o LoadOptions) parse(data []byte, dir string) (*Model, error) {
	if len(data) == 0 {
		return nil, malformed("empty file")
	}
	var mp onnxpb.ModelProto
	if err := proto.Unmarshal(data, &mp); err != nil {
		return nil, malformed("malformed protobuf: %v (truncated, or not an ONNX model)", err)
	}
	if mp.Graph == nil {
		return nil, malformed("no graph (not an ONNX model?)")
	}
	m := &Model{IRVersion: mp.GetIrVersion(), ProducerName: mp.GetProducerName()}
	found := false
	for _, op := range mp.OpsetImport {
		switch dom := op.GetDomain(); dom {
		case "", "ai.onnx":
			// Nodes bind to the highest version imported for their domain.
			if !found || op.GetVersion() > m.Opset {
				m.Opset = op.GetVersion()
			}
			found = true
		default:
			if m.OtherOpsets == nil {
				m.OtherOpsets = map[string]int64{}
			}
			if op.GetVersion() > m.OtherOpsets[dom] {
				m.OtherOpsets[dom] = op.GetVersion()
			}
		}
	}
	if !found {
		return nil, malformed("no opset_import for the default ONNX domain")
	}
	lo, hi := o.MinOpset, o.MaxOpset
	if lo == 0 {
		lo = MinOpset
	}
	if hi == 0 {
		hi = MaxOpset
	}
	if m.Opset < lo || m.Opset > hi {
		return nil, errorf(ErrUnsupportedOpset, "opset %d is not supported (supported: %d to %d); convert the model, e.g. with onnx.version_converter", m.Opset, lo, hi)
	}
	d := &decoder{dir: dir}
	defer d.close()
	g, err := d.graph(mp.Graph)
	if err != nil {
		return nil, err
	}
	m.Graph = g
	return m, nil
}

// graph converts a GraphProto (the main graph or a subgraph).
func (d *decoder) graph(gp *onnxpb.GraphProto) (*Graph, error) {
	g := &Graph{
		Name:         gp.GetName(),
		Initializers: make(map[string]*tensor.Tensor, len(gp.Initializer)),
		InitTypes:    make(map[string]DataType, len(gp.Initializer)),
		InitOrder:    make([]string, 0, len(gp.Initializer)),
	}
	for i, tp := range gp.Initializer {
		name := tp.GetName()
		if name == "" {
			return nil, malformed("initializer %d has no name", i)
		}
		if _, dup := g.Initializers[name]; dup {
			return nil, malformed("initializer %q appears twice", name)
		}
		t, dt, err := d.tensor(tp)
		if err != nil {
			return nil, fmt.Errorf("initializer %q: %w", name, err)
		}
		g.Initializers[name] = t
		g.InitTypes[name] = dt
		g.InitOrder = append(g.InitOrder, name)
	}
	if len(gp.SparseInitializer) > 0 {
		return nil, unsupported("sparse initializer %q is not supported", gp.SparseInitializer[0].GetValues().GetName())
	}
	for _, vp := range gp.Input {
		if _, isInit := g.Initializers[vp.GetName()]; isInit {
			continue
		}
		v, err := valueInfo(vp)
		if err != nil {
			return nil, fmt.Errorf("input %q: %w", vp.GetName(), err)
		}
		g.Inputs = append(g.Inputs, v)
	}
	for _, vp := range gp.Output {
		v, err := valueInfo(vp)
		if err != nil {
			return nil, fmt.Errorf("output %q: %w", vp.GetName(), err)
		}
		g.Outputs = append(g.Outputs, v)
	}
	g.Nodes = make([]Node, len(gp.Node))
	for i, np := range gp.Node {
		if err := d.node(&g.Nodes[i], np); err != nil {
			return nil, fmt.Errorf("%s: %w", nodeLabel(i, np.GetName(), np.GetOpType()), err)
		}
	}
	return g, nil
}

// nodeLabel names a node in messages: by name when it has one, else by
// index. An operator type that is not plain printable text (a damaged
// file's bytes) is quoted, so that a message stays one line.
func nodeLabel(i int, name, op string) string {
	if strings.ContainsFunc(op, func(r rune) bool { return !unicode.IsPrint(r) || unicode.IsSpace(r) }) {
		op = strconv.Quote(op)
	}
	if name != "" {
		return fmt.Sprintf("node %q (%s)", name, op)
	}
	return fmt.Sprintf("node %d (%s)", i, op)
}

// valueInfo converts a graph input or output description.
func valueInfo(vp *onnxpb.ValueInfoProto) (ValueInfo, error) {
	v := ValueInfo{Name: vp.GetName()}
	if v.Name == "" {
		return v, malformed("value has no name")
	}
	tp := vp.GetType()
	if tp == nil {
		return v, nil
	}
	tt := tp.GetTensorType()
	if tt == nil {
		return v, unsupported("only tensor values are supported, not %s", typeKind(tp))
	}
	v.ElemType = DataType(tt.GetElemType())
	if !v.ElemType.known() {
		return v, malformed("unknown element type %d", int32(v.ElemType))
	}
	if sh := tt.GetShape(); sh != nil {
		v.Shape = make([]Dim, len(sh.Dim))
		for i, dp := range sh.Dim {
			switch x := dp.GetValue().(type) {
			case *onnxpb.TensorShapeProto_Dimension_DimValue:
				v.Shape[i] = Dim{Value: x.DimValue}
				if x.DimValue < 0 { // some exporters write -1 for "unknown"
					v.Shape[i] = Dim{Value: -1}
				}
			case *onnxpb.TensorShapeProto_Dimension_DimParam:
				v.Shape[i] = Dim{Value: -1, Param: x.DimParam}
			default:
				v.Shape[i] = Dim{Value: -1}
			}
		}
	}
	return v, nil
}

// typeKind names the kind of a non-tensor TypeProto for messages.
func typeKind(tp *onnxpb.TypeProto) string {
	switch tp.GetValue().(type) {
	case *onnxpb.TypeProto_SequenceType:
		return "sequences"
	case *onnxpb.TypeProto_MapType:
		return "maps"
	case *onnxpb.TypeProto_OptionalType:
		return "optionals"
	case *onnxpb.TypeProto_SparseTensorType:
		return "sparse tensors"
	case *onnxpb.TypeProto_OpaqueType:
		return "opaque values"
	}
	return "values of no type"
}

// node converts one NodeProto into n.
func (d *decoder) node(n *Node, np *onnxpb.NodeProto) error {
	if np.GetOpType() == "" {
		return malformed("node has no op_type")
	}
	*n = Node{
		Name:    np.GetName(),
		OpType:  np.GetOpType(),
		Domain:  np.GetDomain(),
		Inputs:  append([]string(nil), np.Input...),
		Outputs: append([]string(nil), np.Output...),
		Attrs:   make(map[string]Attribute, len(np.Attribute)),
	}
	for _, ap := range np.Attribute {
		a, err := d.attribute(ap)
		if err != nil {
			return fmt.Errorf("attribute %q: %w", ap.GetName(), err)
		}
		if _, dup := n.Attrs[a.Name]; dup {
			return malformed("attribute %q appears twice", a.Name)
		}
		n.Attrs[a.Name] = a
	}
	return nil
}

// attrKind returns the attribute's type, inferring it from the field in
// use for files older than IR version 2, which had no type field.
func attrKind(ap *onnxpb.AttributeProto) AttrType {
	if t := ap.GetType(); t != onnxpb.AttributeProto_UNDEFINED {
		return AttrType(t)
	}
	switch {
	case ap.F != nil:
		return AttrFloat
	case ap.I != nil:
		return AttrInt
	case ap.S != nil:
		return AttrString
	case ap.T != nil:
		return AttrTensor
	case ap.G != nil:
		return AttrGraph
	case len(ap.Floats) > 0:
		return AttrFloats
	case len(ap.Ints) > 0:
		return AttrInts
	case len(ap.Strings) > 0:
		return AttrStrings
	case len(ap.Tensors) > 0:
		return AttrTensors
	case len(ap.Graphs) > 0:
		return AttrGraphs
	}
	return 0
}

// attribute converts one AttributeProto.
func (d *decoder) attribute(ap *onnxpb.AttributeProto) (Attribute, error) {
	a := Attribute{Name: ap.GetName(), Type: attrKind(ap)}
	if a.Name == "" {
		return a, malformed("attribute has no name")
	}
	if ap.GetRefAttrName() != "" {
		return a, malformed("reference to function attribute %q outside a function", ap.GetRefAttrName())
	}
	var err error
	switch a.Type {
	case AttrFloat:
		a.F = ap.GetF()
	case AttrInt:
		a.I = ap.GetI()
	case AttrString:
		a.S = string(ap.GetS())
	case AttrFloats:
		a.Floats = append([]float32(nil), ap.Floats...)
	case AttrInts:
		a.Ints = append([]int64(nil), ap.Ints...)
	case AttrStrings:
		a.Strings = make([]string, len(ap.Strings))
		for i, s := range ap.Strings {
			a.Strings[i] = string(s)
		}
	case AttrTensor:
		if ap.T == nil {
			return a, malformed("TENSOR attribute has no tensor")
		}
		a.T, a.TType, err = d.tensor(ap.T)
	case AttrTensors:
		a.Tensors = make([]*tensor.Tensor, len(ap.Tensors))
		a.TTypes = make([]DataType, len(ap.Tensors))
		for i, tp := range ap.Tensors {
			if a.Tensors[i], a.TTypes[i], err = d.tensor(tp); err != nil {
				return a, fmt.Errorf("tensor %d: %w", i, err)
			}
		}
	case AttrGraph:
		if ap.G == nil {
			return a, malformed("GRAPH attribute has no graph")
		}
		a.G, err = d.graph(ap.G)
	case AttrGraphs:
		a.Graphs = make([]*Graph, len(ap.Graphs))
		for i, gp := range ap.Graphs {
			if a.Graphs[i], err = d.graph(gp); err != nil {
				return a, fmt.Errorf("graph %d: %w", i, err)
			}
		}
	case 0:
		return a, malformed("attribute has no type and no value")
	default:
		if _, known := attrTypeNames[a.Type]; !known {
			return a, malformed("unknown attribute type %d", int32(a.Type))
		}
		return a, unsupported("%v attributes are not supported", a.Type)
	}
	return a, err
}

// ParseTensor decodes a serialized TensorProto, such as the input_0.pb and
// output_0.pb files of the ONNX conformance tests. External data is
// refused; ReadTensor resolves it.
func ParseTensor(data []byte) (*tensor.Tensor, DataType, error) {
	t, dt, err := parseTensor(data, "")
	if err != nil {
		return nil, dt, fmt.Errorf("onnx: %w", err)
	}
	return t, dt, nil
}

// ReadTensor reads a file holding one serialized TensorProto. External
// data is resolved relative to the file's directory.
func ReadTensor(path string) (*tensor.Tensor, DataType, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, Undefined, fmt.Errorf("onnx: %w", err)
	}
	t, dt, err := parseTensor(data, filepath.Dir(path))
	if err != nil {
		return nil, dt, fmt.Errorf("onnx: %s: %w", path, err)
	}
	return t, dt, nil
}

func parseTensor(data []byte, dir string) (*tensor.Tensor, DataType, error) {
	if len(data) == 0 {
		return nil, Undefined, malformed("empty file")
	}
	var tp onnxpb.TensorProto
	if err := proto.Unmarshal(data, &tp); err != nil {
		return nil, Undefined, malformed("malformed protobuf: %v (truncated, or not an ONNX TensorProto)", err)
	}
	d := &decoder{dir: dir}
	defer d.close()
	t, dt, err := d.tensor(&tp)
	if err != nil {
		if tp.GetName() != "" {
			return nil, dt, fmt.Errorf("tensor %q: %w", tp.GetName(), err)
		}
		return nil, dt, err
	}
	return t, dt, nil
}
