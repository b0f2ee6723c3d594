package equalize

import (
	"fmt"

	"mpsearch/onnx"
	"mpsearch/tensor"
)

// graphIndex holds what findPairs needs to follow values through g.
type graphIndex struct {
	g        *onnx.Graph
	uses     map[string]int // node inputs and graph outputs reading a value
	consumer map[string]int // the node reading a value (last one seen)
	producer map[string]int // the node computing a value
	clones   map[string]*tensor.Tensor
}

// findPairs returns the equalizable chains of g in node order, with views
// on copies of their weights that replace the originals in g.
func findPairs(g *onnx.Graph) []pair {
	ix := &graphIndex{g: g, uses: map[string]int{}, consumer: map[string]int{}, producer: map[string]int{}, clones: map[string]*tensor.Tensor{}}
	for i, n := range g.Nodes {
		for _, o := range n.Outputs {
			ix.producer[o] = i
		}
		for _, in := range n.Inputs {
			if in != "" {
				ix.uses[in]++
				ix.consumer[in] = i
			}
		}
	}
	for _, o := range g.Outputs {
		ix.uses[o.Name]++
	}
	var pairs []pair
	for i := range g.Nodes {
		if p, ok := ix.chainFrom(i); ok {
			pairs = append(pairs, p)
		}
	}
	return pairs
}

// ownInit returns the initializer name when it is read by exactly one
// node input (so rescaling it changes nothing else), else "".
func (ix *graphIndex) ownInit(name string) string {
	if name == "" || ix.uses[name] != 1 {
		return ""
	}
	if _, ok := ix.g.Initializers[name]; !ok {
		return ""
	}
	return name
}

// tensor returns the copy of initializer name that the equalized graph
// holds (made on first use).
func (ix *graphIndex) tensor(name string) *tensor.Tensor {
	if t, ok := ix.clones[name]; ok {
		return t
	}
	t := ix.g.Initializers[name].Clone()
	ix.clones[name] = t
	ix.g.Initializers[name] = t
	return t
}

func attrInt(n *onnx.Node, name string, def int64) int64 {
	if a, ok := n.Attrs[name]; ok {
		return a.I
	}
	return def
}

// chainFrom follows node i's output through pass-through ops to the next
// Conv/Gemm/MatMul and returns the pair when every value on the way has
// that one reader and the channels line up.
func (ix *graphIndex) chainFrom(i int) (pair, bool) {
	a := &ix.g.Nodes[i]
	conv, nOut, ok := ix.firstShape(a)
	if !ok {
		return pair{}, false
	}
	cur := a.Outputs[0]
	var through []string
	flattened := false
	for {
		if ix.uses[cur] != 1 {
			return pair{}, false // read twice (Add, Concat, a graph output...)
		}
		c := &ix.g.Nodes[ix.consumer[cur]]
		if len(c.Inputs) == 0 || c.Inputs[0] != cur {
			return pair{}, false
		}
		switch {
		case passThrough[c.OpType]:
			if spatial[c.OpType] && (!conv || flattened) {
				return pair{}, false
			}
			for _, o := range c.Outputs[1:] {
				if o != "" && ix.uses[o] > 0 {
					return pair{}, false // MaxPool's indices, Dropout's mask
				}
			}
		case c.OpType == "Flatten":
			if !conv || flattened || attrInt(c, "axis", 1) != 1 {
				return pair{}, false
			}
			flattened = true
		case c.OpType == "Conv" || c.OpType == "Gemm" || c.OpType == "MatMul":
			in, ok := ix.secondView(c, conv, flattened, nOut)
			if !ok {
				return pair{}, false
			}
			out, bias := ix.firstView(a, nOut)
			return pair{Pair: Pair{First: a.Name, Second: c.Name, Through: through}, out: out, bias: bias, in: in}, true
		default:
			return pair{}, false
		}
		through = append(through, c.OpType)
		cur = c.Outputs[0]
	}
}

// firstShape checks that node a can be a chain's first layer (own weight
// and bias initializers, a per-channel bias) and returns whether its
// output is a Conv's (channels on axis 1) and its output channel count.
func (ix *graphIndex) firstShape(a *onnx.Node) (conv bool, nOut int, ok bool) {
	if len(a.Inputs) < 2 || len(a.Outputs) < 1 || ix.ownInit(a.Inputs[1]) == "" {
		return false, 0, false
	}
	w := ix.g.Initializers[a.Inputs[1]]
	switch a.OpType {
	case "Conv":
		if w.Rank() < 3 {
			return false, 0, false
		}
		conv, nOut = true, w.Shape[0]
	case "Gemm":
		if w.Rank() != 2 {
			return false, 0, false
		}
		nOut = w.Shape[1]
		if attrInt(a, "transB", 0) != 0 {
			nOut = w.Shape[0]
		}
	case "MatMul":
		if w.Rank() != 2 {
			return false, 0, false
		}
		nOut = w.Shape[1]
	default:
		return false, 0, false
	}
	if len(a.Inputs) > 2 && a.Inputs[2] != "" {
		if b := ix.constant(a.Inputs[2]); a.OpType == "MatMul" || b == nil || b.Size() != nOut {
			return false, 0, false // a computed or broadcast bias cannot take a per-channel scale
		}
	}
	return conv, nOut, nOut > 0
}

// constant returns the tensor of an initializer or of Identity nodes of
// one (torch.onnx shares equal folded biases that way), else nil.
func (ix *graphIndex) constant(name string) *tensor.Tensor {
	for {
		if t, ok := ix.g.Initializers[name]; ok {
			return t
		}
		pi, ok := ix.producer[name]
		if !ok || ix.g.Nodes[pi].OpType != "Identity" || len(ix.g.Nodes[pi].Inputs) != 1 {
			return nil
		}
		name = ix.g.Nodes[pi].Inputs[0]
	}
}

// ownBias gives node a a bias initializer of its own: the bias itself when
// a is its only reader, else a copy under a new name that a then reads.
func (ix *graphIndex) ownBias(a *onnx.Node) *tensor.Tensor {
	name := a.Inputs[2]
	if ix.ownInit(name) != "" {
		return ix.tensor(name)
	}
	fresh := a.Name + ".equalized_bias"
	for k := 1; ; k++ {
		_, clash := ix.g.Initializers[fresh]
		_, isValue := ix.uses[fresh]
		_, isOut := ix.producer[fresh]
		if !clash && !isValue && !isOut {
			break
		}
		fresh = fmt.Sprintf("%s.equalized_bias_%d", a.Name, k)
	}
	t := ix.constant(name).Clone()
	ix.uses[name]--
	ix.uses[fresh] = 1
	ix.g.Initializers[fresh] = t
	ix.g.InitTypes[fresh] = onnx.Float
	ix.g.InitOrder = append(ix.g.InitOrder, fresh)
	ix.clones[fresh] = t
	a.Inputs[2] = fresh
	return t
}

// firstView addresses the output channels of a chain's first layer a.
func (ix *graphIndex) firstView(a *onnx.Node, nOut int) (view, *tensor.Tensor) {
	w := ix.tensor(a.Inputs[1])
	v := view{t: w, n: nOut, count: 1}
	if a.OpType == "Conv" || (a.OpType == "Gemm" && attrInt(a, "transB", 0) != 0) {
		per := w.Size() / nOut // [out, ...]: channel i is one contiguous row
		v.inner = per
		v.base = func(i int) int { return i * per }
	} else { // [in, out]: channel i is column i
		v.count, v.stride, v.inner = w.Shape[0], nOut, 1
		v.base = func(i int) int { return i }
	}
	var bias *tensor.Tensor
	if len(a.Inputs) > 2 && a.Inputs[2] != "" {
		bias = ix.ownBias(a)
	}
	return v, bias
}

// secondView addresses the input channels of a chain's second layer c,
// nOut channels coming from a Conv's output (conv, flattened to the
// columns c·F..c·F+F-1 when flattened) or a matrix product's.
func (ix *graphIndex) secondView(c *onnx.Node, conv, flattened bool, nOut int) (view, bool) {
	if len(c.Inputs) < 2 || ix.ownInit(c.Inputs[1]) == "" {
		return view{}, false
	}
	w := ix.g.Initializers[c.Inputs[1]]
	switch c.OpType {
	case "Conv":
		group := int(attrInt(c, "group", 1))
		if !conv || flattened || w.Rank() < 3 || group < 1 || w.Shape[1]*group != nOut || w.Shape[0]%group != 0 {
			return view{}, false
		}
		cg, mg := w.Shape[1], w.Shape[0]/group
		taps := w.Size() / (w.Shape[0] * cg)
		wt := ix.tensor(c.Inputs[1])
		// Input channel i is channel i%cg of group i/cg, read by that
		// group's mg output channels (depthwise: cg = 1, channel i of row i).
		return view{t: wt, n: nOut, count: mg, stride: cg * taps, inner: taps,
			base: func(i int) int { return (i/cg)*mg*cg*taps + (i%cg)*taps }}, true
	case "Gemm", "MatMul":
		if w.Rank() != 2 || (conv && !flattened) || (c.OpType == "Gemm" && attrInt(c, "transA", 0) != 0) {
			return view{}, false
		}
		transB := c.OpType == "Gemm" && attrInt(c, "transB", 0) != 0
		k, n := w.Shape[0], w.Shape[1]
		if transB {
			k, n = n, k
		}
		if k%nOut != 0 || (!conv && k != nOut) {
			return view{}, false
		}
		f := k / nOut // inputs per channel: the flattened spatial positions
		wt := ix.tensor(c.Inputs[1])
		if transB { // [out, in]: columns i·f..i·f+f-1 of every row
			return view{t: wt, n: nOut, count: n, stride: k, inner: f, base: func(i int) int { return i * f }}, true
		}
		// [in, out]: rows i·f..i·f+f-1, contiguous
		return view{t: wt, n: nOut, count: 1, inner: f * n, base: func(i int) int { return i * f * n }}, true
	}
	return view{}, false
}
