package network

import "mpsearch/tensor"

// countValues sets valuesPerSample from the batch-1 shapes of the build's
// probe: the elements of every output of every node the network runs.
func (net *Network) countValues(shapes map[string][]int) {
	var n int64
	for _, nd := range net.nodes {
		for _, v := range nd.outs {
			if v < 0 {
				continue
			}
			if s, ok := shapes[net.valName[v]]; ok {
				n += int64(tensor.Size(s))
			}
		}
	}
	net.valuesPerSample = n
}

// ValuesPerSample is the number of values the network's nodes compute for
// one sample (the elements of every node output, batch axis 1), from the
// build's probe pass; 0 when the model was built without one. Beside the
// layers' multiply-adds it is the other term of a pass's work: on the
// ImageNet CNNs most of a float pass's time outside the matrix products
// is spent writing and reading these values (bias, activations,
// depthwise convolutions, pooling, residual Adds).
func (net *Network) ValuesPerSample() int64 { return net.valuesPerSample }
