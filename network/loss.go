package network

import (
	"fmt"
	"math"

	"mpsearch/tensor"
)

// Loss is a scalar function of the network output (logits [N, C]) that the
// engine differentiates to second order.
type Loss interface {
	// Eval returns the loss and its gradient with respect to the logits.
	Eval(logits *tensor.Tensor) (float64, *tensor.Tensor, error)
	// GradTangent returns the tangent of the gradient for K logit tangents
	// t ([K]+logits shape; nil = zero), i.e. the loss Hessian (with respect
	// to the logits) applied to each of them.
	GradTangent(logits, t *tensor.Tensor, k int) *tensor.Tensor
}

// CrossEntropy is the softmax cross-entropy with integer labels, summed over
// the batch and divided by Denom (0 means the batch size, i.e. the mean).
// Setting Denom to the size of a whole data set makes per-batch gradients
// add up to the gradient of the data set's mean loss.
type CrossEntropy struct {
	Labels []int
	Denom  float64
}

// SoftTarget is the cross-entropy against fixed target distributions
// (rows of Probs, [N, C]); up to a constant it is KL(target || softmax),
// the loss used without labels (targets = the float model's own outputs).
type SoftTarget struct {
	Probs *tensor.Tensor
	Denom float64
}

func logitsDims(z *tensor.Tensor) (n, c int, err error) {
	if z.Rank() != 2 {
		return 0, 0, fmt.Errorf("loss: logits of shape %v; want [N, classes]: %w", z.Shape, ErrShape)
	}
	return z.Shape[0], z.Shape[1], nil
}

// softmaxRows writes the row-wise softmax of z into p and returns the
// row-wise log-sum-exp.
func softmaxRows(z, p []float64, n, c int) []float64 {
	lse := make([]float64, n)
	for i := 0; i < n; i++ {
		m, s := softmaxRow(p[i*c:(i+1)*c], z[i*c:(i+1)*c])
		lse[i] = m + math.Log(s)
	}
	return lse
}

func denom(d float64, n int) float64 {
	if d > 0 {
		return d
	}
	return float64(n)
}

// Eval implements Loss.
func (l CrossEntropy) Eval(z *tensor.Tensor) (float64, *tensor.Tensor, error) {
	n, c, err := logitsDims(z)
	if err != nil {
		return 0, nil, err
	}
	if len(l.Labels) != n {
		return 0, nil, fmt.Errorf("loss: %d labels for a batch of %d: %w", len(l.Labels), n, ErrShape)
	}
	g := tensor.New(n, c)
	lse := softmaxRows(z.Data, g.Data, n, c)
	d := denom(l.Denom, n)
	loss := 0.0
	for i, y := range l.Labels {
		if y < 0 || y >= c {
			return 0, nil, fmt.Errorf("loss: label %d of sample %d outside [0, %d)", y, i, c)
		}
		loss += lse[i] - z.Data[i*c+y]
		g.Data[i*c+y] -= 1
	}
	for i := range g.Data {
		g.Data[i] /= d
	}
	return loss / d, g, nil
}

// GradTangent implements Loss: (diag(p) - p p^T) t / Denom per sample.
func (l CrossEntropy) GradTangent(z, t *tensor.Tensor, k int) *tensor.Tensor {
	return softmaxHessTangent(z, t, k, l.Denom)
}

// Eval implements Loss.
func (l SoftTarget) Eval(z *tensor.Tensor) (float64, *tensor.Tensor, error) {
	n, c, err := logitsDims(z)
	if err != nil {
		return 0, nil, err
	}
	if l.Probs == nil || !tensor.SameShape(l.Probs.Shape, z.Shape) {
		return 0, nil, fmt.Errorf("loss: targets of shape %v for logits %v: %w", l.Probs, z.Shape, ErrShape)
	}
	g := tensor.New(n, c)
	lse := softmaxRows(z.Data, g.Data, n, c)
	d := denom(l.Denom, n)
	loss := 0.0
	for i := 0; i < n; i++ {
		for j := 0; j < c; j++ {
			q := l.Probs.Data[i*c+j]
			if q > 0 {
				loss += q * (math.Log(q) - (z.Data[i*c+j] - lse[i]))
			}
			g.Data[i*c+j] -= q
		}
	}
	for i := range g.Data {
		g.Data[i] /= d
	}
	return loss / d, g, nil
}

// GradTangent implements Loss.
func (l SoftTarget) GradTangent(z, t *tensor.Tensor, k int) *tensor.Tensor {
	return softmaxHessTangent(z, t, k, l.Denom)
}

func softmaxHessTangent(z, t *tensor.Tensor, k int, d float64) *tensor.Tensor {
	n, c := z.Shape[0], z.Shape[1]
	out := tensor.New(append([]int{k}, z.Shape...)...)
	if t == nil {
		return out
	}
	p := make([]float64, n*c)
	softmaxRows(z.Data, p, n, c)
	dd := denom(d, n)
	for kk := 0; kk < k; kk++ {
		base := kk * n * c
		for i := 0; i < n; i++ {
			pt := 0.0
			for j := 0; j < c; j++ {
				pt += p[i*c+j] * t.Data[base+i*c+j]
			}
			for j := 0; j < c; j++ {
				out.Data[base+i*c+j] = p[i*c+j] * (t.Data[base+i*c+j] - pt) / dd
			}
		}
	}
	return out
}

// Softmax returns the row-wise softmax of logits [N, C].
func Softmax(z *tensor.Tensor) *tensor.Tensor {
	p := tensor.New(z.Shape...)
	softmaxRows(z.Data, p.Data, z.Shape[0], z.Shape[1])
	return p
}
