package network

import (
	"fmt"

	"mpsearch/onnx"
	"mpsearch/tensor"
)

func init() {
	register("Pad", buildPad)
}

// pad is ONNX Pad in modes constant, reflect, edge and wrap. Negative pads
// crop. Every mode maps each output element to one input element (or, in
// constant mode, to the pad value), so the op is linear in X: Forward
// builds that map (the state), the other methods gather and scatter
// through it. The pads, the constant value and the axes are constants
// (attributes before opset 11, constant inputs from 11 on); only X is
// differentiable.
type pad struct {
	node   *onnx.Node
	mode   string
	pads   []int // begin values then end values, one per axis in axes
	axes   []int // nil: all axes, in order
	value  float64
	consts []int
}

func buildPad(n *onnx.Node, consts map[string]*tensor.Tensor, opset int64) (Op, error) {
	if len(n.Inputs) < 1 || n.Inputs[0] == "" {
		return nil, nodeErr(n, "needs input data")
	}
	p := &pad{node: n}
	var err error
	if p.mode, err = layerString(n, "mode", "constant"); err != nil {
		return nil, err
	}
	switch p.mode {
	case "constant", "reflect", "edge", "wrap":
	default:
		return nil, fmt.Errorf("%w: %w", nodeErr(n, "mode %q; want constant, reflect, edge or wrap", p.mode), ErrUnsupported)
	}
	if opset < 11 {
		if p.pads, err = layerInts(n, "pads"); err != nil {
			return nil, err
		}
		if p.pads == nil {
			return nil, nodeErr(n, "attribute pads is missing")
		}
		if p.value, err = layerFloat(n, "value", 0); err != nil {
			return nil, err
		}
		return p, nil
	}
	// Opset 11+: pads, constant_value and (18+) axes are inputs.
	input := func(i int) (*tensor.Tensor, error) {
		if i >= len(n.Inputs) || n.Inputs[i] == "" {
			return nil, nil
		}
		t, ok := consts[n.Inputs[i]]
		if !ok {
			return nil, fmt.Errorf("%w: %w", nodeErr(n, "input %d (%q) is computed at run time; it must be an initializer or a Constant", i, n.Inputs[i]), ErrUnsupported)
		}
		p.consts = append(p.consts, i)
		return t, nil
	}
	pt, err := input(1)
	if err != nil {
		return nil, err
	}
	if pt == nil {
		return nil, nodeErr(n, "input pads is missing")
	}
	for _, v := range pt.Data {
		p.pads = append(p.pads, int(v))
	}
	cv, err := input(2)
	if err != nil {
		return nil, err
	}
	if cv != nil {
		if cv.Size() != 1 {
			return nil, nodeErr(n, "constant_value has shape %v; want one value", cv.Shape)
		}
		p.value = cv.Data[0]
	}
	at, err := input(3)
	if err != nil {
		return nil, err
	}
	if at != nil {
		p.axes = make([]int, at.Size())
		for i, v := range at.Data {
			p.axes[i] = int(v)
		}
		if len(p.pads) != 2*len(p.axes) {
			return nil, nodeErr(n, "%d pads for %d axes; want 2 per axis", len(p.pads), len(p.axes))
		}
	}
	return p, nil
}

// ConstInputs lists the pads, constant_value and axes inputs (opset 11+).
func (p *pad) ConstInputs() []int { return p.consts }

// padState maps every output element to its input element (-1: the pad
// value).
type padState struct{ src []int }

// perAxis returns the begin and end pads of every axis of a rank-r input.
func (p *pad) perAxis(r int) (begin, end []int, err error) {
	begin, end = make([]int, r), make([]int, r)
	axes := p.axes
	if axes == nil {
		if len(p.pads) != 2*r {
			return nil, nil, fmt.Errorf("%d pads for a rank-%d input; want %d", len(p.pads), r, 2*r)
		}
		axes = make([]int, r)
		for i := range axes {
			axes[i] = i
		}
	}
	seen := make([]bool, r)
	for i, a := range axes {
		if a < 0 {
			a += r
		}
		if a < 0 || a >= r || seen[a] {
			return nil, nil, fmt.Errorf("axes %v invalid or repeated for a rank-%d input", p.axes, r)
		}
		seen[a] = true
		begin[a], end[a] = p.pads[i], p.pads[len(axes)+i]
	}
	return begin, end, nil
}

// axisMap returns, for each output coordinate along an axis of size d
// padded by b before and e after, the input coordinate (-1: pad value).
func (p *pad) axisMap(d, b, e int) ([]int, error) {
	out := d + b + e
	if out < 0 {
		return nil, fmt.Errorf("pads %d and %d crop more than the axis size %d", b, e, d)
	}
	if d == 0 && out > 0 && p.mode != "constant" {
		return nil, fmt.Errorf("cannot pad an empty axis in mode %s", p.mode)
	}
	m := make([]int, out)
	for o := range m {
		i := o - b
		if i >= 0 && i < d {
			m[o] = i
			continue
		}
		switch p.mode {
		case "constant":
			i = -1
		case "edge":
			i = max(0, min(d-1, i))
		case "wrap":
			i = ((i % d) + d) % d
		case "reflect":
			if d == 1 {
				i = 0
				break
			}
			period := 2 * (d - 1)
			i = ((i % period) + period) % period
			if i >= d {
				i = period - i
			}
		}
		m[o] = i
	}
	return m, nil
}

func (p *pad) Forward(in []*tensor.Tensor) (*tensor.Tensor, any, error) {
	x := in[0]
	r := x.Rank()
	begin, end, err := p.perAxis(r)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", nodeErr(p.node, "input %v: %v", x.Shape, err), ErrShape)
	}
	maps := make([][]int, r)
	outShape := make([]int, r)
	for a := 0; a < r; a++ {
		if maps[a], err = p.axisMap(x.Shape[a], begin[a], end[a]); err != nil {
			return nil, nil, fmt.Errorf("%w: %w", nodeErr(p.node, "input %v axis %d: %v", x.Shape, a, err), ErrShape)
		}
		outShape[a] = len(maps[a])
	}
	y := tensor.New(outShape...)
	st := &padState{src: make([]int, y.Size())}
	strides := tensor.Strides(x.Shape)
	// Walk the output in row-major order with an odometer over axes.
	idx := make([]int, r)
	for o := range st.src {
		src := 0
		for a := 0; a < r; a++ {
			i := maps[a][idx[a]]
			if i < 0 {
				src = -1
				break
			}
			src += i * strides[a]
		}
		st.src[o] = src
		if src >= 0 {
			y.Data[o] = x.Data[src]
		} else {
			y.Data[o] = p.value
		}
		for a := r - 1; a >= 0; a-- {
			idx[a]++
			if idx[a] < outShape[a] {
				break
			}
			idx[a] = 0
		}
	}
	return y, st, nil
}

// gather returns a tensor of the given shape (blocks of the output size)
// with t[b, o] = x[b, src[o]] (0 for the pad value).
func (st *padState) gather(x []float64, inSize int, shape []int) *tensor.Tensor {
	t := tensor.New(shape...)
	n := len(st.src)
	for b := 0; n > 0 && b < len(t.Data)/n; b++ {
		d, s := t.Data[b*n:(b+1)*n], x[b*inSize:(b+1)*inSize]
		for o, i := range st.src {
			if i >= 0 {
				d[o] = s[i]
			}
		}
	}
	return t
}

// scatter is gather's adjoint: t[b, src[o]] += g[b, o].
func (st *padState) scatter(g []float64, inSize int, shape []int) *tensor.Tensor {
	t := tensor.New(shape...)
	n := len(st.src)
	for b := 0; n > 0 && b < len(g)/n; b++ {
		d, s := t.Data[b*inSize:(b+1)*inSize], g[b*n:(b+1)*n]
		for o, i := range st.src {
			if i >= 0 {
				d[i] += s[o]
			}
		}
	}
	return t
}

func (p *pad) Backward(in []*tensor.Tensor, out *tensor.Tensor, state any, gout *tensor.Tensor, need []bool) []*tensor.Tensor {
	gin := make([]*tensor.Tensor, len(in))
	if need[0] {
		gin[0] = state.(*padState).scatter(gout.Data, in[0].Size(), in[0].Shape)
	}
	return gin
}

func (p *pad) Tangent(in, tin []*tensor.Tensor, out *tensor.Tensor, state any) *tensor.Tensor {
	if tin[0] == nil {
		return nil
	}
	return state.(*padState).gather(tin[0].Data, in[0].Size(), append([]int{tin[0].Shape[0]}, out.Shape...))
}

func (p *pad) BackwardTangent(in, tin []*tensor.Tensor, out, tout *tensor.Tensor, state any, gout, tgout *tensor.Tensor, need []bool) (gin, tgin []*tensor.Tensor) {
	gin = p.Backward(in, out, state, gout, need)
	tgin = make([]*tensor.Tensor, len(in))
	if need[0] && tgout != nil {
		tgin[0] = state.(*padState).scatter(tgout.Data, in[0].Size(), append([]int{tgout.Shape[0]}, in[0].Shape...))
	}
	return gin, tgin
}
