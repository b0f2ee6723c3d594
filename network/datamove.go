package network

import (
	"fmt"
	"math"

	"mpsearch/onnx"
	"mpsearch/tensor"
)

// This file holds the data-movement ops built on pickMap (pick.go): Gather,
// Slice, Split, Expand, Tile, Where and ScatterND. Their gradients scatter
// back along the same maps; indices, conditions and constant inputs get
// none.

func init() {
	register("Gather", buildGather)
	register("Slice", buildSlice)
	registerMulti("Split", buildSplit)
	register("Expand", buildExpand)
	register("Tile", buildTile)
	register("Where", func(n *onnx.Node, _ map[string]*tensor.Tensor, _ int64) (Op, error) {
		if err := wantInputs(n, 3, 3); err != nil {
			return nil, err
		}
		return newPickSingle(planFunc(planWhere), nil, []int{0}), nil
	})
	register("ScatterND", buildScatterND)
}

// planFunc adapts a function to planner.
type planFunc func(in []*tensor.Tensor) ([]*pickMap, error)

func (f planFunc) plan(in []*tensor.Tensor) ([]*pickMap, error) { return f(in) }

// copyPlan maps every output element of the given shape to input 0 through
// offset(out position) for an odometer walk over shape.
func walk(shape []int, fn func(pos []int) int) []int {
	n := tensor.Size(shape)
	at := make([]int, n)
	pos := make([]int, len(shape))
	for i := 0; i < n; i++ {
		at[i] = fn(pos)
		for d := len(shape) - 1; d >= 0; d-- {
			pos[d]++
			if pos[d] < shape[d] {
				break
			}
			pos[d] = 0
		}
	}
	return at
}

// buildGather makes Gather(data, indices) along axis; negative indices
// count from the end.
func buildGather(n *onnx.Node, _ map[string]*tensor.Tensor, _ int64) (Op, error) {
	if err := wantInputs(n, 2, 2); err != nil {
		return nil, err
	}
	axis := int(attrInt(n, "axis", 0))
	return newPickSingle(planFunc(func(in []*tensor.Tensor) ([]*pickMap, error) {
		x, idx := in[0], in[1]
		r := x.Rank()
		a := axis
		if a < 0 {
			a += r
		}
		if a < 0 || a >= r {
			return nil, fmt.Errorf("gather axis %d is out of range for data of shape %v: %w", axis, x.Shape, ErrShape)
		}
		dim := x.Shape[a]
		ix := make([]int, idx.Size())
		for i, v := range idx.Data {
			k := int(v)
			if k < 0 {
				k += dim
			}
			if v != math.Trunc(v) || k < 0 || k >= dim {
				return nil, fmt.Errorf("gather index %g is out of range for axis %d of size %d: %w", v, axis, dim, ErrShape)
			}
			ix[i] = k
		}
		outer, inner := tensor.Size(x.Shape[:a]), tensor.Size(x.Shape[a+1:])
		shape := append(append(append([]int{}, x.Shape[:a]...), idx.Shape...), x.Shape[a+1:]...)
		at := make([]int, 0, tensor.Size(shape))
		for o := 0; o < outer; o++ {
			for _, k := range ix {
				base := (o*dim + k) * inner
				for j := 0; j < inner; j++ {
					at = append(at, base+j)
				}
			}
		}
		return []*pickMap{{shape: shape, at: at}}, nil
	}), nil, []int{1}), nil
}

// buildSlice makes Slice: starts, ends, axes and steps from attributes
// (opset < 10) or constant inputs 1-4, clamped as ONNX specifies.
func buildSlice(n *onnx.Node, consts map[string]*tensor.Tensor, opset int64) (Op, error) {
	var starts, ends, axes, steps []int64
	var ci []int
	if opset < 10 {
		if err := wantInputs(n, 1, 1); err != nil {
			return nil, err
		}
		starts, _ = attrInts(n, "starts")
		ends, _ = attrInts(n, "ends")
		axes, _ = attrInts(n, "axes")
	} else {
		if err := wantInputs(n, 3, 5); err != nil {
			return nil, err
		}
		lists := []*[]int64{&starts, &ends, &axes, &steps}
		for i := 1; i < len(n.Inputs); i++ {
			t, ok, err := constInput(n, consts, i)
			if err != nil {
				return nil, err
			}
			if ok {
				if *lists[i-1], err = intsOf(n, t, "slice parameter"); err != nil {
					return nil, err
				}
				ci = append(ci, i)
			}
		}
	}
	if len(ends) != len(starts) || (axes != nil && len(axes) != len(starts)) || (steps != nil && len(steps) != len(starts)) {
		return nil, nodeErr(n, "starts %v, ends %v, axes %v and steps %v differ in length", starts, ends, axes, steps)
	}
	for _, s := range steps {
		if s == 0 {
			return nil, nodeErr(n, "a step is 0")
		}
	}
	return newPickSingle(planFunc(func(in []*tensor.Tensor) ([]*pickMap, error) {
		return slicePlan(in[0].Shape, starts, ends, axes, steps)
	}), ci, nil), nil
}

// slicePlan computes the pick map of a Slice of an input of shape shape.
func slicePlan(shape []int, starts, ends, axes, steps []int64) ([]*pickMap, error) {
	r := len(shape)
	first, step := make([]int, r), make([]int, r)
	out := append([]int(nil), shape...)
	for d := range step {
		step[d] = 1
	}
	if axes == nil {
		axes = make([]int64, len(starts))
		for i := range axes {
			axes[i] = int64(i)
		}
	}
	ax, err := normAxes(axes, r)
	if err != nil {
		return nil, err
	}
	for i, a := range ax {
		dim := int64(shape[a])
		st := int64(1)
		if steps != nil {
			st = steps[i]
		}
		s, e := starts[i], ends[i]
		if s < 0 {
			s += dim
		}
		if e < 0 {
			e += dim
		}
		if st > 0 {
			s, e = min(max(s, 0), dim), min(max(e, 0), dim)
		} else {
			s, e = min(max(s, 0), dim-1), min(max(e, -1), dim-1)
		}
		cnt := int64(0)
		if st > 0 && e > s {
			cnt = (e - s + st - 1) / st
		} else if st < 0 && e < s {
			cnt = (s - e - st - 1) / -st
		}
		first[a], step[a], out[a] = int(s), int(st), int(cnt)
	}
	strides := tensor.Strides(shape)
	base, st := 0, make([]int, r)
	for d := range st {
		base += first[d] * strides[d]
		st[d] = step[d] * strides[d]
	}
	return []*pickMap{{shape: out, str: &strided{base: base, st: st}}}, nil
}

// buildSplit makes Split along axis into the sizes of the split attribute
// (opset < 13) or constant input 1, or into equal parts (the last one
// smaller when num_outputs does not divide the axis, opset 18).
func buildSplit(n *onnx.Node, consts map[string]*tensor.Tensor, opset int64) (MultiOp, error) {
	if err := wantInputs(n, 1, 2); err != nil {
		return nil, err
	}
	axis := int(attrInt(n, "axis", 0))
	var sizes []int64
	var ci []int
	if opset < 13 {
		sizes, _ = attrInts(n, "split")
	} else if t, ok, err := constInput(n, consts, 1); err != nil {
		return nil, err
	} else if ok {
		if sizes, err = intsOf(n, t, "split"); err != nil {
			return nil, err
		}
		ci = []int{1}
	}
	parts := len(n.Outputs)
	if sizes != nil && len(sizes) != parts {
		return nil, nodeErr(n, "split %v has %d sizes for %d outputs", sizes, len(sizes), parts)
	}
	return &pickOp{consts: ci, p: planFunc(func(in []*tensor.Tensor) ([]*pickMap, error) {
		shape := in[0].Shape
		a := axis
		if a < 0 {
			a += len(shape)
		}
		if a < 0 || a >= len(shape) {
			return nil, fmt.Errorf("split axis %d is out of range for shape %v: %w", axis, shape, ErrShape)
		}
		sz := sizes
		if sz == nil {
			chunk := (shape[a] + parts - 1) / parts
			for i, left := 0, shape[a]; i < parts; i++ {
				sz = append(sz, int64(min(chunk, left)))
				left -= min(chunk, left)
			}
		}
		total := int64(0)
		for _, s := range sz {
			total += s
		}
		if total != int64(shape[a]) {
			return nil, fmt.Errorf("split sizes %v do not add up to axis %d of shape %v: %w", sz, axis, shape, ErrShape)
		}
		maps := make([]*pickMap, parts)
		off := int64(0)
		for i, s := range sz {
			m, _ := slicePlan(shape, []int64{off}, []int64{off + s}, []int64{int64(a)}, nil)
			maps[i] = m[0]
			off += s
		}
		return maps, nil
	})}, nil
}

// buildExpand makes Expand: the input broadcast (both ways) with the
// constant shape input.
func buildExpand(n *onnx.Node, consts map[string]*tensor.Tensor, _ int64) (Op, error) {
	if err := wantInputs(n, 2, 2); err != nil {
		return nil, err
	}
	t, _, err := constInput(n, consts, 1)
	if err != nil {
		return nil, err
	}
	dims, err := intsOf(n, t, "shape")
	if err != nil {
		return nil, err
	}
	target := make([]int, len(dims))
	for i, d := range dims {
		target[i] = int(d)
	}
	return newPickSingle(planFunc(func(in []*tensor.Tensor) ([]*pickMap, error) {
		shape, err := numpyShape(in[0].Shape, target)
		if err != nil {
			return nil, err
		}
		return []*pickMap{{shape: shape, at: bcastIndex(in[0].Shape, shape)}}, nil
	}), []int{1}, nil), nil
}

// buildTile makes Tile: the input repeated repeats[d] times along each
// axis d.
func buildTile(n *onnx.Node, consts map[string]*tensor.Tensor, _ int64) (Op, error) {
	if err := wantInputs(n, 2, 2); err != nil {
		return nil, err
	}
	t, _, err := constInput(n, consts, 1)
	if err != nil {
		return nil, err
	}
	reps, err := intsOf(n, t, "repeats")
	if err != nil {
		return nil, err
	}
	return newPickSingle(planFunc(func(in []*tensor.Tensor) ([]*pickMap, error) {
		shape := in[0].Shape
		if len(reps) != len(shape) {
			return nil, fmt.Errorf("repeats %v do not fit an input of shape %v: %w", reps, shape, ErrShape)
		}
		out := make([]int, len(shape))
		for d, r := range reps {
			if r < 0 {
				return nil, fmt.Errorf("repeats %v has a negative value: %w", reps, ErrShape)
			}
			out[d] = shape[d] * int(r)
		}
		strides := tensor.Strides(shape)
		return []*pickMap{{shape: out, at: walk(out, func(pos []int) int {
			o := 0
			for d, p := range pos {
				o += (p % shape[d]) * strides[d]
			}
			return o
		})}}, nil
	}), []int{1}, nil), nil
}

// planWhere picks x (input 1) where the condition (input 0) is true and y
// (input 2) elsewhere, all three broadcast together.
func planWhere(in []*tensor.Tensor) ([]*pickMap, error) {
	s, err := numpyShape(in[0].Shape, in[1].Shape)
	if err == nil {
		s, err = numpyShape(s, in[2].Shape)
	}
	if err != nil {
		return nil, err
	}
	ic, ix, iy := bcastIndex(in[0].Shape, s), bcastIndex(in[1].Shape, s), bcastIndex(in[2].Shape, s)
	m := &pickMap{shape: s, at: make([]int, len(ic)), src: make([]int8, len(ic))}
	for i, c := range ic {
		if in[0].Data[c] != 0 {
			m.src[i], m.at[i] = 1, ix[i]
		} else {
			m.src[i], m.at[i] = 2, iy[i]
		}
	}
	return []*pickMap{m}, nil
}

// buildScatterND makes ScatterND (reduction none): a copy of data (input 0)
// with the slices addressed by indices (input 1) replaced by updates
// (input 2).
func buildScatterND(n *onnx.Node, _ map[string]*tensor.Tensor, _ int64) (Op, error) {
	if err := wantInputs(n, 3, 3); err != nil {
		return nil, err
	}
	if a, ok := n.Attrs["reduction"]; ok && a.S != "" && a.S != "none" {
		return nil, nodeErrWrap(n, ErrUnsupported, "reduction %q is not supported; only none is", a.S)
	}
	return newPickSingle(planFunc(planScatterND), nil, []int{1}), nil
}

func planScatterND(in []*tensor.Tensor) ([]*pickMap, error) {
	data, idx, upd := in[0], in[1], in[2]
	if idx.Rank() < 1 {
		return nil, fmt.Errorf("scatter indices must have rank >= 1; got %v: %w", idx.Shape, ErrShape)
	}
	q := idx.Shape[idx.Rank()-1]
	if q > data.Rank() {
		return nil, fmt.Errorf("scatter index length %d exceeds the data rank %d: %w", q, data.Rank(), ErrShape)
	}
	want := append(append([]int{}, idx.Shape[:idx.Rank()-1]...), data.Shape[q:]...)
	if !tensor.SameShape(upd.Shape, want) {
		return nil, fmt.Errorf("scatter updates have shape %v; want %v: %w", upd.Shape, want, ErrShape)
	}
	m := &pickMap{shape: append([]int(nil), data.Shape...), at: make([]int, data.Size()), src: make([]int8, data.Size())}
	for i := range m.at {
		m.at[i] = i
	}
	inner := tensor.Size(data.Shape[q:])
	strides := tensor.Strides(data.Shape)
	for u := 0; u < tensor.Size(idx.Shape[:idx.Rank()-1]); u++ {
		off := 0
		for d := 0; d < q; d++ {
			v := int(idx.Data[u*q+d])
			if v < 0 {
				v += data.Shape[d]
			}
			if v < 0 || v >= data.Shape[d] {
				return nil, fmt.Errorf("scatter index %g is out of range for axis %d of size %d: %w", idx.Data[u*q+d], d, data.Shape[d], ErrShape)
			}
			off += v * strides[d]
		}
		for j := 0; j < inner; j++ {
			m.src[off+j], m.at[off+j] = 2, u*inner+j
		}
	}
	return []*pickMap{m}, nil
}
