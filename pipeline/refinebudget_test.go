package pipeline

import "testing"

// TestDefaultRefine checks --refine auto on the fixture LeNet:
// RefineMACBudget over (multiply-adds per sample × held-out samples),
// clamped to [MinRefine, MaxRefine].
func TestDefaultRefine(t *testing.T) {
	net := loadNet(t, "../testdata/fmnist-lenet/lenet.onnx")
	var macs int64
	for _, l := range net.Layers() {
		macs += l.MACs
	}
	// heldOut(n) is the held-out size at which one measurement costs
	// 1/n of the budget.
	heldOut := func(n int) int { return int(RefineMACBudget / (float64(n) * float64(macs))) }
	for _, tc := range []struct {
		name    string
		heldOut int
		want    int
	}{
		{"the fixture's own held-out quarter", 128, MaxRefine},
		{"no held-out samples", 0, MaxRefine},
		{"50 measurements fit", heldOut(50), 50},
		{"9 measurements fit", heldOut(9), 9},
		{"one measurement takes the budget", heldOut(1), MinRefine},
	} {
		if got := DefaultRefine(net, tc.heldOut); got != tc.want {
			t.Errorf("%s (%d held-out samples, %d multiply-adds each): got %d; want %d", tc.name, tc.heldOut, macs, got, tc.want)
		}
	}
}
