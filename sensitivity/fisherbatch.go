package sensitivity

import (
	"context"
	"fmt"

	"mpsearch/network"
	"mpsearch/tensor"
)

// fisherFactor is the memory of one fisher mini-batch in flight in units
// of its forward pass (Pass.Bytes): the pass, its backward values (a
// gradient for every value after the first layer) and the op states
// (columns a convolution keeps), with the per-sample weight gradients a
// scratch array of one layer's weight size. Measured on ResNet50 at 224²
// (F32; 201 MiB of values per sample): 2.0-2.4 times Pass.Bytes per added
// sample at peak (batches of 1, 4 and 8); 3 leaves room for the garbage
// collector's slack. It is half of passFactor, which also holds a Hessian-
// vector product's tangents.
const fisherFactor = 3

// fisherGroup is the number of consecutive oracle mini-batches that one
// fisher pass takes at once: as many as keep the group's forward pass
// times fisherFactor within OracleOptions.PassBytes and its samples within
// OracleOptions.Batch, at least one; one when the oracle caches its
// forward passes (fisher then reuses them instead of computing new
// ones). It depends on the model, the data size and the options only
// (never on Threads), so the table does not depend on the thread count.
func (o *Oracle) fisherGroup() int {
	b0 := o.batches[0].Shape[0]
	if o.cache || o.perSample <= 0 || b0 <= 0 {
		return 1
	}
	fwd := max(1, o.perSample/passFactor) // Pass.Bytes of one sample
	size := min(int64(o.batchCap), max(1, o.passBytes/(fwd*fisherFactor)))
	return int(max(1, size/int64(b0)))
}

// fisherBatches runs f on the forward pass of every group of g consecutive
// mini-batches (the last group may hold fewer), with the group's loss, on
// up to o.threads workers; f must only write to per-group storage. With
// g = 1 the groups are the mini-batches, with their cached passes.
func (o *Oracle) fisherBatches(ctx context.Context, g int, f func(i int, p *network.Pass, loss network.Loss) error) error {
	if g <= 1 {
		return o.forEachBatch(ctx, func(b int, p *network.Pass) error { return f(b, p, o.losses[b]) })
	}
	groups := (len(o.batches) + g - 1) / g
	return o.parallelN(ctx, groups, func(i int) error {
		lo, hi := i*g, min(len(o.batches), (i+1)*g)
		x := concatBatches(o.batches[lo:hi])
		loss, err := concatLoss(o.losses[lo:hi])
		if err != nil {
			return err
		}
		p, err := o.net.Forward(ctx, x)
		if err != nil {
			return err
		}
		return f(i, p, loss)
	})
}

// concatBatches joins mini-batches along the batch axis.
func concatBatches(bs []*tensor.Tensor) *tensor.Tensor {
	n, size := 0, 0
	for _, b := range bs {
		n += b.Shape[0]
		size += b.Size()
	}
	data := make([]float64, 0, size)
	for _, b := range bs {
		data = append(data, b.Data...)
	}
	return tensor.FromData(data, append([]int{n}, bs[0].Shape[1:]...)...)
}

// concatLoss is the loss of the concatenated mini-batches: their labels or
// target rows in order, with the same denominator (the whole data set's
// size), so its value is the sum of theirs and its output gradient their
// rows stacked.
func concatLoss(ls []network.Loss) (network.Loss, error) {
	switch l0 := ls[0].(type) {
	case network.CrossEntropy:
		var labels []int
		for _, l := range ls {
			ce, ok := l.(network.CrossEntropy)
			if !ok || ce.Denom != l0.Denom {
				return nil, fmt.Errorf("sensitivity: mini-batch losses %T and %T do not concatenate", l0, l)
			}
			labels = append(labels, ce.Labels...)
		}
		return network.CrossEntropy{Labels: labels, Denom: l0.Denom}, nil
	case network.SoftTarget:
		probs := make([]*tensor.Tensor, len(ls))
		for i, l := range ls {
			st, ok := l.(network.SoftTarget)
			if !ok || st.Denom != l0.Denom {
				return nil, fmt.Errorf("sensitivity: mini-batch losses %T and %T do not concatenate", l0, l)
			}
			probs[i] = st.Probs
		}
		return network.SoftTarget{Probs: concatBatches(probs), Denom: l0.Denom}, nil
	}
	return nil, fmt.Errorf("sensitivity: no concatenated form of the loss %T", ls[0])
}
