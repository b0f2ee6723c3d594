package network

import (
	"math/rand/v2"
	"testing"

	"mpsearch/onnx"
	"mpsearch/tensor"
)

// refGemm computes alpha*op(A)*op(B) + beta*C by direct loops, C given
// by a function of (i, j) (nil for none).
func refGemm(a, b *tensor.Tensor, ta, tb bool, alpha, beta float64, c func(i, j int) float64) *tensor.Tensor {
	at := func(i, l int) float64 {
		if ta {
			return a.Data[l*a.Shape[1]+i]
		}
		return a.Data[i*a.Shape[1]+l]
	}
	bt := func(l, j int) float64 {
		if tb {
			return b.Data[j*b.Shape[1]+l]
		}
		return b.Data[l*b.Shape[1]+j]
	}
	m, k := a.Shape[0], a.Shape[1]
	if ta {
		m, k = k, m
	}
	n := b.Shape[1]
	if tb {
		n = b.Shape[0]
	}
	y := tensor.New(m, n)
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			s := 0.0
			for l := 0; l < k; l++ {
				s += at(i, l) * bt(l, j)
			}
			y.Data[i*n+j] = alpha * s
			if c != nil {
				y.Data[i*n+j] += beta * c(i, j)
			}
		}
	}
	return y
}

func TestGemm(t *testing.T) {
	const m, k, n = 3, 4, 5
	tests := []struct {
		name   string
		ta, tb bool
		alpha  float32
		beta   float32
		c      []int // C's shape; nil: no C
	}{
		{name: "plain, C [M,N]", alpha: 1, beta: 1, c: []int{m, n}},
		{name: "transA, C [N]", ta: true, alpha: 0.7, beta: 1.3, c: []int{n}},
		{name: "transB, C [M,1]", tb: true, alpha: -1.5, beta: 0.5, c: []int{m, 1}},
		{name: "transA transB, scalar C", ta: true, tb: true, alpha: 2, beta: -0.25, c: []int{}},
		{name: "C [1,N]", alpha: 1, beta: 2, c: []int{1, n}},
		{name: "no C", tb: true, alpha: 0.5, beta: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(9, 10))
			as, bs := []int{m, k}, []int{k, n}
			if tc.ta {
				as = []int{k, m}
			}
			if tc.tb {
				bs = []int{n, k}
			}
			in := []*tensor.Tensor{randTensor(rng, as...), randTensor(rng, bs...)}
			var cf func(i, j int) float64
			if tc.c != nil {
				c := randTensor(rng, tc.c...)
				in = append(in, c)
				// C right-aligned to [M,N]; size-1 dimensions repeat.
				full := []int{1, 1}
				copy(full[2-len(tc.c):], tc.c)
				cf = func(i, j int) float64 { return c.Data[(i%full[0])*full[1]+j%full[1]] }
			}
			tb, ta := int64(0), int64(0)
			if tc.tb {
				tb = 1
			}
			if tc.ta {
				ta = 1
			}
			op := buildLayer(t, "Gemm", len(in), map[string]onnx.Attribute{
				"alpha": laFloat(tc.alpha), "beta": laFloat(tc.beta), "transA": laInt(ta), "transB": laInt(tb)}, nil, 13)
			y, _, err := op.Forward(in)
			if err != nil {
				t.Fatalf("Forward: %v", err)
			}
			want := refGemm(in[0], in[1], tc.ta, tc.tb, float64(tc.alpha), float64(tc.beta), cf)
			if !tensor.SameShape(y.Shape, want.Shape) {
				t.Fatalf("shape: got %v; want %v", y.Shape, want.Shape)
			}
			if d := maxRelDiff(y.Data, want.Data); d > refTol {
				t.Errorf("Forward vs direct loops: max relative difference %g; want <= %g", d, refTol)
			}
			diff := []int{0, 1}
			if tc.c != nil {
				diff = append(diff, 2)
			}
			checkOp(t, op, in, diff)
		})
	}
}

func TestGemmErrors(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	for _, tc := range []struct {
		name string
		a, b []int
		c    []int
	}{
		{"inner mismatch", []int{2, 3}, []int{4, 5}, nil},
		{"3-D A", []int{2, 3, 4}, []int{4, 5}, nil},
		{"C does not broadcast", []int{2, 3}, []int{3, 5}, []int{2, 5, 1}},
		{"C [M] with M != N", []int{2, 3}, []int{3, 5}, []int{2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := []*tensor.Tensor{randTensor(rng, tc.a...), randTensor(rng, tc.b...)}
			if tc.c != nil {
				in = append(in, randTensor(rng, tc.c...))
			}
			op := buildLayer(t, "Gemm", len(in), nil, nil, 13)
			if _, _, err := op.Forward(in); err == nil {
				t.Errorf("Forward: got no error; want a shape error")
			}
		})
	}
}

// refMatMul is numpy matmul by direct loops.
func refMatMul(a, b *tensor.Tensor) *tensor.Tensor {
	as, bs := append([]int(nil), a.Shape...), append([]int(nil), b.Shape...)
	if len(as) == 1 {
		as = []int{1, as[0]}
	}
	if len(bs) == 1 {
		bs = []int{bs[0], 1}
	}
	m, k, n := as[len(as)-2], as[len(as)-1], bs[len(bs)-1]
	ab, bb := as[:len(as)-2], bs[:len(bs)-2]
	r := max(len(ab), len(bb))
	pad := func(s []int) []int { return append(make([]int, r-len(s)), s...) }
	ab, bb = pad(ab), pad(bb)
	batch := make([]int, r)
	for i := range batch {
		batch[i] = max(ab[i], bb[i], 1)
	}
	nb := tensor.Size(batch)
	y := make([]float64, nb*m*n)
	for bi := 0; bi < nb; bi++ {
		// Decompose bi and map to A's and B's batch index.
		ia, ib, rem := 0, 0, bi
		idx := make([]int, r)
		for d := r - 1; d >= 0; d-- {
			idx[d] = rem % batch[d]
			rem /= batch[d]
		}
		for d := 0; d < r; d++ {
			da, db := max(ab[d], 1), max(bb[d], 1)
			ia = ia*da + idx[d]%da
			ib = ib*db + idx[d]%db
		}
		for i := 0; i < m; i++ {
			for j := 0; j < n; j++ {
				s := 0.0
				for l := 0; l < k; l++ {
					s += a.Data[(ia*m+i)*k+l] * b.Data[(ib*k+l)*n+j]
				}
				y[(bi*m+i)*n+j] = s
			}
		}
	}
	shape := append([]int(nil), batch...)
	if a.Rank() > 1 {
		shape = append(shape, m)
	}
	if b.Rank() > 1 {
		shape = append(shape, n)
	}
	return tensor.FromData(y, shape...)
}

func TestMatMul(t *testing.T) {
	tests := []struct {
		name string
		a, b []int
	}{
		{"2-D", []int{3, 4}, []int{4, 5}},
		{"batched A, shared B", []int{2, 3, 4}, []int{4, 5}},
		{"shared A, batched B", []int{3, 4}, []int{2, 4, 5}},
		{"broadcast both", []int{2, 1, 3, 4}, []int{3, 4, 2}},
		{"same batch", []int{2, 3, 4}, []int{2, 4, 3}},
		{"1-D A", []int{4}, []int{2, 4, 3}},
		{"1-D B", []int{2, 3, 4}, []int{4}},
		{"1-D both", []int{4}, []int{4}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(11, 12))
			in := []*tensor.Tensor{randTensor(rng, tc.a...), randTensor(rng, tc.b...)}
			op := buildLayer(t, "MatMul", 2, nil, nil, 13)
			y, _, err := op.Forward(in)
			if err != nil {
				t.Fatalf("Forward: %v", err)
			}
			want := refMatMul(in[0], in[1])
			if !tensor.SameShape(y.Shape, want.Shape) {
				t.Fatalf("shape: got %v; want %v", y.Shape, want.Shape)
			}
			if d := maxRelDiff(y.Data, want.Data); d > refTol {
				t.Errorf("Forward vs direct loops: max relative difference %g; want <= %g", d, refTol)
			}
			checkOp(t, op, in, []int{0, 1})
		})
	}
	t.Run("errors", func(t *testing.T) {
		rng := rand.New(rand.NewPCG(1, 1))
		for _, s := range [][2][]int{{{3, 4}, {5, 6}}, {{2, 3, 4}, {3, 4, 5}}, {{}, {3}}} {
			op := buildLayer(t, "MatMul", 2, nil, nil, 13)
			if _, _, err := op.Forward([]*tensor.Tensor{randTensor(rng, s[0]...), randTensor(rng, s[1]...)}); err == nil {
				t.Errorf("MatMul %v x %v: got no error; want a shape error", s[0], s[1])
			}
		}
	})
}
