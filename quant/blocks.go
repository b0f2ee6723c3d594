package quant

import "fmt"

// BlockOrder returns an order of the matrix view's columns (ToMatrix) in
// which the blocks of ONNX blocked quantization (DequantizeLinear with
// block_size B along the weight's input axis) are consecutive groups of
// groupSize columns: GPTQ or QuantizeMatrix with that group size on the
// matrix with its columns in that order (PermuteColumns) quantize exactly
// the blocks an export can store, and their Scales, row by row, are
// DequantizeLinear's scale tensor in the weight's layout.
//
// A Conv weight [M, C, kh, kw] (channel axis 0, rank > 2) is blocked
// along axis 1, so a block is B channels at one kernel tap t = (i, j) and
// its scale tensor is [M, C/B, kh, kw]: the order is block k, then tap t,
// then channel c = k·B + b within the block, and B must divide C (B >= C
// is one block of all C channels per tap). A matrix weight is blocked
// along its input axis, whose blocks are already consecutive columns: the
// order is the identity and groupSize is B (the last block may be short).
func BlockOrder(shape []int, axis, block int) (order []int, groupSize int, err error) {
	if block < 1 || axis < 0 || axis >= len(shape) {
		return nil, 0, fmt.Errorf("quant: block size %d on axis %d of a %v weight; want a block size >= 1", block, axis, shape)
	}
	ch, inner := channelLayout(shape, axis)
	cols := tensorSize(shape) / max(ch, 1)
	order = make([]int, cols)
	if len(shape) <= 2 {
		for i := range order {
			order[i] = i
		}
		return order, min(block, cols), nil
	}
	if axis != 0 {
		return nil, 0, fmt.Errorf("quant: a rank-%d weight %v with its channels on axis %d; want a Conv weight (channels on axis 0)", len(shape), shape, axis)
	}
	c, taps := shape[1], inner/shape[1]
	if block >= c {
		block = c
	}
	if c%block != 0 {
		return nil, 0, fmt.Errorf("quant: block size %d does not divide the %d input channels of a %v Conv weight; want a divisor of %d", block, c, shape, c)
	}
	for k := 0; k < c/block; k++ {
		for t := 0; t < taps; t++ {
			for b := 0; b < block; b++ {
				order[(k*taps+t)*block+b] = (k*block+b)*taps + t
			}
		}
	}
	return order, block, nil
}

func tensorSize(shape []int) int {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return n
}

// PermuteColumns returns the [rows, cols] matrix m with its column k taken
// from column order[k]; InverseOrder undoes it.
func PermuteColumns(m []float64, rows, cols int, order []int) []float64 {
	out := make([]float64, len(m))
	for r := 0; r < rows; r++ {
		for k, c := range order {
			out[r*cols+k] = m[r*cols+c]
		}
	}
	return out
}

// InverseOrder returns the permutation that undoes order.
func InverseOrder(order []int) []int {
	inv := make([]int, len(order))
	for k, c := range order {
		inv[c] = k
	}
	return inv
}

// permuteSym returns the symmetric cols×cols h with rows and columns in
// the given order.
func permuteSym(h []float64, cols int, order []int) []float64 {
	out := make([]float64, len(h))
	for i, a := range order {
		for j, b := range order {
			out[i*cols+j] = h[a*cols+b]
		}
	}
	return out
}
