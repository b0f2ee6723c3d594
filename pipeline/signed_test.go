package pipeline

import (
	"context"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// The direct metric is a signed loss change, so a table may hold negative
// omegas. Subtracting a per-layer constant from every option of a layer
// (making some omegas negative) must leave the ILP's choice unchanged and
// move the objective by the constants' sum.
func TestSearchSignedOmegas(t *testing.T) {
	ctx := context.Background()
	budget := SearchConfig{Budgets: []Budget{{Resource: Size, Kind: Fraction, Value: 0.4, Text: "40%"}}}
	pos := randomTable(5, 14)
	want, err := Search(ctx, pos, budget)
	if err != nil {
		t.Fatal(err)
	}
	signed := randomTable(5, 14)
	rng := rand.New(rand.NewPCG(8, 1))
	shift, negatives := 0.0, 0
	for i := range signed.Layers {
		l := &signed.Layers[i]
		c := l.Omega[4] * (1 + rng.Float64()) // above the 4- and 8-bit omegas
		shift += c
		for b := range l.Omega {
			l.Omega[b] -= c
			if l.Omega[b] < 0 {
				negatives++
			}
		}
	}
	if negatives == 0 {
		t.Fatal("the shifted table has no negative omega; the test checks nothing")
	}
	got, err := Search(ctx, signed, budget)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got.Plain.Bits, want.Plain.Bits) {
		t.Errorf("ILP choice with signed omegas: got %v; want %v (the same table without the per-layer shifts)", got.Plain.Bits, want.Plain.Bits)
	}
	if d := got.Plain.Objective - (want.Plain.Objective - shift); math.Abs(d) > 1e-9*math.Abs(shift) {
		t.Errorf("objective: got %.12g; want %.12g (unshifted optimum minus the shifts)", got.Plain.Objective, want.Plain.Objective-shift)
	}
}
