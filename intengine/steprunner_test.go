package intengine

import (
	"context"
	"errors"
	"math/rand/v2"
	"testing"
)

// TestStepRunner: StepRunner finds a step by its node ("add1", described
// "add1+r2" with its fused ReLU) and by its full description, runs it
// again alone without disturbing the program (a Run afterwards gives the
// same output as before), and refuses an unknown node with ErrConfig.
func TestStepRunner(t *testing.T) {
	ctx := context.Background()
	net := residualNet(t)
	m := compileSynthetic(t, net, nil)
	x := randBatch(rand.New(rand.NewPCG(3, 4)), 1, net.SampleShape)
	want, err := m.Run(ctx, x)
	if err != nil {
		t.Fatal(err)
	}
	for _, node := range []string{"add1", "add1+r2"} {
		run, release, err := m.StepRunner(ctx, x, node)
		if err != nil {
			t.Fatalf("StepRunner(%q): %v", node, err)
		}
		for range 3 {
			if err := run(); err != nil {
				t.Fatal(err)
			}
		}
		release()
	}
	got, err := m.Run(ctx, x)
	if err != nil {
		t.Fatal(err)
	}
	for i := range got.Data {
		if got.Data[i] != want.Data[i] {
			t.Fatalf("output %d after StepRunner: got %v; want %v", i, got.Data[i], want.Data[i])
		}
	}
	if _, _, err := m.StepRunner(ctx, x, "nope"); !errors.Is(err, ErrConfig) {
		t.Errorf("StepRunner(nope): got %v; want ErrConfig", err)
	}
}
