package pipeline

import (
	"context"
	"fmt"

	"mpsearch/dataset"
	"mpsearch/internal/atomicfile"
	"mpsearch/network"
	"mpsearch/tensor"
)

// RunOptions controls RunOutputs.
type RunOptions struct {
	Batch    int // samples per forward pass; default 256
	Progress Progress
}

// ModelOutputs is the first graph output of a model for every sample of a data
// set, in float32, stacked along the first (batch) axis.
type ModelOutputs struct {
	Name  string // the graph output's name
	Shape []int  // [samples, ...]
	Data  []float32
}

// RunOutputs runs net over ds in mini-batches and collects the first graph
// output of every sample. Each batch's output must keep the batch axis
// first with the same per-sample shape. The values do not depend on the
// batch size beyond float64 rounding of batched matrix products.
func RunOutputs(ctx context.Context, net *network.Network, ds *dataset.Dataset, opt RunOptions) (*ModelOutputs, error) {
	bs := opt.Batch
	if bs <= 0 {
		bs = 256
	}
	n := ds.Len()
	if err := net.CheckInput(tensor.New(append([]int{1}, ds.SampleShape()...)...)); err != nil {
		return nil, fmt.Errorf("%s: %w", ds.Source, err)
	}
	out := &ModelOutputs{Name: net.OutputName}
	var per int
	for b := 0; b < ds.NumBatches(bs); b++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		x, _ := ds.Batch(b, bs)
		z, err := net.Infer(ctx, x)
		if err != nil {
			return nil, err
		}
		m := x.Shape[0]
		if z.Rank() < 1 || z.Shape[0] != m {
			return nil, fmt.Errorf("output %q has shape %v for a batch of %d samples; mpsearch run needs the batch axis first", net.OutputName, z.Shape, m)
		}
		if out.Shape == nil {
			out.Shape = append([]int{n}, z.Shape[1:]...)
			per = z.Size() / m
			out.Data = make([]float32, 0, n*per)
		} else if !tensor.SameShape(z.Shape[1:], out.Shape[1:]) {
			return nil, fmt.Errorf("output %q: samples of shape %v in batch %d, %v before", net.OutputName, z.Shape[1:], b, out.Shape[1:])
		}
		for _, v := range z.Data {
			out.Data = append(out.Data, float32(v))
		}
		if opt.Progress != nil {
			opt.Progress(min((b+1)*bs, n), n)
		}
	}
	return out, nil
}

// WriteNPY writes the outputs as a float32 NPY file, atomically: the file
// appears whole or not at all.
func (o *ModelOutputs) WriteNPY(path string) error {
	b, err := dataset.NPYFloat32(o.Shape, o.Data)
	if err != nil {
		return err
	}
	return atomicfile.Write(path, b, 0o644)
}
