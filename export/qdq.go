package export

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"

	"mpsearch/network"
	"mpsearch/onnx"
	"mpsearch/quant"
	"mpsearch/tensor"
)

// ErrConfig is wrapped by errors about a Config that does not fit the
// network (wrong number of bit widths, unknown layer, bad quantizer).
var ErrConfig = errors.New("invalid export configuration")

// ErrUnsupported is wrapped by errors about models the exporter cannot
// write as a QDQ model (non-FLOAT weights, an operator whose semantics
// cannot be carried to the target opset, ambiguous layer names).
var ErrUnsupported = errors.New("unsupported by the QDQ export")

// Opset versions the export relies on.
const (
	// MinOpset is the smallest opset with per-channel DequantizeLinear
	// (the axis attribute); lower models are raised to it.
	MinOpset = 13
	// Int4Opset is the first opset with INT4 tensors (it needs IR version
	// 10, which onnx.Save writes for opset 21 and later).
	Int4Opset = 21
)

// Config says how to quantize a network for export.
type Config struct {
	// Bits holds the weight bit width of each layer, in net.Layers()
	// order: 1 (binary) to 8, or 0 or 32 to keep that layer's weights in
	// float (the convention of quant.WeightSetter).
	Bits []int
	// Act maps a layer's node name to the quantizer of its input
	// activation (the layer's first input). Layers missing from the map
	// keep a float input.
	Act map[string]quant.ActQuant
	// Opset21 raises the model to opset 21 so that weights of 4 bits or
	// fewer are stored as INT4. Models already at opset 21 or later use
	// INT4 without it.
	Opset21 bool
	// Weights is the source of the weight codes and scales (the one the
	// simulation used, quant.NewWeightSetterCodes); nil rounds net.Model's
	// weights to nearest (quant.QuantizeWeights).
	Weights quant.WeightCodes
}

// floatBits reports whether b means "keep the weights in float".
func floatBits(b int) bool { return b == 0 || b == 32 }

// The widths of Config.Bits are option codes (quant.OptionCode): a
// width, or group·100 + width for weights in groups, whose source gives
// blocked codes (quant.NewBlockCodes); those are written with block_size.

// QDQ returns a new ONNX model computing net with the quantization of cfg:
// every quantized layer's weight is an integer initializer dequantized per
// output channel by a DequantizeLinear node, and every layer named in
// cfg.Act reads its input through a QuantizeLinear/DequantizeLinear pair.
// net.Model and the network are not modified. See the package
// documentation for the exact layout and conventions.
func QDQ(net *network.Network, cfg Config) (*onnx.Model, error) {
	if net == nil || net.Model == nil || net.Model.Graph == nil {
		return nil, errors.New("export: network has no model")
	}
	layers := net.Layers()
	if len(cfg.Bits) != len(layers) {
		return nil, fmt.Errorf("export: %d bit widths for %d layers: %w; give one per layer in network order", len(cfg.Bits), len(layers), ErrConfig)
	}
	byNode := make(map[string]int, len(layers))
	for i, l := range layers {
		if b := cfg.Bits[i]; quant.ValidOption(b) != nil {
			return nil, fmt.Errorf("export: layer %d (%q): %d-bit weights: %w; use 1 to 8 (or 0/32 for float; quant.OptionCode for weights in groups)", i, l.Node, b, ErrConfig)
		}
		if _, dup := byNode[l.Node]; dup {
			byNode[l.Node] = -1 // ambiguous: cannot carry an activation quantizer
			continue
		}
		byNode[l.Node] = i
	}
	for _, name := range sortedKeys(cfg.Act) {
		switch li, ok := byNode[name]; {
		case !ok:
			return nil, fmt.Errorf("export: activation quantizer for %q, which is not a layer of the network: %w", name, ErrConfig)
		case li < 0 || name == "":
			return nil, fmt.Errorf("export: activation quantizer for %q, which names several layers: %w; give the model's nodes unique names", name, ErrUnsupported)
		}
		a := cfg.Act[name]
		if !(a.Scale > 0) || math.IsInf(a.Scale, 0) || float32(a.Scale) == 0 || math.IsInf(float64(float32(a.Scale)), 0) {
			return nil, fmt.Errorf("export: layer %q: activation scale %g is not a positive FLOAT: %w", name, a.Scale, ErrConfig)
		}
		if a.ZeroPoint < 0 || a.ZeroPoint > 255 {
			return nil, fmt.Errorf("export: layer %q: activation zero point %d outside uint8: %w", name, a.ZeroPoint, ErrConfig)
		}
	}

	src := net.Model
	opset := max(src.Opset, MinOpset)
	if cfg.Opset21 {
		opset = max(opset, Int4Opset)
	}
	g := src.Graph.Clone()
	if opset > src.Opset {
		if err := upgrade(g, src.Opset, opset, net); err != nil {
			return nil, err
		}
	}
	if err := roundFloatInits(g); err != nil {
		return nil, err
	}

	// Match layers to graph nodes in order: the k-th layer is the next node
	// of its name and operator reading its weight parameter.
	layerOf := make(map[int]int, len(layers)) // graph node index -> layer
	next := 0
	for li, l := range layers {
		w := net.Params()[l.Weight].Name
		for next < len(g.Nodes) {
			n := &g.Nodes[next]
			next++
			if n.Name == l.Node && n.OpType == l.Op && len(n.Inputs) > 1 && n.Inputs[1] == w {
				layerOf[next-1] = li
				break
			}
		}
		if len(layerOf) != li+1 {
			return nil, fmt.Errorf("export: layer %d (%q, %s) is not a node of the model graph", li, l.Node, l.Op)
		}
	}

	b := newBuilder(g, opset >= Int4Opset)
	weightDQ := map[string]string{} // weight name + bits + axis -> dequantized value
	actDQ := map[string]string{}    // input name + scale + zp -> dequantized value
	nodes := make([]onnx.Node, 0, len(g.Nodes)+3*len(layers))
	for i := range g.Nodes {
		n := g.Nodes[i]
		li, isLayer := layerOf[i]
		if !isLayer {
			nodes = append(nodes, n)
			continue
		}
		l := layers[li]
		n.Inputs = append([]string(nil), n.Inputs...)
		if a, ok := cfg.Act[l.Node]; ok {
			x := n.Inputs[0]
			key := x + "\x00" + strconv.FormatFloat(float64(float32(a.Scale)), 'g', -1, 32) + "\x00" + strconv.Itoa(a.ZeroPoint)
			out, done := actDQ[key]
			if !done {
				var qdq []onnx.Node
				out, qdq = b.actQDQ(x, a)
				nodes = append(nodes, qdq...)
				actDQ[key] = out
			}
			n.Inputs[0] = out
		}
		if bits := cfg.Bits[li]; !floatBits(bits) {
			p := net.Params()[l.Weight]
			w, ok := src.Graph.Initializers[p.Name]
			if !ok {
				return nil, fmt.Errorf("export: layer %q: weight %q is not an initializer of net.Model", l.Node, p.Name)
			}
			if t := src.Graph.InitTypes[p.Name]; t != onnx.Float && t != onnx.Undefined {
				return nil, fmt.Errorf("export: layer %q: weight %q is %v: %w; QDQ export writes FLOAT models", l.Node, p.Name, t, ErrUnsupported)
			}
			key := p.Name + "\x00" + strconv.Itoa(bits) + "\x00" + strconv.Itoa(l.ChannelAxis)
			out, done := weightDQ[key]
			if !done {
				var dq []onnx.Node
				wq, err := layerCodes(cfg.Weights, li, w, l.ChannelAxis, bits)
				if err == nil && wq.Block > 0 && opset < Int4Opset {
					err = fmt.Errorf("blocked weight codes (block size %d) need DequantizeLinear's block_size: %w; export at opset %d (Config.Opset21, or Compact)", wq.Block, ErrConfig, Int4Opset)
				}
				if err == nil {
					out, dq = b.weightDQ(p.Name, w, wq, l.ChannelAxis, bits)
				}
				if err != nil {
					return nil, fmt.Errorf("export: layer %q: %w", l.Node, err)
				}
				nodes = append(nodes, dq...)
				weightDQ[key] = out
			}
			n.Inputs[1] = out
			if err := b.correctBias(&n, net, src, cfg.Weights, li, bits); err != nil {
				return nil, err
			}
		}
		nodes = append(nodes, n)
	}
	g.Nodes = nodes
	pruneInits(g)

	ir := int64(8)
	if opset >= Int4Opset {
		ir = 10
	}
	return &onnx.Model{IRVersion: ir, Opset: opset, ProducerName: "mpsearch", Graph: g}, nil
}

// Save writes m to path atomically (onnx.Save with the default options,
// which pick IR version 10 for opset 21 models).
func Save(path string, m *onnx.Model) error {
	return onnx.Save(path, m, onnx.SaveOptions{})
}

// builder adds uniquely named initializers and nodes to a graph.
type builder struct {
	g    *onnx.Graph
	used map[string]bool
	int4 bool
}

func newBuilder(g *onnx.Graph, int4 bool) *builder {
	used := map[string]bool{"": true}
	for _, v := range g.Inputs {
		used[v.Name] = true
	}
	for _, v := range g.Outputs {
		used[v.Name] = true
	}
	for _, name := range g.InitOrder {
		used[name] = true
	}
	for name := range g.Initializers {
		used[name] = true
	}
	for _, n := range g.Nodes {
		used[n.Name] = true
		for _, o := range n.Outputs {
			used[o] = true
		}
		for _, in := range n.Inputs {
			used[in] = true
		}
	}
	return &builder{g: g, used: used, int4: int4}
}

// name returns base, or base_k with the smallest k making it unused, and
// marks it used.
func (b *builder) name(base string) string {
	s := base
	for k := 1; b.used[s]; k++ {
		s = base + "_" + strconv.Itoa(k)
	}
	b.used[s] = true
	return s
}

func (b *builder) init(base string, t *tensor.Tensor, dt onnx.DataType) string {
	name := b.name(base)
	b.g.Initializers[name] = t
	b.g.InitTypes[name] = dt
	b.g.InitOrder = append(b.g.InitOrder, name)
	return name
}

// layerCodes returns layer li's per-channel codes at bits: from c, or
// with c nil quant.QuantizeWeights of w (the model's float weight).
func layerCodes(c quant.WeightCodes, li int, w *tensor.Tensor, axis, bits int) (*quant.WeightQuant, error) {
	if c == nil {
		return quant.QuantizeWeights(w.Data, w.Shape, axis, bits)
	}
	wq, err := c.Codes(li, bits)
	if err != nil {
		return nil, err
	}
	nscales := w.Shape[axis]
	if wq.Block > 0 {
		nscales = tensorSize(quant.BlockScaleShape(w.Shape, axis, wq.Block))
	}
	if wq.Axis != axis || len(wq.Q) != w.Size() || len(wq.Scales) != nscales {
		return nil, fmt.Errorf("%s codes of %d values with %d scales on axis %d for a %v weight with channels on axis %d: %w", c.Method(), len(wq.Q), len(wq.Scales), wq.Axis, w.Shape, axis, ErrConfig)
	}
	return wq, nil
}

// weightDQ stores the codes wq of weight w and returns the name of the
// dequantized value and the nodes producing it: the DequantizeLinear,
// preceded for blocked codes by the Cast of their FLOAT16 scales to FLOAT.
func (b *builder) weightDQ(wName string, w *tensor.Tensor, wq *quant.WeightQuant, axis, bits int) (string, []onnx.Node) {
	dt := onnx.Int8
	if b.int4 && quant.OptionBits(bits) <= 4 {
		dt = onnx.Int4
	}
	q := tensor.New(w.Shape...)
	for i, v := range wq.Q {
		q.Data[i] = float64(v)
	}
	sShape := []int{len(wq.Scales)}
	attrs := map[string]onnx.Attribute{"axis": {Name: "axis", Type: onnx.AttrInt, I: int64(axis)}}
	if wq.Block > 0 { // blocked along the input axis (opset 21)
		sShape = quant.BlockScaleShape(w.Shape, axis, wq.Block)
		attrs["axis"] = onnx.Attribute{Name: "axis", Type: onnx.AttrInt, I: int64(quant.BlockedAxis(w.Shape, axis))}
		attrs["block_size"] = onnx.Attribute{Name: "block_size", Type: onnx.AttrInt, I: int64(wq.Block)}
	}
	scale := tensor.New(sShape...)
	for i, s := range wq.Scales {
		scale.Data[i] = float64(float32(s))
	}
	zp := tensor.New(sShape...) // symmetric: zero points are 0
	qName := b.init(wName+"_quantized", q, dt)
	var nodes []onnx.Node
	var sName string
	if wq.Block > 0 {
		// Group scales are float16 values (quant.RoundFP16), stored in 2
		// bytes and cast to FLOAT exactly, so DequantizeLinear computes
		// float32(q·s) as the simulation does.
		h := b.init(wName+"_scale_fp16", scale, onnx.Float16)
		sName = b.name(wName + "_scale")
		nodes = append(nodes, onnx.Node{Name: b.name(wName + "_scale_Cast"), OpType: "Cast", Inputs: []string{h}, Outputs: []string{sName},
			Attrs: map[string]onnx.Attribute{"to": {Name: "to", Type: onnx.AttrInt, I: int64(onnx.Float)}}})
	} else {
		sName = b.init(wName+"_scale", scale, onnx.Float)
	}
	zName := b.init(wName+"_zero_point", zp, dt)
	out := b.name(wName + "_DequantizeLinear_Output")
	nodes = append(nodes, onnx.Node{
		Name:    b.name(wName + "_DequantizeLinear"),
		OpType:  "DequantizeLinear",
		Inputs:  []string{qName, sName, zName},
		Outputs: []string{out},
		Attrs:   attrs,
	})
	return out, nodes
}

// correctBias replaces layer li's bias input of n by the bias plus the
// source's shift at bits when the source corrects biases
// (quant.BiasShifter), as a new FLOAT initializer.
func (b *builder) correctBias(n *onnx.Node, net *network.Network, src *onnx.Model, c quant.WeightCodes, li, bits int) error {
	bs, ok := c.(quant.BiasShifter)
	l := net.Layers()[li]
	if !ok || l.Bias < 0 {
		return nil
	}
	shift, err := bs.BiasShift(li, bits)
	if err != nil || shift == nil {
		return err
	}
	name := net.Params()[l.Bias].Name
	bias, ok := src.Graph.Initializers[name]
	if !ok || len(n.Inputs) < 3 || n.Inputs[2] != name || bias.Size() != len(shift) {
		return fmt.Errorf("export: layer %q: bias %q is not the node's initializer of %d values: %w", l.Node, name, len(shift), ErrUnsupported)
	}
	t := tensor.New(bias.Shape...)
	for i, v := range bias.Data {
		t.Data[i] = float64(float32(v + shift[i]))
	}
	n.Inputs[2] = b.init(name+"_corrected", t, onnx.Float)
	return nil
}

// actQDQ returns the name of the fake-quantized x and the
// QuantizeLinear/DequantizeLinear pair computing it.
func (b *builder) actQDQ(x string, a quant.ActQuant) (string, []onnx.Node) {
	scale := tensor.New()
	scale.Data[0] = float64(float32(a.Scale))
	zp := tensor.New()
	zp.Data[0] = float64(a.ZeroPoint)
	sName := b.init(x+"_scale", scale, onnx.Float)
	zName := b.init(x+"_zero_point", zp, onnx.Uint8)
	q := b.name(x + "_QuantizeLinear_Output")
	dq := b.name(x + "_DequantizeLinear_Output")
	return dq, []onnx.Node{
		{Name: b.name(x + "_QuantizeLinear"), OpType: "QuantizeLinear", Inputs: []string{x, sName, zName}, Outputs: []string{q}, Attrs: map[string]onnx.Attribute{}},
		{Name: b.name(x + "_DequantizeLinear"), OpType: "DequantizeLinear", Inputs: []string{q, sName, zName}, Outputs: []string{dq}, Attrs: map[string]onnx.Attribute{}},
	}
}

// roundFloatInits replaces FLOAT initializers holding values a float32
// cannot represent (BatchNormalization folding computes in float64) by
// their float32 roundings, as the file stores them.
func roundFloatInits(g *onnx.Graph) error {
	for _, name := range g.InitOrder {
		if dt := g.InitTypes[name]; dt != onnx.Float && dt != onnx.Undefined {
			continue
		}
		t := g.Initializers[name]
		var r *tensor.Tensor
		for i, v := range t.Data {
			f := float64(float32(v))
			if f == v || math.IsNaN(v) {
				continue
			}
			if math.IsInf(f, 0) {
				return fmt.Errorf("export: initializer %q: value %g at index %d overflows FLOAT", name, v, i)
			}
			if r == nil {
				r = t.Clone()
			}
			r.Data[i] = f
		}
		if r != nil {
			g.Initializers[name] = r
		}
	}
	return nil
}

// pruneInits drops initializers no node reads any more (float weights
// replaced by their quantized form).
func pruneInits(g *onnx.Graph) {
	used := map[string]bool{}
	for _, n := range g.Nodes {
		for _, in := range n.Inputs {
			used[in] = true
		}
	}
	for _, o := range g.Outputs {
		used[o.Name] = true
	}
	order := make([]string, 0, len(g.InitOrder))
	for _, name := range g.InitOrder {
		if used[name] {
			order = append(order, name)
		}
	}
	g.InitOrder = order
	for name := range g.Initializers {
		if !used[name] {
			delete(g.Initializers, name)
			delete(g.InitTypes, name)
		}
	}
}

func tensorSize(shape []int) int {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return n
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
