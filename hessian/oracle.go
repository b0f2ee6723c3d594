package hessian

import (
	"context"
	"errors"
	"fmt"

	"gonum.org/v1/gonum/mat"
)

// Block names a contiguous range of the parameter vector, typically one
// layer's weight tensor. Estimates are reported per block.
type Block struct {
	Name   string
	Offset int // index of the block's first parameter
	Len    int // number of parameters, > 0
}

// Oracle supplies exact Hessian-vector products. It is the only view of the
// model the estimators in this package have.
type Oracle interface {
	// Dim returns the total number of parameters.
	Dim() int
	// Blocks partitions (part of) the parameter vector into named blocks:
	// disjoint, sorted by Offset, not necessarily covering every parameter.
	Blocks() []Block
	// HVP computes H v_k for k directions at once. v holds k*Dim() values,
	// direction j at v[j*Dim():(j+1)*Dim()]; hv has the same shape and is
	// overwritten. HVP must not retain v or hv.
	HVP(ctx context.Context, v, hv []float64, k int) error
}

// ErrBlocks reports an invalid block partition.
var ErrBlocks = errors.New("invalid block partition")

// ErrOptions reports invalid estimator options.
var ErrOptions = errors.New("invalid options")

// ValidateBlocks checks that blocks are non-empty, disjoint, sorted by offset
// and inside [0, dim). At least one block is required.
func ValidateBlocks(dim int, blocks []Block) error {
	if len(blocks) == 0 {
		return fmt.Errorf("hessian: no blocks: give the oracle at least one parameter block: %w", ErrBlocks)
	}
	end := 0
	for i, b := range blocks {
		switch {
		case b.Len <= 0:
			return fmt.Errorf("hessian: block %d (%q) has length %d; blocks must be non-empty: %w", i, b.Name, b.Len, ErrBlocks)
		case b.Offset < end:
			return fmt.Errorf("hessian: block %d (%q) at offset %d overlaps or precedes the previous block ending at %d; sort blocks by offset and keep them disjoint: %w", i, b.Name, b.Offset, end, ErrBlocks)
		case b.Offset+b.Len > dim:
			return fmt.Errorf("hessian: block %d (%q) [%d, %d) exceeds the parameter dimension %d: %w", i, b.Name, b.Offset, b.Offset+b.Len, dim, ErrBlocks)
		}
		end = b.Offset + b.Len
	}
	return nil
}

// MatrixOracle is an Oracle backed by an explicit symmetric matrix. It is
// meant for tests, examples and small problems.
type MatrixOracle struct {
	a      mat.Symmetric
	dense  *mat.Dense // a copy of a: general matrix products are faster than symmetric ones in gonum
	blocks []Block
}

// NewMatrixOracle returns an oracle for the symmetric matrix a with the given
// blocks, which are copied and validated. The oracle keeps a dense copy of a.
func NewMatrixOracle(a mat.Symmetric, blocks []Block) (*MatrixOracle, error) {
	if a == nil {
		return nil, errors.New("hessian: NewMatrixOracle: nil matrix; pass a symmetric matrix")
	}
	n := a.SymmetricDim()
	if err := ValidateBlocks(n, blocks); err != nil {
		return nil, err
	}
	return &MatrixOracle{a: a, dense: mat.DenseCopyOf(a), blocks: append([]Block(nil), blocks...)}, nil
}

// Dim returns the order of the matrix.
func (m *MatrixOracle) Dim() int { return m.a.SymmetricDim() }

// Blocks returns a copy of the oracle's blocks.
func (m *MatrixOracle) Blocks() []Block { return append([]Block(nil), m.blocks...) }

// HVP computes A v_j for each of the k directions as one matrix-matrix
// product (V A, which equals (A V^T)^T because A is symmetric).
func (m *MatrixOracle) HVP(ctx context.Context, v, hv []float64, k int) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	n := m.Dim()
	if k <= 0 || len(v) != k*n || len(hv) != k*n {
		return fmt.Errorf("hessian: MatrixOracle.HVP: got len(v)=%d, len(hv)=%d for k=%d directions of dimension %d; want both %d",
			len(v), len(hv), k, n, k*n)
	}
	vm := mat.NewDense(k, n, v)
	hm := mat.NewDense(k, n, hv)
	hm.Mul(vm, m.dense)
	return nil
}
