package pipeline

import (
	"bufio"
	"context"
	"fmt"

	"mpsearch/dataset"
	"mpsearch/internal/atomicfile"
	"mpsearch/network"
	"mpsearch/tensor"
)

// RunOptions controls WriteOutputs.
type RunOptions struct {
	Batch    int // samples per forward pass; default 256
	Progress Progress
	// Infer, when not nil, computes a batch's output instead of the float
	// network (mpsearch run --bits: the integer engine, Model.Run).
	Infer func(ctx context.Context, x *tensor.Tensor) (*tensor.Tensor, error)
}

// OutputsInfo describes the array WriteOutputs wrote.
type OutputsInfo struct {
	Name  string // the graph output's name
	Shape []int  // [samples, ...]
}

// WriteOutputs runs net over ds in mini-batches and writes the first graph
// output of every sample to path as a float32 NPY array stacked along the
// first (batch) axis. It reads ds and writes the file one batch at a time,
// so neither the data nor the outputs are held whole; the file goes to a
// temporary file beside path, renamed over path only when every batch was
// written: on an error or an ended context nothing appears at path. Each
// batch's output must keep the batch axis first with the same per-sample
// shape. The values do not depend on the batch size beyond the rounding of
// batched matrix products.
func WriteOutputs(ctx context.Context, net *network.Network, ds dataset.Source, path string, opt RunOptions) (*OutputsInfo, error) {
	bs := opt.Batch
	if bs <= 0 {
		bs = 256
	}
	n := ds.Len()
	if err := net.CheckInput(tensor.New(append([]int{1}, ds.SampleShape()...)...)); err != nil {
		return nil, fmt.Errorf("%s: %w", ds.Name(), err)
	}
	f, err := atomicfile.Create(path, 0o644)
	if err != nil {
		return nil, err
	}
	defer f.Abort()
	bw := bufio.NewWriterSize(f, 1<<20)
	out := &OutputsInfo{Name: net.OutputName}
	var npy *dataset.NPYFloat32Writer
	err = eachBatch(ctx, ds, bs, func(x *tensor.Tensor, _ []int, done int) error {
		infer := net.Infer
		if opt.Infer != nil {
			infer = opt.Infer
		}
		z, err := infer(ctx, x)
		if err != nil {
			return err
		}
		m := x.Shape[0]
		if z.Rank() < 1 || z.Shape[0] != m {
			return fmt.Errorf("output %q has shape %v for a batch of %d samples; mpsearch run needs the batch axis first", net.OutputName, z.Shape, m)
		}
		if npy == nil {
			out.Shape = append([]int{n}, z.Shape[1:]...)
			if npy, err = dataset.NewNPYFloat32Writer(bw, out.Shape); err != nil {
				return fmt.Errorf("write %s: %w", path, err)
			}
		} else if !tensor.SameShape(z.Shape[1:], out.Shape[1:]) {
			return fmt.Errorf("output %q: samples of shape %v in the batch ending at sample %d, %v before", net.OutputName, z.Shape[1:], done, out.Shape[1:])
		}
		if err := npy.Write(z.Data); err != nil {
			return fmt.Errorf("write %s: %w", path, err)
		}
		if opt.Progress != nil {
			opt.Progress(done, n)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if err := npy.Close(); err != nil {
		return nil, fmt.Errorf("write %s: %w", path, err)
	}
	if err := bw.Flush(); err != nil {
		return nil, fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Commit(); err != nil {
		return nil, err
	}
	return out, nil
}
