package intengine

import (
	"testing"

	"mpsearch/network"
	"mpsearch/onnx"
)

// tinyTransformer is a ViT-like network: a class token expanded to the
// batch size read by a Shape node and concatenated to the tokens, then a
// projection computed with the batch folded into the rows (Transpose to
// [T, N, D], Reshape to [T·N, D]) and unfolded again, as torch's
// MultiheadAttention exports it.
func tinyTransformer(t testing.TB) *network.Network {
	b := newGraphBuilder(41, []int64{6, 8})
	i64 := func(name string, v ...float64) string {
		n := b.init(name, 0, []int{len(v)}, v...)
		b.g.InitTypes[name] = onnx.Int64
		return n
	}
	sh := b.node("shape", "Shape", []string{"x"})
	nb := b.node("nb", "Gather", []string{sh, i64("zero", 0)})
	dims := b.node("dims", "Concat", []string{nb, i64("one", 1), i64("eight", 8)}, aInt("axis", 0))
	cls := b.node("cls", "Expand", []string{b.init("token", 0.5, []int{1, 1, 8}), dims})
	tok := b.node("tok", "Concat", []string{cls, "x"}, aInt("axis", 1))
	tt := b.node("tt", "Transpose", []string{tok}, aInts("perm", 1, 0, 2))
	rows := b.node("rows", "Reshape", []string{tt, i64("rowshape", -1, 8)})
	proj := b.node("proj", "Gemm", []string{rows, b.init("wp", 0.4, []int{8, 12}), b.init("bp", 0.1, []int{12})})
	back := b.node("back", "Reshape", []string{proj, i64("backshape", 7, -1, 12)})
	bt := b.node("bt", "Transpose", []string{back}, aInts("perm", 1, 0, 2))
	r := b.node("r", "Relu", []string{bt})
	sm := b.node("sm", "Softmax", []string{r}, aInt("axis", -1))
	mean := b.node("mean", "ReduceMean", []string{sm}, aInts("axes", 1), aInt("keepdims", 0))
	return b.build(t, b.node("fc", "Gemm", []string{mean, b.init("wf", 2, []int{12, 5}), b.init("bf", 0.1, []int{5})}))
}

// TestSerialPlanMatchesSimulation: a network whose values do not all
// keep the batch first compiles to a serial program, and its integer
// codes equal the simulation's bit for bit at several widths.
func TestSerialPlanMatchesSimulation(t *testing.T) {
	net := tinyTransformer(t)
	m := compileSynthetic(t, net, nil)
	if !m.plan.serial {
		t.Fatal("the plan is batch-first; want serial (the batch is folded into the rows)")
	}
	for _, v := range []string{"tt_out", "rows_out", "proj_out"} {
		if !m.plan.whole[v] {
			t.Errorf("value %s: not marked whole; its batch axis is not first", v)
		}
	}
	checkExact(t, net, [][]int{nil, {4, 8}, {2, 3}}, []string{"tok", "tt", "bt", "sm", "mean"})
	checkCloseToFloat(t, net)
	if p, err := analyze(residualNet(t)); err != nil || p.serial {
		t.Errorf("a batch-first CNN: serial %v, error %v; want a batch-first plan", p != nil && p.serial, err)
	}
}
