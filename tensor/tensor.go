// Package tensor holds the dense float64 n-dimensional array shared by the
// ONNX reader, the datasets and the network engine.
//
// A Tensor is a shape and a row-major (C order) slice of float64 values.
// Invariant: len(Data) == Size(Shape) for every Tensor built by this package.
// Views made by Reshape share Data with their source.
package tensor

import (
	"fmt"

	"gonum.org/v1/gonum/blas/blas64"
)

// Tensor is a dense row-major n-dimensional array of float64.
type Tensor struct {
	Shape []int
	Data  []float64
}

// Size returns the number of elements of a tensor of the given shape.
// The empty shape is a scalar of size 1.
func Size(shape []int) int {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return n
}

// New returns a zero tensor of the given shape.
func New(shape ...int) *Tensor {
	return &Tensor{Shape: append([]int(nil), shape...), Data: make([]float64, Size(shape))}
}

// FromData wraps data (not copied) with the given shape. It panics if the
// sizes differ: that is a programming error, not bad input.
func FromData(data []float64, shape ...int) *Tensor {
	if Size(shape) != len(data) {
		panic(fmt.Sprintf("tensor: %d values for shape %v", len(data), shape))
	}
	return &Tensor{Shape: append([]int(nil), shape...), Data: data}
}

// Size returns the number of elements.
func (t *Tensor) Size() int { return len(t.Data) }

// Rank returns the number of dimensions.
func (t *Tensor) Rank() int { return len(t.Shape) }

// Clone returns a deep copy.
func (t *Tensor) Clone() *Tensor {
	return &Tensor{Shape: append([]int(nil), t.Shape...), Data: append([]float64(nil), t.Data...)}
}

// Reshape returns a view of t with another shape of the same size.
func (t *Tensor) Reshape(shape ...int) *Tensor {
	return FromData(t.Data, shape...)
}

// Matrix returns t's data as a rows×cols row-major blas64.General view.
func (t *Tensor) Matrix(rows, cols int) blas64.General {
	if rows*cols != len(t.Data) {
		panic(fmt.Sprintf("tensor: matrix %dx%d of %d values", rows, cols, len(t.Data)))
	}
	return blas64.General{Rows: rows, Cols: cols, Stride: cols, Data: t.Data}
}

// SameShape reports whether a and b have equal shapes.
func SameShape(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// Strides returns the row-major strides of shape.
func Strides(shape []int) []int {
	s := make([]int, len(shape))
	acc := 1
	for i := len(shape) - 1; i >= 0; i-- {
		s[i] = acc
		acc *= shape[i]
	}
	return s
}

// String gives the shape, for messages.
func (t *Tensor) String() string { return fmt.Sprintf("tensor%v", t.Shape) }
