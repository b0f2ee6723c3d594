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
// mini-batches (the last group may hold fewer), with the group's loss
// (from losses, one per mini-batch: fisherLosses), on
// up to o.threads workers; f must only write to per-group storage. With
// g = 1 the groups are the mini-batches, with their cached passes.
func (o *Oracle) fisherBatches(ctx context.Context, g int, losses []network.Loss, f func(i int, p *network.Pass, loss network.Loss) error) error {
	if g <= 1 {
		return o.forEachBatch(ctx, func(b int, p *network.Pass) error { return f(b, p, losses[b]) })
	}
	groups := (len(o.batches) + g - 1) / g
	return o.parallelN(ctx, groups, func(i int) error {
		lo, hi := i*g, min(len(o.batches), (i+1)*g)
		x := concatBatches(o.batches[lo:hi])
		loss, err := concatLoss(losses[lo:hi])
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

// fisherLosses are the losses whose per-sample gradients the fisher metric
// squares, one per mini-batch. With labels they are the oracle's
// cross-entropies. Under LossKL the oracle's loss is the KL divergence
// from the float model's own outputs, whose gradient at the float model is
// zero for every sample (Infer and Forward compute the same logits), so
// its empirical Fisher is 0 and ranks nothing. There the metric is the
// Fisher information itself, E_{y~p(x)}[(∇ log p(y|x)·ΔW)²], which is also
// the KL loss's Hessian at the float model: each sample's label is drawn
// once from the float model's output distribution (sampledLabels), and the
// loss is the cross-entropy with those labels.
func (o *Oracle) fisherLosses(seed uint64) []network.Loss {
	out := make([]network.Loss, len(o.losses))
	first := 0
	for b, l := range o.losses {
		out[b] = l
		if st, ok := l.(network.SoftTarget); ok {
			out[b] = network.CrossEntropy{Labels: sampledLabels(st.Probs, first, seed), Denom: st.Denom}
		}
		first += o.batches[b].Shape[0]
	}
	return out
}

// sampledLabels draws one class per row of probs ([N, classes]; row i is
// sample first+i of the data set) from that row's distribution, by the
// inverse of its cumulative sum at a uniform value that depends on the
// seed and the sample's index only: the same labels for any batching and
// thread count.
func sampledLabels(probs *tensor.Tensor, first int, seed uint64) []int {
	n, c := probs.Shape[0], probs.Shape[1]
	labels := make([]int, n)
	for i := range labels {
		u := float64(splitmix64(seed^splitmix64(uint64(first+i)))>>11) / (1 << 53)
		row := probs.Data[i*c : (i+1)*c]
		labels[i] = c - 1 // when rounding leaves the sum below u
		cum := 0.0
		for j, p := range row {
			if cum += p; u < cum {
				labels[i] = j
				break
			}
		}
	}
	return labels
}

// splitmix64 is Steele, Lea and Flood's SplitMix64 finalizer: a bijection
// of 64-bit words whose outputs pass as independent uniform bits.
func splitmix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}
