package onnx

import "mpsearch/tensor"

// Clone copies g deeply enough that rewriting the copy never changes g:
// value infos, nodes (with their input, output and attribute maps) and the
// initializer maps. Tensors are shared: replace them, never modify them.
func (g *Graph) Clone() *Graph {
	c := *g
	c.Inputs = append([]ValueInfo(nil), g.Inputs...)
	c.Outputs = append([]ValueInfo(nil), g.Outputs...)
	c.Nodes = make([]Node, len(g.Nodes))
	for i, n := range g.Nodes {
		n.Inputs = append([]string(nil), n.Inputs...)
		n.Outputs = append([]string(nil), n.Outputs...)
		attrs := make(map[string]Attribute, len(n.Attrs))
		for k, v := range n.Attrs {
			attrs[k] = v
		}
		n.Attrs = attrs
		c.Nodes[i] = n
	}
	c.Initializers = make(map[string]*tensor.Tensor, len(g.Initializers))
	for k, v := range g.Initializers {
		c.Initializers[k] = v
	}
	c.InitTypes = make(map[string]DataType, len(g.InitTypes))
	for k, v := range g.InitTypes {
		c.InitTypes[k] = v
	}
	c.InitOrder = append([]string(nil), g.InitOrder...)
	return &c
}
