//go:build cgo

package ilp

/*
#cgo CFLAGS: -I/usr/include/lpsolve
#cgo LDFLAGS: -llpsolve55 -lm -ldl -lcolamd
#include <stdlib.h>
#include "lp_lib.h"

static int ilp_abort(lprec *lp, void *flag) { return *(volatile int *)flag; }
static void ilp_set_abort(lprec *lp, int *flag) { put_abortfunc(lp, ilp_abort, flag); }
*/
import "C"

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/draffensperger/golp"
)

// LPSolve solves the 0-1 formulation with lp_solve 5.5 through golp: one
// binary x_{i,b} per decision and bit width, an equality row sum_b x_{i,b} = 1
// per decision, a row per budget. Unless Plain is set it is given what helps
// it: the preprocessed problem (ties merged, fixed layers as constants,
// dominated options removed), only the columns whose reduced cost at the
// Lagrangian multipliers is below the gap between the greedy incumbent and
// the bound (which is how the incumbent bounds its search), and rows and
// objective scaled by powers of two to magnitudes near 1.
type LPSolve struct {
	// TimeLimit, if positive, bounds each Solve; the best configuration
	// found by then is returned with its proven gap. (The end of the
	// caller's context is an interruption instead: an error, no result.)
	TimeLimit time.Duration
	// Plain solves the formulation of the original problem as it is: tied
	// layers as equality rows, fixed layers as variable bounds, default
	// lp_solve settings. For cross-checks and for measuring what the help
	// is worth.
	Plain bool
}

// golpPtr returns lp_solve's handle inside a golp.LP, which golp does not
// export; golp.LP is a struct holding only that pointer.
func golpPtr(l *golp.LP) *C.lprec {
	return *(**C.lprec)(unsafe.Pointer(l))
}

// ErrUnavailable is wrapped by the error LPSolve returns when the lp_solve
// binding cannot be used.
var ErrUnavailable = errors.New("ilp: lp_solve unavailable")

// layoutErr is golp's layout check, done once: golpPtr reads the handle
// out of a golp.LP, which is only right if the struct holds just that
// pointer. A mismatch makes LPSolve return an error, never a panic.
var layoutErr = checkLayout(unsafe.Sizeof(golp.LP{}), unsafe.Sizeof(uintptr(0)))

// checkLayout compares golp.LP's size with a pointer's.
func checkLayout(lpSize, ptrSize uintptr) error {
	if lpSize != ptrSize {
		return fmt.Errorf("golp.LP is %d bytes, not one %d-byte pointer (github.com/draffensperger/golp changed; use --solver go): %w", lpSize, ptrSize, ErrUnavailable)
	}
	return nil
}

// Solve implements Solver.
func (s *LPSolve) Solve(ctx context.Context, p *Problem) (*Solution, error) {
	return s.SolveHint(ctx, p, nil)
}

// SolveHint implements HintedSolver: a feasible hint tightens the initial bound.
func (s *LPSolve) SolveHint(ctx context.Context, p *Problem, hint *Solution) (*Solution, error) {
	if layoutErr != nil {
		return nil, layoutErr
	}
	r, err := reduce(p)
	if err != nil {
		return nil, err
	}
	if err := r.checkFeasible(); err != nil {
		return nil, err
	}
	caller := ctx
	if s.TimeLimit > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.TimeLimit)
		defer cancel()
	}
	var sol *Solution
	if s.Plain {
		sol, err = solvePlain(ctx, p, r)
	} else {
		sol, err = s.solveHelped(ctx, r, hint)
	}
	if ierr := interrupted(caller); ierr != nil {
		return nil, ierr
	}
	return sol, err
}

// solveHelped solves the preprocessed problem r with the help described on
// LPSolve.
func (s *LPSolve) solveHelped(ctx context.Context, r *reduced, hint *Solution) (*Solution, error) {
	q := newMCKP(r)
	st := newSearch(q, r.constObj, r.contract(hint), OptimalityTol)
	if q.n == 0 || q.m == 0 || st.ub-st.lb <= st.tol() {
		if st.best == nil {
			return nil, r.infeasible(true)
		}
		return st.solution(r, st.ub, false), nil
	}
	// Columns: the options that can still beat the incumbent.
	gap := st.ub - st.lb - st.tol()
	var cols []int // global option index per column
	first := make([]int, q.n+1)
	for i := 0; i < q.n; i++ {
		first[i] = len(cols)
		for j := q.off[i]; j < q.off[i+1]; j++ {
			if st.rc[j] < gap {
				cols = append(cols, j)
			}
		}
	}
	first[q.n] = len(cols)
	// Objective scaled so that the incumbent is about 1, to sit well
	// inside lp_solve's absolute tolerances.
	objScale := 1.0
	if st.ub > 0 && !math.IsInf(st.ub, 1) {
		objScale = math.Ldexp(1, -math.Ilogb(st.ub))
	}
	lp := golp.NewLP(0, len(cols))
	lp.SetVerboseLevel(golp.NEUTRAL)
	for i := 0; i < q.n; i++ {
		row := make([]golp.Entry, 0, first[i+1]-first[i])
		for c := first[i]; c < first[i+1]; c++ {
			row = append(row, golp.Entry{Col: c, Val: 1})
		}
		if err := lp.AddConstraintSparse(row, golp.EQ, 1); err != nil {
			return nil, fmt.Errorf("ilp: lp_solve: %w", err)
		}
	}
	for k := 0; k < q.m; k++ {
		row := make([]golp.Entry, len(cols))
		for c, j := range cols {
			row[c] = golp.Entry{Col: c, Val: q.cost[j*q.m+k]}
		}
		if err := lp.AddConstraintSparse(row, golp.LE, q.limit[k]); err != nil {
			return nil, fmt.Errorf("ilp: lp_solve: %w", err)
		}
	}
	obj := make([]float64, len(cols))
	for c, j := range cols {
		obj[c] = q.omega[j] * objScale
		lp.SetBinary(c, true)
	}
	lp.SetObjFn(obj)
	h := golpPtr(lp)
	// lp_solve's default node selection and ceiling branch were the
	// fastest on the benchmark table; depth-first mode, an objective row
	// bounding the search by the incumbent, and set_obj_bound (which ends
	// some runs in ACCURACYERROR) were slower or unreliable.
	C.set_mip_gap(h, C.TRUE, 1e-11)
	C.set_mip_gap(h, C.FALSE, C.REAL(OptimalityTol))
	x, nodes, status, err := runLP(ctx, lp, h)
	if err != nil {
		return nil, err
	}
	if x != nil {
		choice := make([]int, q.n)
		for i := 0; i < q.n; i++ {
			best := first[i]
			for c := first[i]; c < first[i+1]; c++ {
				if x[c] > x[best] {
					best = c
				}
			}
			choice[i] = cols[best]
		}
		cost := make([]float64, q.m)
		if v := q.eval(choice, cost); q.fits(cost) && v < st.ub {
			st.ub, st.best = v, choice
		}
	}
	st.nodes = nodes
	if st.best == nil {
		if status == golp.INFEASIBLE {
			return nil, r.infeasible(true)
		}
		return nil, fmt.Errorf("ilp: lp_solve found no configuration meeting the budgets (%v): %w", status, ctx.Err())
	}
	switch status {
	case golp.OPTIMAL, golp.INFEASIBLE:
		// INFEASIBLE: no configuration of the kept columns meets the
		// budgets, and every other one is worse than the incumbent.
		return st.solution(r, st.ub, false), nil
	}
	return st.solution(r, st.lb, true), nil
}

// runLP solves lp, aborting when ctx ends. It returns the variables when
// lp_solve found an integer solution.
func runLP(ctx context.Context, lp *golp.LP, h *C.lprec) ([]float64, int, golp.SolutionType, error) {
	flag := (*C.int)(C.calloc(1, C.size_t(unsafe.Sizeof(C.int(0)))))
	defer C.free(unsafe.Pointer(flag))
	C.ilp_set_abort(h, flag)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		select {
		case <-ctx.Done():
			atomic.StoreInt32((*int32)(unsafe.Pointer(flag)), 1)
		case <-stop:
		}
	}()
	status := lp.Solve()
	close(stop)
	<-done
	nodes := int(C.get_total_nodes(h))
	switch status {
	case golp.OPTIMAL, golp.SUBOPTIMAL:
		return lp.Variables(), nodes, status, nil
	case golp.INFEASIBLE, golp.USERABORT, golp.TIMEOUT:
		return nil, nodes, status, nil
	}
	return nil, nodes, status, fmt.Errorf("ilp: lp_solve failed: %v", status)
}

// solvePlain is the formulation of the original problem without help.
func solvePlain(ctx context.Context, p *Problem, r *reduced) (*Solution, error) {
	off := make([]int, len(p.Layers)+1)
	for i, l := range p.Layers {
		off[i+1] = off[i] + len(l.Options)
	}
	nc := off[len(p.Layers)]
	lp := golp.NewLP(0, nc)
	lp.SetVerboseLevel(golp.NEUTRAL)
	add := func(row []golp.Entry, ct golp.ConstraintType, rhs float64) {
		if len(row) > 0 {
			lp.AddConstraintSparse(row, ct, rhs)
		}
	}
	for i, l := range p.Layers {
		row := make([]golp.Entry, 0, len(l.Options))
		for j := range l.Options {
			row = append(row, golp.Entry{Col: off[i] + j, Val: 1})
		}
		add(row, golp.EQ, 1)
	}
	for k, res := range p.Resources {
		if math.IsInf(res.Limit, 1) {
			continue
		}
		var row []golp.Entry
		for i, l := range p.Layers {
			for j, o := range l.Options {
				row = append(row, golp.Entry{Col: off[i] + j, Val: o.Costs[k]})
			}
		}
		add(row, golp.LE, res.Limit)
	}
	index := make(map[string]int, len(p.Layers))
	for i, l := range p.Layers {
		index[l.Name] = i
	}
	for _, tie := range p.Ties {
		a := index[tie[0]]
		for _, name := range tie[1:] {
			b := index[name]
			// x_{a,bits} = x_{b,bits} for every bit width either offers.
			for _, o := range p.Layers[a].Options {
				row := []golp.Entry{{Col: off[a] + optionIndex(&p.Layers[a], o.Bits), Val: 1}}
				if jb := optionIndex(&p.Layers[b], o.Bits); jb >= 0 {
					row = append(row, golp.Entry{Col: off[b] + jb, Val: -1})
				}
				add(row, golp.EQ, 0)
			}
			for jb, o := range p.Layers[b].Options {
				if optionIndex(&p.Layers[a], o.Bits) < 0 {
					add([]golp.Entry{{Col: off[b] + jb, Val: 1}}, golp.EQ, 0)
				}
			}
		}
	}
	obj := make([]float64, nc)
	for i, l := range p.Layers {
		for j, o := range l.Options {
			obj[off[i]+j] = o.Omega
			lp.SetBinary(off[i]+j, true)
			if l.Fixed != 0 && o.Bits != l.Fixed {
				lp.SetBounds(off[i]+j, 0, 0)
			}
		}
	}
	lp.SetObjFn(obj)
	x, nodes, status, err := runLP(ctx, lp, golpPtr(lp))
	if err != nil {
		return nil, err
	}
	if x == nil {
		if status == golp.INFEASIBLE {
			return nil, r.infeasible(true)
		}
		return nil, fmt.Errorf("ilp: lp_solve found no configuration meeting the budgets (%v): %w", status, ctx.Err())
	}
	choice := make([]int, len(p.Layers))
	for i := range p.Layers {
		for j := off[i]; j < off[i+1]; j++ {
			if x[j] > x[off[i]+choice[i]] {
				choice[i] = j - off[i]
			}
		}
	}
	s := p.Evaluate(choice)
	s.Nodes = nodes
	s.Optimal = status == golp.OPTIMAL
	if !s.Optimal && s.Objective > 0 {
		// The Lagrangian bound of the preprocessed problem, for the gap.
		q := newMCKP(r)
		lb := q.dual(make([]float64, q.m), math.Inf(1)) + r.constObj
		s.Gap = math.Max(0, (s.Objective-lb)/s.Objective)
	}
	return s, nil
}
