package pipeline

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"mpsearch/dataset"
	"mpsearch/network"
)

const lenetDir = "../testdata/fmnist-lenet/"

// TestWriteOutputsStreamed checks the NPY that WriteOutputs writes batch by
// batch from a stream against the float32 outputs of the same batches run
// on the data set loaded whole, and that a run cancelled after its first
// batch leaves the previous file as it was and no temporary file.
func TestWriteOutputsStreamed(t *testing.T) {
	s, err := dataset.Open(lenetDir+"calib.npy", dataset.Options{Mean: []float64{0.2860}, Std: []float64{0.3530}})
	if err != nil {
		t.Fatal(err)
	}
	net, err := LoadModel(lenetDir+"lenet.onnx", ModelOptions{SampleShape: s.SampleShape(), Precision: network.F32})
	if err != nil {
		t.Fatal(err)
	}
	ds, err := s.Load()
	if err != nil {
		t.Fatal(err)
	}
	const bs = 37 // 256 = 6×37 + 34
	var want []float32
	for b := 0; b < ds.NumBatches(bs); b++ {
		x, _ := ds.Batch(b, bs)
		z, err := net.Infer(context.Background(), x)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range z.Data {
			want = append(want, float32(v))
		}
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "out.npy")
	calls := 0
	info, err := WriteOutputs(context.Background(), net, s, path, RunOptions{Batch: bs, Progress: func(done, total int) { calls++ }})
	if err != nil {
		t.Fatal(err)
	}
	if info.Name != "logits" || len(info.Shape) != 2 || info.Shape[0] != 256 || info.Shape[1] != 10 || calls != 7 {
		t.Errorf("output %q of shape %v after %d progress calls; want \"logits\" [256 10] after 7", info.Name, info.Shape, calls)
	}
	wantBytes, err := dataset.NPYFloat32([]int{256, 10}, want)
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(wantBytes) {
		t.Errorf("the streamed file (%d bytes) differs from the outputs of the same batches loaded whole (%d bytes)", len(got), len(wantBytes))
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, err = WriteOutputs(ctx, net, s, path, RunOptions{Batch: bs, Progress: func(done, total int) { cancel() }})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled after the first batch: error %v; want context.Canceled", err)
	}
	if after, _ := os.ReadFile(path); string(after) != string(got) {
		t.Error("a cancelled run changed the previous output file")
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("%d entries in the output folder after a cancelled run; want 1 (no temporary file)", len(ents))
	}
}
