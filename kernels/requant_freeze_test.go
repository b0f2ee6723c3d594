package kernels

import (
	"errors"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestRequantFreeze checks that a frozen Requant gives the same codes as
// the definition (refGEMM, refRequant) through GEMMRequant,
// GEMMStreamRequant and DepthwiseNHWC, that a Requant whose fields were
// replaced after Freeze is recomputed (a new Bias slice, a new Zero),
// that a frozen Requant used for another channel count is checked again
// (and here rejected: its Bias has the frozen count), and that Freeze rejects what check rejects.
func TestRequantFreeze(t *testing.T) {
	rng := rand.New(rand.NewPCG(61, 62))
	m, n, k := 3, 83, 301
	a := make([]uint8, m*k)
	for i := range a {
		a[i] = uint8(rng.IntN(256))
	}
	w := randWeights(rng, n, k, 8)
	pw, err := PackWeights(w, n, k, 8)
	if err != nil {
		t.Fatal(err)
	}
	sw, err := PackStream(w, n, k, 8)
	if err != nil {
		t.Fatal(err)
	}
	ref := refGEMM(a, m, k, 9, w, n)
	var sc Scratch
	run := func(name string, rq *Requant) {
		t.Helper()
		want := refRequant(ref, n, rq)
		got := make([]uint8, m*n)
		for _, call := range []struct {
			kind string
			f    func() error
		}{
			{"GEMMRequant", func() error { return GEMMRequant(got, a, m, k, 9, pw, rq, Options{Scratch: &sc}) }},
			{"GEMMStreamRequant", func() error { return GEMMStreamRequant(got, a, m, k, 9, sw, rq, Options{Scratch: &sc}) }},
			{"GEMMRequant/2 threads", func() error { return GEMMRequant(got, a, m, k, 9, pw, rq, Options{Threads: 2}) }},
		} {
			clear(got)
			if err := call.f(); err != nil {
				t.Fatalf("%s, %s: %v", name, call.kind, err)
			}
			for i := range got {
				if got[i] != want[i] {
					t.Fatalf("%s, %s: dst[%d][%d] = %d; want %d", name, call.kind, i/n, i%n, got[i], want[i])
				}
			}
		}
	}
	rq := randRequant(rng, n, false)
	run("not frozen", rq)
	if err := rq.Freeze(n); err != nil {
		t.Fatal(err)
	}
	run("frozen", rq)
	// Replaced fields are seen: the frozen constants no longer apply.
	rq.Bias = slices.Clone(rq.Bias)
	for i := range rq.Bias {
		rq.Bias[i] += int32(rng.IntN(2001) - 1000)
	}
	run("new Bias after Freeze", rq)
	if err := rq.Freeze(n); err != nil {
		t.Fatal(err)
	}
	rq.Zero++
	run("new Zero after Freeze", rq)
	// Frozen for another channel count: checked again.
	if err := rq.Freeze(n); err != nil {
		t.Fatal(err)
	}
	if err := GEMMRequant(make([]uint8, m*(n-1)), a, m, k, 9, mustPack(t, w[:(n-1)*k], n-1, k), rq, Options{}); !errors.Is(err, ErrRequant) {
		t.Errorf("frozen for %d channels, used for %d: err = %v; want ErrRequant", n, n-1, err)
	}
	pt := randRequant(rng, n, true)
	if err := pt.Freeze(n); err != nil {
		t.Fatal(err)
	}
	run("per-tensor, frozen", pt)
	bad := &Requant{Mult: []int32{1, 2}, Shift: []int{0}}
	if err := bad.Freeze(n); !errors.Is(err, ErrRequant) {
		t.Errorf("Freeze of mismatched Mult and Shift: err = %v; want ErrRequant", err)
	}
	if bad.frozen != nil {
		t.Error("a failed Freeze left frozen constants")
	}
}

func mustPack(t *testing.T, w []int8, n, k int) *Weights {
	t.Helper()
	pw, err := PackWeights(w, n, k, 8)
	if err != nil {
		t.Fatal(err)
	}
	return pw
}
