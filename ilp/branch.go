package ilp

import (
	"cmp"
	"context"
	"math"
	"slices"
)

// tree is the branch-and-bound state over the core: the groups that keep
// more than one option after reduced-cost fixing. A node's bound is the
// best LP relaxation among surrogate problems, each combining the budgets
// into one, sum_k mu_k cost_k <= sum_k mu_k cap_k, for directions mu around
// the root multipliers (the views). Every feasible configuration meets each
// surrogate budget, so the bounds are valid; for one budget a view's LP is
// the exact LP, and for several the LP is the best surrogate LP over all
// directions, which the views sample. The LP of one budget over convex
// hulls solves greedily: the segments of all hulls by slope, taken until the
// budget runs out, leave at most one group fractional. With several budgets
// a node the views do not prune gets a few subgradient steps on its own
// Lagrangian (refine).
type tree struct {
	q      *mckp
	core   []int     // group index per core index
	kept   [][]int   // options per core index, by reduced cost ascending
	minC   []float64 // per core index and budget: smallest cost among kept
	views  []view    // surrogate budgets; the bound is the best of their LPs
	last   int       // view that last reached the cutoff; tried first
	lam, g []float64 // scratch for refine
	assign []int     // option per core index, -1 if free
	pos    []int     // per core index: LP hull vertex (free groups)
	x      []int     // scratch configuration
	s      nodeState
}

// view is one surrogate budget sum_k mu_k cost_k <= sum_k mu_k cap_k with
// the lower convex hull of each core group's kept options in the plane
// (surrogate cost, omega), and all hull segments by slope descending.
type view struct {
	mu     []float64 // direction: weight per budget
	sur    []float64 // surrogate cost per option
	surCap float64
	hull   [][]int // per core index: hull vertices, cheapest first
	segs   []hullSeg
}

type hullSeg struct {
	slope, dc, dv float64
	c, to         int // core index, hull vertex reached
}

// nodeState holds sums over the assigned groups (obj, cost, and sur per
// view) and over the free ones (minFree: smallest costs; baseS, baseV per
// view: first hull vertices).
type nodeState struct {
	obj               float64
	cost, minFree     []float64
	sur, baseS, baseV []float64
}

func (s nodeState) clone() nodeState {
	c := func(v []float64) []float64 { return append([]float64(nil), v...) }
	return nodeState{s.obj, c(s.cost), c(s.minFree), c(s.sur), c(s.baseS), c(s.baseV)}
}

func (s *nodeState) restore(from nodeState) {
	s.obj = from.obj
	copy(s.cost, from.cost)
	copy(s.minFree, from.minFree)
	copy(s.sur, from.sur)
	copy(s.baseS, from.baseS)
	copy(s.baseV, from.baseV)
}

func (t *tree) set(c, j int) {
	q, m := t.q, t.q.m
	t.assign[c] = j
	t.s.obj += q.omega[j]
	for k := 0; k < m; k++ {
		t.s.cost[k] += q.cost[j*m+k]
		t.s.minFree[k] -= t.minC[c*m+k]
	}
	for v := range t.views {
		w := &t.views[v]
		h0 := w.hull[c][0]
		t.s.sur[v] += w.sur[j]
		t.s.baseS[v] -= w.sur[h0]
		t.s.baseV[v] -= q.omega[h0]
	}
}

// bound returns the node's lower bound on the objective (+Inf if no
// configuration meets the budgets), the view that gave it, and whether that
// bound is the node's exact LP optimum. It stops early once a view reaches
// cutoff, or once a view's LP solution meets every budget: the surrogate LP
// is a relaxation of the node's LP, so a solution of it that is feasible
// for the node's LP is optimal there, and no other view, nor any
// Lagrangian multipliers, can bound higher.
func (t *tree) bound(cutoff float64) (float64, int, bool) {
	for k, c := range t.s.cost {
		if c+t.s.minFree[k] > t.q.cap[k] {
			return math.Inf(1), 0, true
		}
	}
	best, bv := math.Inf(-1), 0
	for n := range t.views {
		v := (t.last + n) % len(t.views)
		b := t.viewBound(v)
		if b > best {
			best, bv = b, v
		}
		if best >= cutoff {
			t.last = v // the view that prunes is likely to prune the next node too
			break
		}
		// Checking costs about as much as a view's LP; when two budgets
		// bind no view's solution is feasible, so check only the first
		// view tried and the root direction.
		if t.q.m > 1 && (n == 0 || v == 0) && t.lpFeasible(v) {
			return b, v, true
		}
	}
	return best, bv, t.q.m <= 1
}

// lpFeasible reports whether view v's LP solution at the current node meets
// every budget (cap, as the views' surrogate budgets do, up to rounding).
func (t *tree) lpFeasible(v int) bool {
	q, m, w := t.q, t.q.m, &t.views[v]
	cost := t.g
	copy(cost, t.s.cost)
	for c, h := range w.hull {
		if t.assign[c] >= 0 {
			continue
		}
		for k := 0; k < m; k++ {
			cost[k] += q.cost[h[0]*m+k]
		}
	}
	room := w.surCap - t.s.sur[v] - t.s.baseS[v]
	for _, sg := range w.segs {
		if t.assign[sg.c] >= 0 {
			continue
		}
		h := w.hull[sg.c]
		a, b := h[sg.to-1], h[sg.to]
		f := 1.0
		if sg.dc > room {
			f = room / sg.dc
		}
		for k := 0; k < m; k++ {
			cost[k] += f * (q.cost[b*m+k] - q.cost[a*m+k])
		}
		if f < 1 {
			break
		}
		room -= sg.dc
	}
	// The bound of view v is valid whatever this returns; a rounding
	// error here only costs the chance of lifting the bound further.
	for k := 0; k < m; k++ {
		if cost[k] > q.cap[k]+1e-12*math.Max(1, math.Abs(q.cap[k])) {
			return false
		}
	}
	return true
}

func (t *tree) viewBound(v int) float64 {
	b, _ := t.viewLP(v)
	return b
}

// viewLP returns the LP bound of view v and its optimal multiplier of the
// surrogate budget (the slope of the segment the budget cuts).
func (t *tree) viewLP(v int) (float64, float64) {
	w := &t.views[v]
	room := w.surCap - t.s.sur[v] - t.s.baseS[v]
	if room < 0 {
		return math.Inf(1), 0
	}
	b := t.s.obj + t.s.baseV[v]
	for _, sg := range w.segs {
		if t.assign[sg.c] >= 0 {
			continue
		}
		if sg.dc <= room {
			room -= sg.dc
			b -= sg.dv
		} else {
			return b - sg.dv*room/sg.dc, sg.slope
		}
	}
	return b, 0
}

// refine tries to lift the bound of the current node to cutoff by Polyak
// subgradient steps on the node's Lagrangian
//
//	L(lam) = obj + sum_free min_j (omega_j + lam·c_j) + lam·(cost - cap),
//
// a valid bound for every lam >= 0, starting from view v's optimal
// multipliers. Views only explore fixed directions; this moves off them.
func (t *tree) refine(v int, cutoff float64) float64 {
	q, m := t.q, t.q.m
	b, slope := t.viewLP(v)
	lam, g := t.lam, t.g
	for k := 0; k < m; k++ {
		lam[k] = slope * t.views[v].mu[k]
	}
	for it := 0; it < refineSteps && b < cutoff; it++ {
		l := t.s.obj
		for k := 0; k < m; k++ {
			g[k] = t.s.cost[k] - q.cap[k]
			l += lam[k] * g[k]
		}
		for c, kept := range t.kept {
			if t.assign[c] >= 0 {
				continue
			}
			best, bj := math.Inf(1), -1
			for _, j := range kept {
				val := q.omega[j]
				for k := 0; k < m; k++ {
					val += lam[k] * q.cost[j*m+k]
				}
				if val < best {
					best, bj = val, j
				}
			}
			l += best
			for k := 0; k < m; k++ {
				g[k] += q.cost[bj*m+k]
			}
		}
		b = math.Max(b, l)
		norm := 0.0
		for k := 0; k < m; k++ {
			if lam[k] == 0 && g[k] < 0 {
				g[k] = 0
			}
			norm += g[k] * g[k]
		}
		if norm == 0 {
			break
		}
		step := (cutoff - l) / norm
		for k := 0; k < m; k++ {
			lam[k] = math.Max(0, lam[k]+step*g[k])
		}
	}
	return b
}

// solveLP fills t.pos with view v's LP solution: the hull vertex per free
// group (for the fractional group, the vertex before its fractional
// segment). It returns the fractional core index, or -1.
func (t *tree) solveLP(v int) int {
	w := &t.views[v]
	for c := range t.pos {
		t.pos[c] = 0
	}
	room := w.surCap - t.s.sur[v] - t.s.baseS[v]
	for _, sg := range w.segs {
		if t.assign[sg.c] >= 0 {
			continue
		}
		if sg.dc > room {
			return sg.c
		}
		room -= sg.dc
		t.pos[sg.c] = sg.to
	}
	return -1
}

// newView builds the surrogate view of direction mu.
func (t *tree) newView(mu []float64) view {
	q, m := t.q, t.q.m
	w := view{mu: mu, sur: make([]float64, len(q.omega)), hull: make([][]int, len(t.core))}
	for k := 0; k < m; k++ {
		w.surCap += mu[k] * q.cap[k]
	}
	for j := range w.sur {
		for k := 0; k < m; k++ {
			w.sur[j] += mu[k] * q.cost[j*m+k]
		}
	}
	for c, kept := range t.kept {
		pts := append([]int(nil), kept...)
		slices.SortStableFunc(pts, func(a, b int) int {
			if c := cmp.Compare(w.sur[a], w.sur[b]); c != 0 {
				return c
			}
			return cmp.Compare(q.omega[a], q.omega[b])
		})
		h := pts[:1]
		for _, p := range pts[1:] {
			if q.omega[p] >= q.omega[h[len(h)-1]] {
				continue
			}
			for len(h) >= 2 {
				a, b := h[len(h)-2], h[len(h)-1]
				if (q.omega[b]-q.omega[a])*(w.sur[p]-w.sur[a]) >= (q.omega[p]-q.omega[a])*(w.sur[b]-w.sur[a]) {
					h = h[:len(h)-1]
				} else {
					break
				}
			}
			h = append(h, p)
		}
		w.hull[c] = h
		for v := 1; v < len(h); v++ {
			dc, dv := w.sur[h[v]]-w.sur[h[v-1]], q.omega[h[v-1]]-q.omega[h[v]]
			w.segs = append(w.segs, hullSeg{slope: dv / dc, dc: dc, dv: dv, c: c, to: v})
		}
	}
	slices.SortFunc(w.segs, func(a, b hullSeg) int {
		if c := cmp.Compare(b.slope, a.slope); c != 0 {
			return c
		}
		if c := cmp.Compare(a.c, b.c); c != 0 {
			return c
		}
		return cmp.Compare(a.to, b.to)
	})
	return w
}

// branch proves the incumbent optimal or improves it. It returns a lower
// bound on the objective (without constObj) valid for everything left
// unexplored, and whether ctx ended the search.
func (st *search) branch(ctx context.Context) (float64, bool) {
	q, m := st.q, st.q.m
	gap := st.ub - st.lb - st.tol()
	if gap <= 0 {
		return st.ub, false
	}
	t := &tree{q: q, x: make([]int, q.n)}
	// Reduced-cost fixing: an option with rc >= gap belongs to no
	// configuration better than the incumbent, since every feasible x has
	// objective >= lb + (sum of its reduced costs).
	base := make([]int, q.n)
	for i := 0; i < q.n; i++ {
		var kept []int
		for j := q.off[i]; j < q.off[i+1]; j++ {
			if st.rc[j] < gap || math.IsNaN(st.rc[j]) {
				kept = append(kept, j)
			}
		}
		slices.SortStableFunc(kept, func(a, b int) int { return cmp.Compare(st.rc[a], st.rc[b]) })
		base[i] = kept[0]
		if len(kept) > 1 {
			t.core = append(t.core, i)
			t.kept = append(t.kept, kept)
		}
	}
	nc := len(t.core)
	// Directions: the root multipliers, and each multiplier raised and
	// lowered, so that nodes whose assignments shift the balance between
	// budgets are still bounded close to their LP.
	mu := append([]float64(nil), st.lam...)
	top := 0.0
	for _, v := range mu {
		top = math.Max(top, v)
	}
	if top == 0 {
		for k := range mu {
			mu[k] = 1
		}
		top = 1
	}
	for k := range mu {
		mu[k] /= top // only the direction matters
	}
	top = 1
	dirs := [][]float64{mu}
	if m > 1 {
		for k := 0; k < m; k++ {
			for _, f := range viewFactors {
				d := append([]float64(nil), mu...)
				if d[k] == 0 {
					if f < 1 {
						continue
					}
					d[k] = top / 4
				} else {
					d[k] *= f
				}
				dirs = append(dirs, d)
			}
		}
	}
	nv := len(dirs)
	t.s = nodeState{cost: make([]float64, m), minFree: make([]float64, m),
		sur: make([]float64, nv), baseS: make([]float64, nv), baseV: make([]float64, nv)}
	t.minC = make([]float64, nc*m)
	t.assign = make([]int, nc)
	t.pos = make([]int, nc)
	t.lam, t.g = make([]float64, m), make([]float64, m)
	for c, kept := range t.kept {
		t.assign[c] = -1
		for k := 0; k < m; k++ {
			v := math.Inf(1)
			for _, j := range kept {
				v = math.Min(v, q.cost[j*m+k])
			}
			t.minC[c*m+k] = v
			t.s.minFree[k] += v
		}
	}
	for _, d := range dirs {
		t.views = append(t.views, t.newView(d))
	}
	isCore := make([]bool, q.n)
	for _, i := range t.core {
		isCore[i] = true
	}
	for i := 0; i < q.n; i++ {
		t.x[i] = base[i]
		if isCore[i] {
			continue
		}
		j := base[i]
		t.s.obj += q.omega[j]
		for k := 0; k < m; k++ {
			t.s.cost[k] += q.cost[j*m+k]
		}
		for v := range t.views {
			t.s.sur[v] += t.views[v].sur[j]
		}
	}
	for v := range t.views {
		for c := range t.kept {
			h0 := t.views[v].hull[c][0]
			t.s.baseS[v] += t.views[v].sur[h0]
			t.s.baseV[v] += q.omega[h0]
		}
	}

	cost, scratch := make([]float64, m), make([]float64, m)
	offer := func(v int) bool {
		for c, i := range t.core {
			if t.assign[c] >= 0 {
				t.x[i] = t.assign[c]
			} else {
				t.x[i] = t.views[v].hull[c][t.pos[c]]
			}
		}
		obj := q.eval(t.x, cost)
		if !q.fits(cost) {
			return false
		}
		if obj < st.ub {
			// Spend the slack the rounding left on single upgrades.
			x := append([]int(nil), t.x...)
			q.improve(x, nil, 0, 0)
			if v := q.eval(x, scratch); v < obj && q.fits(scratch) {
				obj = v
			} else {
				copy(x, t.x)
			}
			st.ub = obj
			st.best = x
			// A better incumbent fixes more options by reduced cost:
			// start over on the smaller core. Where two budgets bind, the
			// proof with the optimum known takes a tenth of the time or
			// less, so restarting once the gap fell by restartShrink
			// (rather than to a quarter) made several hard points of the
			// benchmark sweep 3 to 40 times faster. Restarting on every
			// improvement is faster still without a time limit but spends
			// short limits on restarts. Each restart lowers the incumbent,
			// so restarts end.
			if st.ub-st.lb-st.tol() < gap*restartShrink {
				st.restart = true
			}
		}
		return true
	}
	type child struct {
		j, v int
		b    float64
	}
	var dfs func(bound float64, v int) float64
	dfs = func(bound float64, v int) float64 {
		st.nodes++
		if st.nodes&255 == 1 && ctx.Err() != nil {
			st.aborted = true
		}
		if st.aborted || st.restart {
			return bound
		}
		f := t.solveLP(v)
		feasible := offer(v) // the LP solution rounded down is a candidate
		if f < 0 {
			if feasible {
				return math.Inf(1) // the LP optimum is integral and feasible
			}
			// Integral for the surrogate budget but over a real one:
			// branch on the free group that can save most on the most
			// exceeded budget.
			worst, wk := 0.0, -1
			for k := 0; k < m; k++ {
				if ex := (cost[k] - q.cap[k]) / math.Max(q.cap[k], 1e-300); ex > worst {
					worst, wk = ex, k
				}
			}
			save := 0.0
			for c := range t.pos {
				if t.assign[c] >= 0 {
					continue
				}
				if d := q.cost[t.views[v].hull[c][t.pos[c]]*m+wk] - t.minC[c*m+wk]; d > save {
					save, f = d, c
				}
			}
			if f < 0 {
				return math.Inf(1)
			}
		}
		saved := t.s.clone()
		var kids []child
		for _, j := range t.kept[f] {
			t.set(f, j)
			cut := st.ub - st.tol()
			if b, bv, exact := t.bound(cut); b < cut {
				if !exact {
					b = math.Max(b, t.refine(bv, cut))
				}
				if b < cut {
					kids = append(kids, child{j, bv, b})
				}
			}
			t.s.restore(saved)
		}
		t.assign[f] = -1
		slices.SortStableFunc(kids, func(a, b child) int { return cmp.Compare(a.b, b.b) })
		for n, kid := range kids {
			if kid.b >= st.ub-st.tol() {
				break
			}
			t.set(f, kid.j)
			open := dfs(kid.b, kid.v)
			t.s.restore(saved)
			t.assign[f] = -1
			if st.restart {
				return math.Inf(1) // the caller starts over
			}
			if st.aborted {
				if n+1 < len(kids) {
					open = math.Min(open, kids[n+1].b)
				}
				return open
			}
		}
		return math.Inf(1)
	}
	root, rv, _ := t.bound(st.ub - st.tol())
	if root >= st.ub-st.tol() {
		return st.ub, false
	}
	open := dfs(root, rv)
	return math.Min(open, st.ub), st.aborted
}
