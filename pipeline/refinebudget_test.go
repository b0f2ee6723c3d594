package pipeline

import "testing"

// TestDefaultRefine checks --refine auto on the fixture LeNet:
// RefineWorkBudget over ((multiply-adds + ValueWork × values) per sample
// × held-out samples), clamped to [MinRefine, MaxRefine].
func TestDefaultRefine(t *testing.T) {
	net := loadNet(t, "../testdata/fmnist-lenet/lenet.onnx")
	var macs int64
	for _, l := range net.Layers() {
		macs += l.MACs
	}
	// The fixture's values per sample, counted by hand from its shapes:
	// conv1 6×28×28 and its Relu, MaxPool 6×14×14, conv2 16×10×10 and its
	// Relu, MaxPool 16×5×5, Flatten 400, fc1 120 and its Relu, fc2 84 and
	// its Relu, fc3 10.
	const lenetValues = 2*4704 + 1176 + 2*1600 + 2*400 + 2*120 + 2*84 + 10
	if got := net.ValuesPerSample(); got != lenetValues {
		t.Fatalf("values per sample: got %d; want %d", got, lenetValues)
	}
	work := float64(macs) + ValueWork*float64(lenetValues)
	// heldOut(n) is the held-out size at which one measurement costs
	// 1/n of the budget.
	heldOut := func(n int) int { return int(RefineWorkBudget / (float64(n) * work)) }
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
