package ilp

import (
	"cmp"
	"math"
	"slices"
)

// mckp is the numeric form of a reduced problem: n groups, each choosing one
// of its options, m budgets. Costs are scaled per budget by a power of two
// near 1/(range of that cost), which is exact in floating point and makes
// the budgets comparable for the heuristics and the multiplier search.
type mckp struct {
	n, m  int
	off   []int     // options of group i are off[i]..off[i+1]-1
	omega []float64 // per option
	cost  []float64 // per option and budget: cost[j*m+r]
	limit []float64 // per budget, scaled
	cap   []float64 // limit plus the internal feasibility tolerance
	scale []float64 // per budget: scaled cost = cost*scale
}

func newMCKP(r *reduced) *mckp {
	q := &mckp{n: len(r.groups), m: len(r.bud)}
	q.off = make([]int, q.n+1)
	for i, g := range r.groups {
		q.off[i+1] = q.off[i] + len(g.opts)
	}
	q.omega = make([]float64, q.off[q.n])
	q.cost = make([]float64, q.off[q.n]*q.m)
	q.limit = make([]float64, q.m)
	q.cap = make([]float64, q.m)
	q.scale = make([]float64, q.m)
	for k := 0; k < q.m; k++ {
		span := 0.0
		for _, g := range r.groups {
			lo, hi := math.Inf(1), math.Inf(-1)
			for _, o := range g.opts {
				lo = math.Min(lo, o.c[k])
				hi = math.Max(hi, o.c[k])
			}
			span += hi - lo
		}
		s := 1.0
		if span > 0 {
			s = math.Ldexp(1, -math.Ilogb(span))
		}
		q.scale[k] = s
		q.limit[k] = r.limit[k] * s
		// Half of FeasibilityTol, relative to the original limit, so that
		// what is feasible here is feasible after expand sums the costs of
		// the original layers in another order.
		lim := r.p.Resources[r.bud[k]].Limit
		q.cap[k] = q.limit[k] + 0.5*FeasibilityTol*math.Max(1, math.Abs(lim))*s
	}
	for i, g := range r.groups {
		for jj, o := range g.opts {
			j := q.off[i] + jj
			q.omega[j] = o.omega
			for k := 0; k < q.m; k++ {
				q.cost[j*q.m+k] = o.c[k] * q.scale[k]
			}
		}
	}
	return q
}

// eval returns the objective and scaled costs of a choice (global option
// indexes per group), summed in group order.
func (q *mckp) eval(x []int, cost []float64) float64 {
	for k := range cost {
		cost[k] = 0
	}
	obj := 0.0
	for _, j := range x {
		obj += q.omega[j]
		for k := 0; k < q.m; k++ {
			cost[k] += q.cost[j*q.m+k]
		}
	}
	return obj
}

func (q *mckp) fits(cost []float64) bool {
	for k, c := range cost {
		if c > q.cap[k] {
			return false
		}
	}
	return true
}

// lagrange evaluates the Lagrangian dual function
//
//	L(lam) = sum_i min_j (omega_j + lam·c_j) - lam·limit,
//
// a lower bound on the optimum for every lam >= 0. It stores the minimising
// option of each group in pick (if not nil) and the subgradient
// c(pick) - limit in g (if not nil).
func (q *mckp) lagrange(lam []float64, pick []int, g []float64) float64 {
	m := q.m
	if g != nil {
		for k := range g {
			g[k] = -q.limit[k]
		}
	}
	sum := 0.0
	for i := 0; i < q.n; i++ {
		best, bj := math.Inf(1), -1
		for j := q.off[i]; j < q.off[i+1]; j++ {
			v := q.omega[j]
			for k := 0; k < m; k++ {
				v += lam[k] * q.cost[j*m+k]
			}
			if v < best {
				best, bj = v, j
			}
		}
		sum += best
		if pick != nil {
			pick[i] = bj
		}
		if g != nil {
			for k := 0; k < m; k++ {
				g[k] += q.cost[bj*m+k]
			}
		}
	}
	for k := 0; k < m; k++ {
		sum -= lam[k] * q.limit[k]
	}
	return sum
}

// segment is one edge of the lower convex hull of a group's options in the
// (cost, value) plane: moving along it buys a value decrease dv for a cost
// increase dc, at the rate slope = dv/dc.
type segment struct {
	slope, dc, dv float64
	group         int
}

// lineSearch maximises L along budget k with the other multipliers fixed,
// which is the LP relaxation of a single-budget MCKP with values
// omega + sum_{r != k} lam_r c_r: it solves that LP greedily on the lower
// convex hulls of the groups (exact for one budget) and returns the optimal
// multiplier of budget k, the slope of the segment the budget cuts.
func (q *mckp) lineSearch(lam []float64, k int, segs []segment) (float64, []segment) {
	m := q.m
	segs = segs[:0]
	base := 0.0
	type pt struct{ c, v float64 }
	var pts []pt
	for i := 0; i < q.n; i++ {
		pts = pts[:0]
		for j := q.off[i]; j < q.off[i+1]; j++ {
			v := q.omega[j]
			for r := 0; r < m; r++ {
				if r != k {
					v += lam[r] * q.cost[j*m+r]
				}
			}
			pts = append(pts, pt{q.cost[j*m+k], v})
		}
		slices.SortFunc(pts, func(a, b pt) int {
			if c := cmp.Compare(a.c, b.c); c != 0 {
				return c
			}
			return cmp.Compare(a.v, b.v)
		})
		// Lower hull from the cheapest point to the lowest value.
		hull := pts[:1]
		for _, p := range pts[1:] {
			if p.v >= hull[len(hull)-1].v {
				continue
			}
			for len(hull) >= 2 {
				a, b := hull[len(hull)-2], hull[len(hull)-1]
				// b is above segment a-p: remove it.
				if (b.v-a.v)*(p.c-a.c) >= (p.v-a.v)*(b.c-a.c) {
					hull = hull[:len(hull)-1]
				} else {
					break
				}
			}
			hull = append(hull, p)
		}
		base += hull[0].c
		for h := 1; h < len(hull); h++ {
			dc, dv := hull[h].c-hull[h-1].c, hull[h-1].v-hull[h].v
			segs = append(segs, segment{slope: dv / dc, dc: dc, dv: dv, group: i})
		}
	}
	slices.SortFunc(segs, func(a, b segment) int {
		if c := cmp.Compare(b.slope, a.slope); c != 0 {
			return c
		}
		return cmp.Compare(a.group, b.group)
	})
	room := q.limit[k] - base
	for _, s := range segs {
		if s.dc > room {
			return s.slope, segs
		}
		room -= s.dc
	}
	return 0, segs
}

// dual searches multipliers lam >= 0 maximising L(lam), starting from lam,
// and returns the best value found, leaving its multipliers in lam. Any lam
// gives a valid bound; for one budget the result is the LP optimum exactly.
// For several budgets it alternates Polyak subgradient steps (with target
// ub, the incumbent) and exact line searches along each multiplier.
func (q *mckp) dual(lam []float64, ub float64) float64 {
	m := q.m
	if m == 0 {
		return q.lagrange(lam, nil, nil)
	}
	var segs []segment
	if m == 1 {
		lam[0], _ = q.lineSearch(lam, 0, segs)
		return q.lagrange(lam, nil, nil)
	}
	best := q.lagrange(lam, nil, nil)
	bestLam := append([]float64(nil), lam...)
	cur := append([]float64(nil), lam...)
	g := make([]float64, m)
	coord := func() {
		for round := 0; round < 4; round++ {
			before := best
			for k := 0; k < m; k++ {
				copy(cur, bestLam)
				cur[k], segs = q.lineSearch(cur, k, segs)
				if v := q.lagrange(cur, nil, nil); v > best {
					best = v
					copy(bestLam, cur)
				}
			}
			if best-before <= 1e-12*math.Abs(best) {
				break
			}
		}
	}
	coord()
	theta, stall := 1.0, 0
	copy(cur, bestLam)
	for it := 0; it < 300 && theta > 1e-6; it++ {
		v := q.lagrange(cur, nil, g)
		if v > best {
			best = v
			copy(bestLam, cur)
			stall = 0
		} else if stall++; stall >= 8 {
			theta /= 2
			stall = 0
			copy(cur, bestLam)
			continue
		}
		target := ub
		if math.IsInf(ub, 1) || ub <= best {
			target = best + 0.01*math.Abs(best) + 1e-12
		}
		norm := 0.0
		for k := 0; k < m; k++ {
			if cur[k] == 0 && g[k] < 0 {
				g[k] = 0 // projected: this multiplier cannot decrease
			}
			norm += g[k] * g[k]
		}
		if norm == 0 {
			break // lam is optimal: complementary slackness holds
		}
		t := theta * (target - v) / norm
		for k := 0; k < m; k++ {
			cur[k] = math.Max(0, cur[k]+t*g[k])
		}
	}
	coord()
	copy(lam, bestLam)
	return best
}
