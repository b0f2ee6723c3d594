package rlsearch

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
)

// Reward names accepted by Config.Reward.
const (
	RewardTable    = "table"    // minus the summed Omega of the table
	RewardAccuracy = "accuracy" // measured accuracy from Config.Accuracy
)

// Config sets up a Search. Zero fields take the defaults documented on
// each field.
type Config struct {
	Episodes int    // episodes to run; default 300
	Warmup   int    // leading episodes of uniform random actions; default 20
	Seed     uint64 // seeds the networks, the noise and the replay sampling
	Reward   string // RewardTable (default) or RewardAccuracy

	// Accuracy measures a configuration (one bit width per layer) on
	// held-out data; required for RewardAccuracy. Results are cached per
	// configuration, so it is called once per distinct configuration.
	Accuracy func(ctx context.Context, bits []int) (float64, error)
	// AccuracyScale multiplies accuracy differences into rewards; default
	// 10 (accuracy as a fraction in [0,1]; HAQ's 0.1 per percentage point).
	AccuracyScale float64

	// Progress, if set, is called after every episode.
	Progress func(Progress)

	Hidden     int     // units in each of the two hidden layers of both networks; default 32
	Batch      int     // minibatch size; default 32
	Updates    int     // DDPG updates (critic, actor, targets) after each episode; default 8
	ActorLR    float64 // Adam step size of the actor; default 1e-3
	CriticLR   float64 // Adam step size of the critic; default 1e-3
	Tau        float64 // soft target update rate; default 0.01
	Sigma      float64 // initial standard deviation of the exploration noise; default 0.5
	SigmaDecay float64 // per-episode decay of the noise after warm-up; default 0.99
	Replay     int     // replay capacity in episodes; default 200

	// NoPolish skips the final local search (Improve) on the agent's best
	// configuration. The polish only applies to RewardTable.
	NoPolish bool
}

// Progress reports the state of a search after an episode.
type Progress struct {
	Episode  int     // episodes completed
	Total    int     // episodes planned
	Best     float64 // best objective so far (best accuracy with RewardAccuracy)
	BestBits []int   // the best configuration so far; read only
}

// CurvePoint is the agent's best value after Episode episodes: the least
// objective with RewardTable, the highest accuracy with RewardAccuracy.
type CurvePoint struct {
	Episode int
	Best    float64
}

// Result is the outcome of a Search. All configurations meet every budget.
type Result struct {
	Bits      []int     // chosen bit width per layer, in Problem.Layers order
	Objective float64   // summed Omega of Bits
	Costs     []float64 // total cost per resource of Bits
	Accuracy  float64   // with RewardAccuracy: the measured accuracy of Bits

	// The agent's own best, before the polish; equal to Bits and
	// Objective when no polish ran or it found nothing better.
	AgentBits      []int
	AgentObjective float64
	Polished       bool // the polish ran

	// Curve has a point for the first episode, for every episode that
	// improved the agent's best, and for the last episode.
	Curve    []CurvePoint
	Episodes int // episodes completed (fewer than asked if ctx ended)
}

func (c *Config) defaults() error {
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	deff := func(v *float64, d float64) {
		if *v == 0 {
			*v = d
		}
	}
	def(&c.Episodes, 300)
	def(&c.Warmup, 20)
	def(&c.Hidden, 32)
	def(&c.Batch, 32)
	def(&c.Updates, 8)
	def(&c.Replay, 200)
	deff(&c.AccuracyScale, 10)
	deff(&c.ActorLR, 1e-3)
	deff(&c.CriticLR, 1e-3)
	deff(&c.Tau, 0.01)
	deff(&c.Sigma, 0.5)
	deff(&c.SigmaDecay, 0.99)
	if c.Reward == "" {
		c.Reward = RewardTable
	}
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: config: "+format, append([]any{ErrInvalid}, args...)...)
	}
	switch {
	case c.Reward != RewardTable && c.Reward != RewardAccuracy:
		return bad("reward %q is neither %q nor %q", c.Reward, RewardTable, RewardAccuracy)
	case c.Reward == RewardAccuracy && c.Accuracy == nil:
		return bad("reward %q needs an Accuracy function", RewardAccuracy)
	case c.Episodes < 0 || c.Warmup < 0 || c.Hidden < 0 || c.Batch < 0 || c.Updates < 0 || c.Replay < 0:
		return bad("negative Episodes, Warmup, Hidden, Batch, Updates or Replay")
	case !(c.Tau > 0 && c.Tau <= 1):
		return bad("Tau %v is not in (0,1]", c.Tau)
	case !(c.Sigma > 0) || !(c.SigmaDecay > 0 && c.SigmaDecay <= 1):
		return bad("Sigma %v must be > 0 and SigmaDecay %v in (0,1]", c.Sigma, c.SigmaDecay)
	case !(c.ActorLR > 0) || !(c.CriticLR > 0) || !(c.AccuracyScale > 0):
		return bad("ActorLR, CriticLR and AccuracyScale must be > 0")
	}
	return nil
}

// discount is the TD discount: 1, since an episode has a fixed, finite
// length and its undiscounted return is the objective (table reward).
const discount = 1.0

// runner holds one search's state.
type runner struct {
	e       *env
	cfg     Config
	rng     *rand.Rand
	ag      *agent
	buf     *replay
	free    []int     // decision groups (not fixed), in order
	static  []float64 // per decision step: the fixed part of its state
	nStatic int
	dim     int
	// slack features: per budgeted resource
	fixedCost []float64 // cost of the fixed groups, per resource
	minRest   []float64 // minRest[t*nr+k]: least cost of decision steps t.. on resource k
	rng01     []float64 // per resource: sum over decision steps of (max-min) cost; 1 if 0
	// table reward
	omegaMin float64   // sum over all groups of their least Omega
	omegaLo  []float64 // per decision step: the group's least Omega
	norm     float64
	// accuracy reward
	cache    map[string]float64
	baseline float64
}

// Search runs the DDPG agent on p and returns the best configuration seen,
// polished by Improve unless cfg.NoPolish (or RewardAccuracy). Each episode
// visits the layers in order, one step per decision (a layer, or a tie group
// at its first member; fixed layers take their width); the configuration is
// then repaired into the budgets as Repair does, evaluated and stored.
// Same Problem and Config (Seed included) give the same Result.
//
// When ctx ends, Search returns the best configuration of the completed
// episodes, or ctx's error if none completed. Errors wrap ErrInvalid for a
// malformed problem or config and ErrInfeasible when the budgets cannot be
// met by lowering bit widths; errors of cfg.Accuracy are returned wrapped.
func Search(ctx context.Context, p *Problem, cfg Config) (*Result, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	e, err := compile(p)
	if err != nil {
		return nil, err
	}
	r := &runner{e: e, cfg: cfg, rng: rand.New(rand.NewPCG(cfg.Seed, 0x9e3779b97f4a7c15))}
	for gi := range e.groups {
		if !e.groups[gi].fixed {
			r.free = append(r.free, gi)
		}
	}
	// The reference configuration: every decision at its highest width,
	// repaired. It fixes the reward scale (table) or the baseline (accuracy)
	// and proves the budgets can be met.
	ref := make([]int, len(e.groups))
	for gi := range e.groups {
		ref[gi] = len(e.groups[gi].bits) - 1
	}
	cost := make([]float64, e.nr)
	if err := e.repair(ref, cost); err != nil {
		return nil, err
	}
	if len(r.free) == 0 {
		// Nothing to decide: the only configuration is the answer.
		return r.single(ctx, ref)
	}
	r.features()
	if cfg.Reward == RewardTable {
		refObj := e.eval(ref, cost)
		r.norm = refObj - r.omegaMin
		if !(r.norm > 1e-12*math.Max(1, math.Abs(refObj))) {
			r.norm = math.Max(1, math.Abs(refObj))
		}
	} else {
		r.cache = make(map[string]float64)
		acc, err := r.accuracy(ctx, ref)
		if err != nil {
			return nil, err
		}
		r.baseline = acc
	}
	r.ag = newAgent(agentConfig{
		dim: r.dim, hidden: cfg.Hidden, batch: cfg.Batch,
		actorLR: cfg.ActorLR, criticLR: cfg.CriticLR, tau: cfg.Tau, gam: discount,
	}, r.rng)
	r.buf = newReplay(r.dim, cfg.Replay*len(r.free))
	return r.run(ctx)
}

// features computes the static part of every decision step's state and the
// quantities of its dynamic part.
//
// State of step t (decision group g, first member layer i), in order:
// op one-hot (3); in/out channels, kernel, stride, params, MACs and input
// size, each log1p-scaled and min-max normalised over the layers (7);
// i/(n-1); for every width w in the union of the allowed widths, log Omega
// of g at w min-max normalised over the table, then for every budgeted
// resource the cost of g at w above its least cost, in units of the
// average per-decision cost range (a width g does not allow takes the
// values of the nearest width it allows, the lower one on a tie); then the
// dynamic part: the previous step's action and, per budgeted resource, the
// slack (limit - cost of the steps before - least cost of the steps from
// t on) over the total cost range, clipped to [-1, 2].
func (r *runner) features() {
	e := r.e
	p := e.p
	nr := e.nr
	// Union of widths.
	var widths []int
	for gi := range e.groups {
		for _, b := range e.groups[gi].bits {
			if indexOf(widths, b) < 0 {
				widths = append(widths, b)
			}
		}
	}
	slices.Sort(widths)
	nb := len(e.budget)
	r.nStatic = 3 + 7 + 1 + len(widths)*(1+nb)
	r.dim = r.nStatic + 1 + nb

	// Shape features: log1p, min-max over layers.
	shape := func(f LayerFeatures) [7]float64 {
		return [7]float64{
			math.Log1p(math.Max(0, float64(f.InChannels))), math.Log1p(math.Max(0, float64(f.OutChannels))),
			math.Log1p(math.Max(0, float64(f.Kernel))), math.Log1p(math.Max(0, float64(f.Stride))),
			math.Log1p(math.Max(0, f.Params)), math.Log1p(math.Max(0, f.MACs)),
			math.Log1p(math.Max(0, float64(f.InputSize))),
		}
	}
	var lo, hi [7]float64
	for k := range lo {
		lo[k], hi[k] = math.Inf(1), math.Inf(-1)
	}
	for i := range p.Layers {
		v := shape(p.Layers[i].Features)
		for k := range v {
			lo[k], hi[k] = math.Min(lo[k], v[k]), math.Max(hi[k], v[k])
		}
	}
	// Omega: log with a floor, min-max over the free groups.
	maxOmega := 0.0
	for _, gi := range r.free {
		for _, o := range e.groups[gi].omega {
			maxOmega = math.Max(maxOmega, o)
		}
	}
	floor := 1e-6 * maxOmega
	if floor == 0 {
		floor = 1
	}
	olo, ohi := math.Inf(1), math.Inf(-1)
	for _, gi := range r.free {
		for _, o := range e.groups[gi].omega {
			v := math.Log(o + floor)
			olo, ohi = math.Min(olo, v), math.Max(ohi, v)
		}
	}
	minmax := func(v, lo, hi float64) float64 {
		if hi > lo {
			return (v - lo) / (hi - lo)
		}
		return 0
	}
	// Cost ranges and least costs.
	T := len(r.free)
	minCost := func(g *group, k int) float64 {
		m := math.Inf(1)
		for j := range g.bits {
			m = math.Min(m, g.cost[j*nr+k])
		}
		return m
	}
	r.rng01 = make([]float64, nr)
	for _, k := range e.budget {
		for _, gi := range r.free {
			g := &e.groups[gi]
			mx := math.Inf(-1)
			for j := range g.bits {
				mx = math.Max(mx, g.cost[j*nr+k])
			}
			r.rng01[k] += mx - minCost(g, k)
		}
		if !(r.rng01[k] > 0) {
			r.rng01[k] = 1
		}
	}
	r.fixedCost = make([]float64, nr)
	for gi := range e.groups {
		g := &e.groups[gi]
		r.omegaMin += minFloat(g.omega)
		if g.fixed {
			for k := 0; k < nr; k++ {
				r.fixedCost[k] += g.cost[k]
			}
		}
	}
	r.omegaLo = make([]float64, T)
	for t, gi := range r.free {
		r.omegaLo[t] = minFloat(e.groups[gi].omega)
	}
	r.minRest = make([]float64, (T+1)*nr)
	for t := T - 1; t >= 0; t-- {
		g := &e.groups[r.free[t]]
		for k := 0; k < nr; k++ {
			r.minRest[t*nr+k] = r.minRest[(t+1)*nr+k] + minCost(g, k)
		}
	}

	n := len(p.Layers)
	r.static = make([]float64, T*r.nStatic)
	for t, gi := range r.free {
		g := &e.groups[gi]
		i := g.members[0]
		s := r.static[t*r.nStatic : (t+1)*r.nStatic]
		f := p.Layers[i].Features
		if f.Op >= OpConv && f.Op <= OpMatMul {
			s[int(f.Op)] = 1
		}
		v := shape(f)
		for k := range v {
			s[3+k] = minmax(v[k], lo[k], hi[k])
		}
		if n > 1 {
			s[10] = float64(i) / float64(n-1)
		}
		off := 11
		for _, w := range widths {
			j := nearest(g.bits, w)
			s[off] = minmax(math.Log(g.omega[j]+floor), olo, ohi)
			off++
			for _, k := range e.budget {
				unit := r.rng01[k] / float64(T)
				s[off] = (g.cost[j*nr+k] - minCost(g, k)) / unit
				off++
			}
		}
	}
}

// nearest returns the index of the width in bits (increasing) closest to w,
// the lower one on a tie.
func nearest(bits []int, w int) int {
	best := 0
	for j, b := range bits {
		if absInt(b-w) < absInt(bits[best]-w) {
			best = j
		}
	}
	return best
}

func absInt(v int) int {
	if v < 0 {
		return -v
	}
	return v
}

func minFloat(s []float64) float64 {
	m := math.Inf(1)
	for _, v := range s {
		m = math.Min(m, v)
	}
	return m
}

// state writes the state of decision step t into s, given the previous
// action and the cost so far of the steps before t (fixed groups excluded).
func (r *runner) state(s []float64, t int, prev float64, used []float64) {
	copy(s, r.static[t*r.nStatic:(t+1)*r.nStatic])
	s[r.nStatic] = prev
	nr := r.e.nr
	for m, k := range r.e.budget {
		slack := (r.e.limit[k] - r.fixedCost[k] - used[k] - r.minRest[t*nr+k]) / r.rng01[k]
		s[r.nStatic+1+m] = math.Max(-1, math.Min(2, slack))
	}
}

// level maps an action in [0,1] to one of n levels: equal intervals, so a
// uniform action picks every width with the same probability.
func level(a float64, n int) int {
	j := int(a * float64(n))
	if j >= n {
		j = n - 1
	}
	if j < 0 {
		j = 0
	}
	return j
}

// truncNormal draws from N(mu, sigma) truncated to [0,1] by rejection,
// falling back to clipping after a bounded number of tries.
func truncNormal(rng *rand.Rand, mu, sigma float64) float64 {
	for range 64 {
		v := mu + sigma*rng.NormFloat64()
		if v >= 0 && v <= 1 {
			return v
		}
	}
	return math.Max(0, math.Min(1, mu))
}

func (r *runner) run(ctx context.Context) (*Result, error) {
	e, cfg := r.e, r.cfg
	T, nr, d := len(r.free), e.nr, r.dim
	x := make([]int, len(e.groups)) // fixed groups stay at their only level, 0
	states := make([]float64, (T+1)*d)
	acts := make([]float64, T)
	rewards := make([]float64, T)
	used := make([]float64, nr)
	cost := make([]float64, nr)
	accMode := cfg.Reward == RewardAccuracy

	res := &Result{}
	bestX := make([]int, len(e.groups))
	best := math.Inf(1) // objective, or minus accuracy
	bestObj := math.Inf(1)
	bestReport := math.NaN()
	var bestBits []int
	sigma := cfg.Sigma
	for ep := 0; ep < cfg.Episodes; ep++ {
		if ctx.Err() != nil {
			break
		}
		// Act.
		for k := range used {
			used[k] = 0
		}
		prev := 0.0
		for t, gi := range r.free {
			g := &e.groups[gi]
			s := states[t*d : (t+1)*d]
			r.state(s, t, prev, used)
			var a float64
			if ep < cfg.Warmup {
				a = r.rng.Float64()
			} else {
				a = truncNormal(r.rng, r.ag.act(s), sigma)
			}
			j := level(a, len(g.bits))
			x[gi] = j
			for k := range used {
				used[k] += g.cost[j*nr+k]
			}
			acts[t] = a
			prev = a
		}
		if ep >= cfg.Warmup {
			sigma *= cfg.SigmaDecay
		}
		// Repair and evaluate.
		if err := e.repair(x, cost); err != nil {
			return nil, err
		}
		obj := e.eval(x, cost)
		val := obj
		var acc float64
		if accMode {
			var err error
			if acc, err = r.accuracy(ctx, x); err != nil {
				if ctx.Err() != nil && res.Episodes > 0 {
					break
				}
				return nil, err
			}
			val = -acc
		}
		// Rewards. The transitions keep the states the agent saw and the
		// actions it took (as HAQ does); the rewards are those of the
		// repaired configuration.
		for t, gi := range r.free {
			g := &e.groups[gi]
			if accMode {
				rewards[t] = 0
			} else {
				rewards[t] = -math.Min(1, (g.omega[x[gi]]-r.omegaLo[t])/r.norm)
			}
		}
		if accMode {
			rewards[T-1] = (acc - r.baseline) * cfg.AccuracyScale
		}
		for t := 0; t < T; t++ {
			r.buf.add(states[t*d:(t+1)*d], acts[t], rewards[t], states[(t+1)*d:(t+2)*d], t == T-1)
		}
		// Learn.
		if r.buf.n >= cfg.Batch {
			for range cfg.Updates {
				r.ag.update(r.buf, r.rng)
			}
		}
		// Keep the best.
		res.Episodes = ep + 1
		improved := val < best || (val == best && obj < bestObj)
		if improved {
			best, bestObj = val, obj
			copy(bestX, x)
			bestBits = e.bits(bestX, nil)
			if accMode {
				res.Accuracy = acc
				bestReport = acc
			} else {
				// Summed in layer order, as Result.AgentObjective is.
				bestReport, _ = e.p.objective(bestBits)
			}
		}
		if improved || ep == 0 || ep == cfg.Episodes-1 {
			res.Curve = append(res.Curve, CurvePoint{Episode: ep + 1, Best: bestReport})
		}
		if cfg.Progress != nil {
			cfg.Progress(Progress{Episode: ep + 1, Total: cfg.Episodes, Best: bestReport, BestBits: bestBits})
		}
	}
	if res.Episodes == 0 {
		// Only a context ended before the first episode gets here.
		return nil, ctx.Err()
	}
	if last := res.Curve[len(res.Curve)-1]; last.Episode != res.Episodes {
		res.Curve = append(res.Curve, CurvePoint{Episode: res.Episodes, Best: bestReport})
	}
	return r.finish(res, bestX, !accMode && !cfg.NoPolish)
}

// finish fills res from the agent's best levels x, polishing if asked.
func (r *runner) finish(res *Result, x []int, polish bool) (*Result, error) {
	e := r.e
	res.AgentBits = e.bits(x, nil)
	res.AgentObjective, _ = e.p.objective(res.AgentBits)
	if polish {
		y := append([]int(nil), x...)
		e.improve(y, make([]float64, e.nr))
		res.Polished = true
		x = y
	}
	res.Bits = e.bits(x, nil)
	res.Objective, res.Costs = e.p.objective(res.Bits)
	return res, nil
}

// single handles a problem with no decision left.
func (r *runner) single(ctx context.Context, x []int) (*Result, error) {
	res := &Result{}
	if r.cfg.Reward == RewardAccuracy {
		r.cache = make(map[string]float64)
		acc, err := r.accuracy(ctx, x)
		if err != nil {
			return nil, err
		}
		res.Accuracy = acc
	}
	return r.finish(res, x, false)
}

// accuracy measures (or recalls) the accuracy of levels x.
func (r *runner) accuracy(ctx context.Context, x []int) (float64, error) {
	bits := r.e.bits(x, nil)
	var key strings.Builder
	for i, b := range bits {
		if i > 0 {
			key.WriteByte(',')
		}
		key.WriteString(strconv.Itoa(b))
	}
	if acc, ok := r.cache[key.String()]; ok {
		return acc, nil
	}
	acc, err := r.cfg.Accuracy(ctx, bits)
	if err != nil {
		return 0, fmt.Errorf("rlsearch: accuracy of bits [%s]: %w", key.String(), err)
	}
	if math.IsNaN(acc) || math.IsInf(acc, 0) {
		return 0, fmt.Errorf("rlsearch: accuracy of bits [%s] is %v; the Accuracy function must return a finite number", key.String(), acc)
	}
	r.cache[key.String()] = acc
	return acc, nil
}
