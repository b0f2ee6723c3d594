package dataset_test

import (
	"fmt"

	"mpsearch/dataset"
)

// Load the Fashion-MNIST calibration batch shipped in testdata and walk it in
// batches of 100.
func ExampleLoad() {
	d, err := dataset.Load("testdata/calib.npy", dataset.Options{Labels: "testdata/calib_labels.npy"})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(d.Len(), d.SampleShape(), d.Y[:8])
	for i := range d.NumBatches(100) {
		x, y := d.Batch(i, 100)
		fmt.Println(i, x.Shape, len(y))
	}
	// Output:
	// 256 [1 28 28] [9 0 0 3 0 2 7 2]
	// 0 [100 1 28 28] 100
	// 1 [100 1 28 28] 100
	// 2 [56 1 28 28] 56
}
