package quant

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas64"
	"gonum.org/v1/gonum/lapack/lapack64"
)

// ErrHessian is returned when the damped Hessian of a layer's inputs is
// not positive definite (or not finite).
var ErrHessian = errors.New("layer-input Hessian not positive definite")

// Defaults of GPTQOptions (Frantar et al. 2022, section 4 and their code).
const (
	DefaultDamp      = 0.01 // damping: 1% of the mean diagonal of H
	DefaultBlockSize = 128  // columns per lazy batch
)

// GPTQOptions configures GPTQ.
type GPTQOptions struct {
	Bits      int  // 1..8
	GroupSize int  // columns per scale group; 0: one scale per row (per channel)
	MSE       bool // choose each scale by the clipping search instead of max|w|
	// Damp is the damping added to H's diagonal as a fraction of its
	// mean diagonal; 0 means DefaultDamp.
	Damp float64
	// BlockSize is the number of columns per lazy batch; 0 means
	// DefaultBlockSize. It changes only the order of floating-point
	// operations, never the algorithm.
	BlockSize int
	// ActOrder quantizes columns in decreasing order of H's diagonal
	// ("act-order"). Scales are then computed up front from the original
	// weights, group by group in the original column order ("static
	// groups"), so that the groups stay contiguous for export.
	ActOrder bool
	// StaticGroups takes every group's scales up front from the original
	// weights (implied by ActOrder), instead of from the group's weights as
	// updated when its first column is reached.
	StaticGroups bool
	// RoundScale, when set with static scales (per channel, ActOrder or
	// StaticGroups), rounds every scale before any column is rounded, so
	// the codes are chosen at the scales as stored (RoundFP16 for blocked
	// codes). It must return a positive value for a positive one.
	RoundScale func(float64) float64
}

// GPTQ quantizes the [rows, cols] row-major weight matrix w given H, the
// cols×cols symmetric matrix ∑ x xᵀ of the layer's input vectors x (any
// positive multiple: GPTQ is invariant to H's scale). Columns are rounded
// one at a time (roundCode at the row's scale) and the rounding error of
// each is compensated on the columns not yet rounded through the
// Cholesky factor of H⁻¹ (Frantar et al. 2022, Algorithm 1), in lazy
// batches of BlockSize columns.
//
// H's diagonal entries that are 0 (inputs never active) are set to the
// mean of the others before damping (Damp times that mean); such columns
// are decoupled from the others and rounded to nearest. (The authors'
// code sets them to 1, which makes the damping depend on H's scale.) Scales: per channel (GroupSize 0) from the original row;
// per group, by default, from the group's weights at the moment its
// first column is reached, as the authors' code does (already updated by
// the compensation of earlier columns), with ActOrder or StaticGroups
// from the original weights. At one bit the codes are signs and the
// scales mean|w|. w and h are not modified.
func GPTQ(w []float64, rows, cols int, h []float64, opt GPTQOptions) (*GroupQuant, error) {
	gs, err := checkMatrix(w, rows, cols, opt.Bits, opt.GroupSize)
	if err != nil {
		return nil, err
	}
	if len(h) != cols*cols {
		return nil, fmt.Errorf("quant: Hessian of %d values for %d weight columns; want %d", len(h), cols, cols*cols)
	}
	if opt.Damp < 0 || opt.BlockSize < 0 {
		return nil, fmt.Errorf("quant: damping %g and block size %d; want values >= 0", opt.Damp, opt.BlockSize)
	}
	perm := columnOrder(h, cols, opt.ActOrder)
	u, err := invCholesky(h, cols, perm, opt.Damp)
	if err != nil {
		return nil, err
	}
	return gptqFactored(w, rows, cols, gs, u, perm, opt), nil
}

// gptqFactored is GPTQ given the upper factor u of the damped H⁻¹ with
// rows and columns in the order perm (invCholesky) and the group size gs
// (checkMatrix): the factor depends on H, the damping and the order only,
// so one factor serves every bit width of a layer.
func gptqFactored(w []float64, rows, cols, gs int, u []float64, perm []int, opt GPTQOptions) *GroupQuant {
	g := newGroupQuant(rows, cols, opt.Bits, gs)
	// Per-channel scales and static groups: every scale from the original
	// weights, before any compensation.
	static := opt.ActOrder || opt.StaticGroups || gs == cols
	if static {
		for r := 0; r < rows; r++ {
			setScales(g, r, 0, cols, w[r*cols:(r+1)*cols], opt.MSE)
		}
		if opt.RoundScale != nil {
			for i, s := range g.Scales {
				g.Scales[i] = opt.RoundScale(s)
			}
		}
	}
	// wp: the weights in processing order, updated in place.
	wp := make([]float64, len(w))
	for r := 0; r < rows; r++ {
		for i, c := range perm {
			wp[r*cols+i] = w[r*cols+c]
		}
	}
	b := blockSize(opt.BlockSize, gs, static)
	gptqBlocks(g, wp, u, perm, b, static, opt.MSE)
	return g
}

// blockSize returns the lazy batch size: requested (or the default), made
// to fit the groups whose scales are computed during the pass: a multiple
// of the group size when groups are smaller (groups never straddle a
// batch), a divisor of it when larger (every group starts a batch), so
// that each group's scales see its fully updated weights.
func blockSize(b, gs int, static bool) int {
	if b == 0 {
		b = DefaultBlockSize
	}
	if static {
		return b
	}
	if gs < b {
		return b / gs * gs
	}
	for gs%b != 0 { // the largest divisor of gs not above b
		b--
	}
	return b
}

// columnOrder is the identity or, for act-order, the columns by
// decreasing diagonal of H (ties by index, so the order is reproducible).
func columnOrder(h []float64, cols int, actOrder bool) []int {
	perm := make([]int, cols)
	for i := range perm {
		perm[i] = i
	}
	if actOrder {
		sort.SliceStable(perm, func(a, b int) bool { return h[perm[a]*cols+perm[a]] > h[perm[b]*cols+perm[b]] })
	}
	return perm
}

// invCholesky returns the upper Cholesky factor U (cols×cols row-major,
// UᵀU = H⁻¹; entries below the diagonal are undefined) of the damped H
// with rows and columns in the order perm. With J the reversal of the
// order and JHJ = MMᵀ (M lower), H⁻¹ = (JM⁻¹J)ᵀ(JM⁻¹J) and JM⁻¹J is upper
// with a positive diagonal: U is one Cholesky factorization and one
// triangular inverse (LAPACK dpotrf, dtrtri), without forming H⁻¹.
func invCholesky(h []float64, cols int, perm []int, damp float64) ([]float64, error) {
	if damp == 0 {
		damp = DefaultDamp
	}
	n := cols
	diag := make([]float64, n)
	mean, live := 0.0, 0
	for i, a := range perm {
		d := h[a*n+a]
		if d < 0 || math.IsNaN(d) || math.IsInf(d, 0) {
			return nil, fmt.Errorf("quant: Hessian diagonal entry %d is %v: %w", a, d, ErrHessian)
		}
		if d > 0 {
			mean += d
			live++
		}
		diag[i] = d
	}
	if live == 0 { // no input ever active: round to nearest (H = I)
		mean, live = 1, 1
	}
	mean /= float64(live)
	for i, d := range diag {
		if d == 0 { // a dead input: decoupled, at the live inputs' scale
			diag[i] = mean
		}
	}
	// m holds JHJ: entry (i, j) is H at processing positions n-1-i, n-1-j
	// (lower triangle only).
	m := make([]float64, n*n)
	for i := 0; i < n; i++ {
		a := perm[n-1-i]
		for j := 0; j < i; j++ {
			m[i*n+j] = h[a*n+perm[n-1-j]]
		}
		m[i*n+i] = diag[n-1-i] + damp*mean
	}
	t, ok := lapack64.Potrf(blas64.Symmetric{Uplo: blas.Lower, N: n, Stride: n, Data: m})
	if !ok || !lapack64.Trtri(t) {
		return nil, fmt.Errorf("quant: %d×%d Hessian with damping %g: %w (raise the damping)", n, n, damp, ErrHessian)
	}
	slices.Reverse(m) // entry (i, j) <- (n-1-i, n-1-j): JM⁻¹J
	return m, nil
}

// setScales sets row r's scales of the groups starting in [lo, hi) from
// v, the row's weights of columns [lo, ...) in the original order.
func setScales(g *GroupQuant, r, lo, hi int, v []float64, mse bool) {
	ng := g.Groups()
	for c := lo; c < hi; c += g.GroupSize {
		end := min(c+g.GroupSize, g.Cols) - lo
		g.Scales[r*ng+c/g.GroupSize] = chooseScale(v[c-lo:end], g.Bits, mse)
	}
}

// gptqBlocks runs the column loop over wp (weights in processing order)
// with the upper factor u, filling g's codes (and its scales unless
// static) in the original column order.
func gptqBlocks(g *GroupQuant, wp, u []float64, perm []int, b int, static, mse bool) {
	rows, cols, gs, ng := g.Rows, g.Cols, g.GroupSize, g.Groups()
	errs := make([]float64, rows*b) // scaled errors of the batch, [rows, b]
	for i1 := 0; i1 < cols; i1 += b {
		i2 := min(i1+b, cols)
		nb := i2 - i1
		for i := i1; i < i2; i++ {
			if !static && i%gs == 0 { // no act-order: processing order is the original one
				for r := 0; r < rows; r++ {
					setScales(g, r, i, i+1, wp[r*cols+i:(r+1)*cols], mse)
				}
			}
			oc := perm[i]
			d := u[i*cols+i]
			urow := u[i*cols+i+1 : i*cols+i2]
			for r := 0; r < rows; r++ {
				row := wp[r*cols : (r+1)*cols]
				s := g.Scales[r*ng+oc/gs]
				q := roundCode(row[i], s, g.Bits)
				g.Q[r*cols+oc] = q
				e := (row[i] - float64(q)*s) / d
				errs[r*b+i-i1] = e
				rest := row[i+1 : i2]
				for k, x := range urow {
					rest[k] -= e * x
				}
			}
		}
		if i2 < cols {
			// Lazy update of the later columns: W[:, i2:] -= E·U[i1:i2, i2:].
			blas64.Gemm(blas.NoTrans, blas.NoTrans, -1,
				blas64.General{Rows: rows, Cols: nb, Stride: b, Data: errs},
				blas64.General{Rows: nb, Cols: cols - i2, Stride: cols, Data: u[i1*cols+i2:]},
				1, blas64.General{Rows: rows, Cols: cols - i2, Stride: cols, Data: wp[i2:]})
		}
	}
}
