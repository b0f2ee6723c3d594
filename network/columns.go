package network

import (
	"fmt"

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
	p := c.pass(in, &geo)
	cols = make([]float64, p.ckAll*p.np)
	im2col(x.Data, p.n, p.c, &geo, cols)
	return cols, c.group, nil
}
