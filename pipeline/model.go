package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"sort"
	"strings"
	"time"

	"mpsearch/dataset"
	"mpsearch/network"
	"mpsearch/onnx"
	"mpsearch/rlsearch"
	"mpsearch/tensor"
)

// ModelOptions says how LoadModel and ParseModel build the float network.
type ModelOptions struct {
	// InputShapes fixes the shapes of graph inputs by name: the full shape,
	// batch axis included (its value is ignored). It is what the user gave
	// with --input-shape; every name must be a graph input of the model.
	InputShapes map[string][]int
	// SampleShape is the shape of one data sample, without the batch axis.
	// When InputShapes is empty and the first graph input declares a
	// dimension other than the batch axis dynamic (or declares no shape),
	// that input takes the shape [1, SampleShape...]: the data resolves
	// dynamic models. A model whose input is fully declared is built as
	// declared, so data of another shape is reported as a mismatch.
	SampleShape []int
	// Precision is the arithmetic of the network's matrix products: F64
	// (the zero value, the exact reference) or F32 (--precision f32, the
	// commands' default).
	Precision network.Precision
}

// LoadModel reads an ONNX file and builds the float network.
func LoadModel(path string, opt ModelOptions) (*network.Network, error) {
	m, err := onnx.Load(path)
	if err != nil {
		return nil, err
	}
	return buildModel(m, path, opt)
}

// ParseModel builds the float network from ONNX bytes (the built-in demo).
func ParseModel(data []byte, name string, opt ModelOptions) (*network.Network, error) {
	m, err := onnx.Parse(data, "")
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return buildModel(m, name, opt)
}

func buildModel(m *onnx.Model, name string, opt ModelOptions) (*network.Network, error) {
	shapes, err := inputShapes(m, opt)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	net, err := network.Build(m, network.Options{InputShapes: shapes, Precision: opt.Precision})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return net, nil
}

// inputShapes returns the input shapes to build m with (nil: as declared).
func inputShapes(m *onnx.Model, opt ModelOptions) (map[string][]int, error) {
	if m.Graph == nil || len(m.Graph.Inputs) == 0 {
		return nil, nil // network.Build reports it
	}
	if len(opt.InputShapes) > 0 {
		var names []string
		for _, in := range m.Graph.Inputs {
			names = append(names, in.Name)
		}
		given := make([]string, 0, len(opt.InputShapes))
		for k := range opt.InputShapes {
			given = append(given, k)
		}
		sort.Strings(given)
		for _, k := range given {
			if !slices.Contains(names, k) {
				return nil, fmt.Errorf("--input-shape names input %q, which the model does not have; its inputs: %s", k, strings.Join(names, ", "))
			}
		}
		return opt.InputShapes, nil
	}
	in := m.Graph.Inputs[0]
	if opt.SampleShape == nil || !hasDynamicSampleDim(in) {
		return nil, nil
	}
	return map[string][]int{in.Name: append([]int{1}, opt.SampleShape...)}, nil
}

// hasDynamicSampleDim tells whether in declares no shape or a dynamic
// dimension other than the batch axis.
func hasDynamicSampleDim(in onnx.ValueInfo) bool {
	if len(in.Shape) == 0 {
		return true
	}
	for _, d := range in.Shape[1:] {
		if d.Value <= 0 {
			return true
		}
	}
	return false
}

// Progress reports how far a long job is: done of total units.
type Progress func(done, total int)

// EvalResult is the outcome of Evaluate.
type EvalResult struct {
	Samples  int
	Accuracy float64 // top-1 in [0,1]; NaN without labels
	Loss     float64 // mean cross-entropy; NaN without labels
	// Seconds is the wall time of the forward passes; ImagesPerSec follows.
	Seconds      float64
	ImagesPerSec float64
}

// EvalOptions controls Evaluate.
type EvalOptions struct {
	Batch    int // default 256
	Progress Progress
	Hook     network.Hook // optional input transform (simulated quantization)
}

// Evaluate runs net over ds in batches and measures top-1 accuracy and the
// mean cross-entropy (when ds has labels) and throughput. It reads ds one
// batch at a time (dataset.Source), so a dataset.Stream is never held
// whole; Seconds counts the forward passes only, not the reading.
func Evaluate(ctx context.Context, net *network.Network, ds dataset.Source, opt EvalOptions) (*EvalResult, error) {
	bs := opt.Batch
	if bs <= 0 {
		bs = 256
	}
	n := ds.Len()
	if n == 0 {
		return nil, fmt.Errorf("evaluate: %s holds no samples", ds.Name())
	}
	if err := net.CheckInput(tensor.New(append([]int{1}, ds.SampleShape()...)...)); err != nil {
		return nil, fmt.Errorf("%s: %w", ds.Name(), err)
	}
	res := &EvalResult{Samples: n, Accuracy: math.NaN(), Loss: math.NaN()}
	correct, lossSum := 0, 0.0
	var elapsed time.Duration
	err := eachBatch(ctx, ds, bs, func(x *tensor.Tensor, y []int, done int) error {
		t0 := time.Now()
		z, err := net.InferHook(ctx, x, opt.Hook)
		if err != nil {
			return err
		}
		elapsed += time.Since(t0)
		if y != nil {
			l, _, err := network.CrossEntropy{Labels: y, Denom: 1}.Eval(z)
			if err != nil {
				return err
			}
			lossSum += l
			correct += countCorrect(z, y)
		}
		if opt.Progress != nil {
			opt.Progress(done, n)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if ds.Labeled() {
		res.Accuracy = float64(correct) / float64(n)
		res.Loss = lossSum / float64(n)
	}
	res.Seconds = elapsed.Seconds()
	if res.Seconds > 0 {
		res.ImagesPerSec = float64(n) / res.Seconds
	}
	return res, nil
}

// eachBatch runs f on the batches of one pass over ds, of bs samples (the
// last may be shorter), with the number of samples read so far including
// the batch.
func eachBatch(ctx context.Context, ds dataset.Source, bs int, f func(x *tensor.Tensor, y []int, done int) error) error {
	b, err := ds.Batches()
	if err != nil {
		return err
	}
	defer b.Close()
	done := 0
	for {
		x, y, err := b.Next(ctx, bs)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		done += x.Shape[0]
		if err := f(x, y, done); err != nil {
			return err
		}
	}
}

// countCorrect counts rows of z whose argmax (first on ties) is the label.
func countCorrect(z *tensor.Tensor, y []int) int {
	c := z.Shape[1]
	ok := 0
	for i, lab := range y {
		row := z.Data[i*c : (i+1)*c]
		best := 0
		for j := 1; j < c; j++ {
			if row[j] > row[best] {
				best = j
			}
		}
		if best == lab {
			ok++
		}
	}
	return ok
}

// splitBatches cuts x ([N, ...]) into views of at most size samples.
func splitBatches(x *tensor.Tensor, size int) []*tensor.Tensor {
	n := x.Shape[0]
	per := x.Size() / n
	var out []*tensor.Tensor
	for s := 0; s < n; s += size {
		e := min(s+size, n)
		out = append(out, tensor.FromData(x.Data[s*per:e*per], append([]int{e - s}, x.Shape[1:]...)...))
	}
	return out
}

// LayerFeatures describes the network's quantizable layers for the RL
// agent's state.
func LayerFeatures(net *network.Network) []rlsearch.LayerFeatures {
	var out []rlsearch.LayerFeatures
	for _, l := range net.Layers() {
		w := net.Params()[l.Weight].Value
		f := rlsearch.LayerFeatures{Params: float64(w.Size()), MACs: float64(l.MACs), Kernel: 1, Stride: 1, InputSize: 1}
		switch l.Op {
		case "Conv":
			f.Op = rlsearch.OpConv
			f.OutChannels = w.Shape[0]
			if len(l.InShape) == 4 && len(l.OutShape) == 4 && w.Rank() == 4 {
				f.InChannels = l.InShape[1]
				f.Kernel = w.Shape[2]
				f.InputSize = l.InShape[2] * l.InShape[3]
				if l.OutShape[2] > 0 {
					f.Stride = max(1, l.InShape[2]/l.OutShape[2])
				}
			}
		default:
			f.Op = rlsearch.OpGemm
			if l.Op == "MatMul" {
				f.Op = rlsearch.OpMatMul
			}
			f.OutChannels = w.Shape[l.ChannelAxis]
			f.InChannels = w.Size() / max(1, f.OutChannels)
		}
		out = append(out, f)
	}
	return out
}
