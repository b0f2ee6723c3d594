package network

import (
	"fmt"
	"sync"

	"mpsearch/tensor"
)

// ConvColumns returns the im2col columns of x, a batch of the input of
// Conv layer li (its first input, as a Hook sees it): a [C*kh*kw, N*OH*OW]
// row-major matrix whose row (c, i, j) and column (sample, oh, ow) hold the
// input value the kernel tap (i, j) of channel c multiplies for that output
// position (zero in the padding), and the layer's group count. Conv group g
// reads rows [g*C/group*kh*kw, (g+1)*C/group*kh*kw), in the order of the
// weight's [C/group, kh, kw] axes. Errors wrap ErrShape for an x that does
// not fit the layer and ErrUnsupported for a layer that is not a Conv.
func (net *Network) ConvColumns(li int, x *tensor.Tensor) (cols []float64, groups int, err error) {
	return net.ConvColumnsInto(li, x, nil, 1)
}

// ConvColumnsInto is ConvColumns writing into buf when its capacity is
// large enough (cols is then buf[:size], every entry overwritten) and
// splitting the input channels between up to workers goroutines. The
// columns are copies of x's values, so they are the same whatever workers.
func (net *Network) ConvColumnsInto(li int, x *tensor.Tensor, buf []float64, workers int) (cols []float64, groups int, err error) {
	if li < 0 || li >= len(net.layers) {
		return nil, 0, fmt.Errorf("network: layer %d of %d: %w", li, len(net.layers), ErrShape)
	}
	l := net.layers[li]
	c, ok := net.nodes[l.node].single.(*conv)
	if !ok {
		return nil, 0, fmt.Errorf("network: layer %q is a %s, not a Conv: %w", l.Node, l.Op, ErrUnsupported)
	}
	in := []*tensor.Tensor{x, net.params[l.Weight].Value}
	geo, err := c.dims(in)
	if err != nil {
		return nil, 0, err
	}
	n, ch := x.Shape[0], x.Shape[1]
	size := ch * geo.kh * geo.kw * n * geo.oh * geo.ow
	if cap(buf) >= size {
		cols = buf[:size]
	} else {
		cols = make([]float64, size)
	}
	workers = max(1, min(workers, ch))
	if workers == 1 {
		im2col(x.Data, n, ch, &geo, cols)
		return cols, c.group, nil
	}
	var wg sync.WaitGroup
	for w := range workers {
		c0, c1 := w*ch/workers, (w+1)*ch/workers
		wg.Add(1)
		go func() {
			defer wg.Done()
			im2colChannels(x.Data, n, ch, c0, c1, &geo, cols)
		}()
	}
	wg.Wait()
	return cols, c.group, nil
}
