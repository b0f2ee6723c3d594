package rlsearch

import (
	"math/rand/v2"
)

// replay is a ring buffer of transitions (s, a, r, s', done) with uniform
// sampling with replacement. Storage is preallocated.
type replay struct {
	dim      int
	capacity int
	n, next  int // stored transitions; slot the next one goes to
	s, s2    []float64
	a, r     []float64
	done     []float64 // 1 for the last step of an episode, else 0
}

func newReplay(dim, capacity int) *replay {
	return &replay{
		dim: dim, capacity: capacity,
		s: make([]float64, dim*capacity), s2: make([]float64, dim*capacity),
		a: make([]float64, capacity), r: make([]float64, capacity), done: make([]float64, capacity),
	}
}

// add stores a transition, overwriting the oldest when full. s2 is ignored
// (stored as zeros) when done.
func (b *replay) add(s []float64, a, r float64, s2 []float64, done bool) {
	i, d := b.next, b.dim
	copy(b.s[i*d:(i+1)*d], s)
	dst := b.s2[i*d : (i+1)*d]
	if done {
		for k := range dst {
			dst[k] = 0
		}
		b.done[i] = 1
	} else {
		copy(dst, s2)
		b.done[i] = 0
	}
	b.a[i], b.r[i] = a, r
	b.next = (b.next + 1) % b.capacity
	if b.n < b.capacity {
		b.n++
	}
}

// sample fills idx with indices drawn uniformly, with replacement, from the
// stored transitions. The buffer must not be empty.
func (b *replay) sample(rng *rand.Rand, idx []int) {
	for k := range idx {
		idx[k] = rng.IntN(b.n)
	}
}

// agent is DDPG (Lillicrap et al. 2016) with a one-dimensional action in
// [0,1]: actor mu(s) (sigmoid output), critic Q(s, a) on the concatenation
// of state and action, target copies of both moved by soft updates, Adam on
// each. All batch workspaces are allocated once.
type agent struct {
	dim                 int
	actor, critic       *mlp
	actorT, criticT     *mlp
	optA, optC          *adam
	gamma, tau          float64
	batch               int
	idx                 []int
	sb, s2b, ab, rb, db []float64
	cin, y, dq, da      []float64
}

type agentConfig struct {
	dim, hidden, batch          int
	actorLR, criticLR, tau, gam float64
}

func newAgent(c agentConfig, rng *rand.Rand) *agent {
	B := c.batch
	ag := &agent{
		dim:    c.dim,
		actor:  newMLP([]int{c.dim, c.hidden, c.hidden, 1}, sigmoid, B, rng),
		critic: newMLP([]int{c.dim + 1, c.hidden, c.hidden, 1}, linear, B, rng),
		gamma:  c.gam,
		tau:    c.tau,
		batch:  B,
		idx:    make([]int, B),
		sb:     make([]float64, B*c.dim),
		s2b:    make([]float64, B*c.dim),
		ab:     make([]float64, B),
		rb:     make([]float64, B),
		db:     make([]float64, B),
		cin:    make([]float64, B*(c.dim+1)),
		y:      make([]float64, B),
		dq:     make([]float64, B),
		da:     make([]float64, B),
	}
	ag.actorT = ag.actor.clone(B)
	ag.criticT = ag.critic.clone(B)
	ag.optA = newAdam(len(ag.actor.params), c.actorLR)
	ag.optC = newAdam(len(ag.critic.params), c.criticLR)
	return ag
}

// act returns mu(s) for one state.
func (ag *agent) act(s []float64) float64 {
	return ag.actor.forward(s, 1)[0]
}

// concat writes the rows [s_r, a_r] into ag.cin and returns it.
func (ag *agent) concat(s, a []float64, n int) []float64 {
	d := ag.dim
	for r := 0; r < n; r++ {
		row := ag.cin[r*(d+1) : (r+1)*(d+1)]
		copy(row, s[r*d:(r+1)*d])
		row[d] = a[r]
	}
	return ag.cin[:n*(d+1)]
}

// q evaluates the critic on (s, a) rows.
func (ag *agent) q(s, a []float64, n int) []float64 {
	return ag.critic.forward(ag.concat(s, a, n), n)
}

// update samples a batch from buf and does one critic step, one actor step
// and the soft updates of both targets.
func (ag *agent) update(buf *replay, rng *rand.Rand) {
	buf.sample(rng, ag.idx)
	d := ag.dim
	for k, i := range ag.idx {
		copy(ag.sb[k*d:(k+1)*d], buf.s[i*d:(i+1)*d])
		copy(ag.s2b[k*d:(k+1)*d], buf.s2[i*d:(i+1)*d])
		ag.ab[k], ag.rb[k], ag.db[k] = buf.a[i], buf.r[i], buf.done[i]
	}
	n := ag.batch
	// Targets y = r + gamma (1-done) Q'(s', mu'(s')).
	a2 := ag.actorT.forward(ag.s2b, n)
	q2 := ag.criticT.forward(ag.concat(ag.s2b, a2, n), n)
	for k := 0; k < n; k++ {
		ag.y[k] = ag.rb[k] + ag.gamma*(1-ag.db[k])*q2[k]
	}
	ag.criticStep(ag.sb, ag.ab, ag.y, n)
	ag.actorStep(ag.sb, n)
	ag.actorT.softUpdate(ag.actor, ag.tau)
	ag.criticT.softUpdate(ag.critic, ag.tau)
}

// criticStep does one Adam step on the loss mean((Q(s,a) - y)^2)/2 and
// returns the loss before the step.
func (ag *agent) criticStep(s, a, y []float64, n int) float64 {
	q := ag.q(s, a, n)
	loss := 0.0
	inv := 1 / float64(n)
	for k := 0; k < n; k++ {
		e := q[k] - y[k]
		loss += e * e
		ag.dq[k] = e * inv
	}
	ag.critic.zeroGrad()
	ag.critic.backward(ag.dq, n, false)
	ag.optC.step(ag.critic.params, ag.critic.grads)
	return loss * inv / 2
}

// actorStep does one Adam step on the actor to raise mean Q(s, mu(s)),
// with the critic held fixed (its gradients are computed and discarded).
func (ag *agent) actorStep(s []float64, n int) {
	a := ag.actor.forward(s, n)
	copy(ag.da[:n], a)
	ag.q(s, ag.da, n)
	inv := 1 / float64(n)
	for k := 0; k < n; k++ {
		ag.dq[k] = -inv
	}
	dx := ag.critic.backward(ag.dq, n, true)
	d := ag.dim
	for k := 0; k < n; k++ {
		ag.da[k] = dx[k*(d+1)+d]
	}
	ag.actor.zeroGrad()
	ag.actor.backward(ag.da, n, false)
	ag.optA.step(ag.actor.params, ag.actor.grads)
}
