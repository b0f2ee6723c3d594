package ilp

import (
	"cmp"
	"container/heap"
	"math"
	"slices"
)

// lowest returns the choice of the lowest-omega option of every group.
func (q *mckp) lowest() []int {
	x := make([]int, q.n)
	for i := range x {
		best := q.off[i]
		for j := q.off[i] + 1; j < q.off[i+1]; j++ {
			if q.omega[j] < q.omega[best] {
				best = j
			}
		}
		x[i] = best
	}
	return x
}

// repair makes x feasible by repeatedly taking the move (another option of
// one group) with the smallest omega increase per unit of scaled cost saved
// on the budgets currently exceeded, never pushing a met budget over its
// limit. It reports whether x became feasible. Each group's best move sits
// in a heap; moves are re-validated when popped, and the heap is rebuilt
// when the set of exceeded budgets changes.
func (q *mckp) repair(x []int) bool {
	m := q.m
	cost := make([]float64, m)
	q.eval(x, cost)
	over := make([]bool, m)
	setOver := func() (any, changed bool) {
		for k := 0; k < m; k++ {
			o := cost[k] > q.cap[k]
			changed = changed || o != over[k]
			over[k] = o
			any = any || o
		}
		return any, changed
	}
	// best returns group i's best move under the current state, or -1.
	best := func(i int) (int, float64) {
		cur := x[i]
		bestRatio, bj := math.Inf(1), -1
	opts:
		for j := q.off[i]; j < q.off[i+1]; j++ {
			if j == cur {
				continue
			}
			save := 0.0
			for k := 0; k < m; k++ {
				d := q.cost[cur*m+k] - q.cost[j*m+k]
				if over[k] {
					save += d
				} else if cost[k]-d > q.cap[k] {
					continue opts
				}
			}
			if save <= 0 {
				continue
			}
			if r := (q.omega[j] - q.omega[cur]) / save; r < bestRatio {
				bestRatio, bj = r, j
			}
		}
		return bj, bestRatio
	}
	h := &moveHeap{}
	rebuild := func() {
		h.items = h.items[:0]
		for i := 0; i < q.n; i++ {
			if j, r := best(i); j >= 0 {
				h.items = append(h.items, heapMove{i, j, r})
			}
		}
		heap.Init(h)
	}
	if any, _ := setOver(); !any {
		return true
	}
	rebuild()
	for steps := 0; steps <= 2*len(q.omega)+q.n; steps++ {
		if h.Len() == 0 {
			return false
		}
		mv := heap.Pop(h).(heapMove)
		// Re-validate: the met budgets may have tightened since.
		if j, r := best(mv.i); j != mv.j || r != mv.ratio {
			if j >= 0 {
				heap.Push(h, heapMove{mv.i, j, r})
			}
			continue
		}
		for k := 0; k < m; k++ {
			cost[k] += q.cost[mv.j*m+k] - q.cost[x[mv.i]*m+k]
		}
		x[mv.i] = mv.j
		any, changed := setOver()
		if !any {
			return true
		}
		if changed {
			rebuild()
		} else if j, r := best(mv.i); j >= 0 {
			heap.Push(h, heapMove{mv.i, j, r})
		}
	}
	return false
}

// maxExchangePasses bounds the passes of improve that try pair exchanges
// (each sorts the candidate moves and checks maxCand^2 pairs); the search
// finds the remaining improvements faster.
const maxExchangePasses = 6

type heapMove struct {
	i, j  int
	ratio float64
}

// moveHeap orders moves by ratio, then group, for determinism.
type moveHeap struct{ items []heapMove }

func (h *moveHeap) Len() int { return len(h.items) }
func (h *moveHeap) Less(a, b int) bool {
	if h.items[a].ratio != h.items[b].ratio {
		return h.items[a].ratio < h.items[b].ratio
	}
	return h.items[a].i < h.items[b].i
}
func (h *moveHeap) Swap(a, b int) { h.items[a], h.items[b] = h.items[b], h.items[a] }
func (h *moveHeap) Push(v any)    { h.items = append(h.items, v.(heapMove)) }
func (h *moveHeap) Pop() any {
	v := h.items[len(h.items)-1]
	h.items = h.items[:len(h.items)-1]
	return v
}

// improve applies improving moves to a feasible x until none is left: first
// single moves (the best feasible lower-omega option of a group), then
// exchanges of two groups, one improving and one paying for it, among the
// maxCand candidates with the smallest reduced cost rc (if rc is not nil)
// among those whose reduced cost is below maxKey.
func (q *mckp) improve(x []int, rc []float64, maxCand int, maxKey float64) {
	m := q.m
	cost := make([]float64, m)
	q.eval(x, cost)
	fitsWith := func(out1, in1, out2, in2 int) bool {
		for k := 0; k < m; k++ {
			c := cost[k] - q.cost[out1*m+k] + q.cost[in1*m+k]
			if out2 >= 0 {
				c += q.cost[in2*m+k] - q.cost[out2*m+k]
			}
			if c > q.cap[k] {
				return false
			}
		}
		return true
	}
	apply := func(i, j int) {
		for k := 0; k < m; k++ {
			cost[k] += q.cost[j*m+k] - q.cost[x[i]*m+k]
		}
		x[i] = j
	}
	type move struct {
		i, j int
		key  float64
	}
	for pass := 0; pass < 50; pass++ {
		changed := false
		for i := 0; i < q.n; i++ {
			best := x[i]
			for j := q.off[i]; j < q.off[i+1]; j++ {
				if q.omega[j] < q.omega[best] && fitsWith(x[i], j, -1, -1) {
					best = j
				}
			}
			if best != x[i] {
				apply(i, best)
				changed = true
			}
		}
		if rc == nil || pass >= maxExchangePasses {
			if !changed {
				return
			}
			continue
		}
		// Pair exchanges among the cheapest moves by reduced cost.
		var up, down []move
		for i := 0; i < q.n; i++ {
			for j := q.off[i]; j < q.off[i+1]; j++ {
				if j == x[i] {
					continue
				}
				mv := move{i, j, rc[j] - rc[x[i]]}
				if mv.key >= maxKey {
					continue
				}
				if q.omega[j] < q.omega[x[i]] {
					up = append(up, mv)
				} else {
					down = append(down, mv)
				}
			}
		}
		byKey := func(s []move) {
			slices.SortFunc(s, func(a, b move) int {
				if c := cmp.Compare(a.key, b.key); c != 0 {
					return c
				}
				return cmp.Compare(a.j, b.j)
			})
		}
		byKey(up)
		byKey(down)
		if len(up) > maxCand {
			up = up[:maxCand]
		}
		if len(down) > maxCand {
			down = down[:maxCand]
		}
		bestGain, bu, bd := 0.0, -1, -1
		for a, u := range up {
			for b, d := range down {
				if u.i == d.i {
					continue
				}
				gain := q.omega[x[u.i]] - q.omega[u.j] + q.omega[x[d.i]] - q.omega[d.j]
				if gain > bestGain && fitsWith(x[u.i], u.j, x[d.i], d.j) {
					bestGain, bu, bd = gain, a, b
				}
			}
		}
		if bu >= 0 {
			apply(up[bu].i, up[bu].j)
			apply(down[bd].i, down[bd].j)
			changed = true
		}
		if !changed {
			return
		}
	}
}
