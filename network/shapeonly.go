package network

import "mpsearch/tensor"

// shapeOnly is implemented by the dense ops (Conv, Gemm, MatMul) whose
// output shape follows cheaply from their inputs' shapes. Build's second
// probe pass uses it instead of computing them: that pass's data values
// are never read, only their shapes (doc.go), so a zero tensor of the
// right shape stands for the output.
type shapeOnly interface {
	probeShape(in []*tensor.Tensor) ([]int, error)
}

func (c *conv) probeShape(in []*tensor.Tensor) ([]int, error) {
	geo, err := c.dims(in)
	if err != nil {
		return nil, err
	}
	return geo.outShape(in[0].Shape[0], in[1].Shape[0], in[0].Rank()), nil
}

func (g *gemmOp) probeShape(in []*tensor.Tensor) ([]int, error) {
	d, err := g.dims(in)
	return []int{d.m, d.n}, err
}

func (op *matMul) probeShape(in []*tensor.Tensor) ([]int, error) {
	p, err := op.plan(in[0].Shape, in[1].Shape)
	return p.outShape, err
}
