package rlsearch

import (
	"math"
	"math/rand/v2"
	"testing"

	"gonum.org/v1/gonum/mat"
)

// TestMLPGradients checks backward against central finite differences of
// the loss sum_r,o c[r,o] * out[r,o] for both output activations.
func TestMLPGradients(t *testing.T) {
	// fdTol: central differences with h = 1e-6 on values O(1) have error
	// O(h^2) ~ 1e-12 from truncation plus O(eps/h) ~ 1e-10 from rounding;
	// 1e-6 relative leaves room for ReLU kinks, which the random inputs
	// avoid with probability ~1.
	const fdTol, h = 1e-6, 1e-6
	for _, out := range []activation{linear, sigmoid} {
		rng := rand.New(rand.NewPCG(7, uint64(out)))
		m := newMLP([]int{4, 6, 5, 2}, out, 3, rng)
		// Larger last-layer weights than the initialisation, so the check
		// is not dominated by near-zero outputs.
		for i := range m.w[2] {
			m.w[2][i] = rng.NormFloat64()
		}
		const n = 3
		x := make([]float64, n*4)
		c := make([]float64, n*2)
		for i := range x {
			x[i] = rng.NormFloat64()
		}
		for i := range c {
			c[i] = rng.NormFloat64()
		}
		loss := func() float64 {
			y := m.forward(x, n)
			s := 0.0
			for i, v := range y {
				s += c[i] * v
			}
			return s
		}
		loss()
		m.zeroGrad()
		dx := append([]float64(nil), m.backward(c, n, true)...)
		grads := append([]float64(nil), m.grads...)
		check := func(what string, i int, v *float64, got float64) {
			old := *v
			*v = old + h
			lp := loss()
			*v = old - h
			lm := loss()
			*v = old
			want := (lp - lm) / (2 * h)
			if math.Abs(got-want) > fdTol*math.Max(1, math.Abs(want)) {
				t.Errorf("activation %d: d loss/d %s[%d]: got %.10g; want %.10g (finite differences)", out, what, i, got, want)
			}
		}
		for i := range m.params {
			check("param", i, &m.params[i], grads[i])
		}
		for i := range x {
			check("input", i, &x[i], dx[i])
		}
	}
}

// quadQ is the function the critic must learn in TestCriticFitsQuadratic:
// a concave quadratic in the action whose maximiser depends on the state,
// argmax_a = 0.5 + 0.3 s0 - 0.2 s1.
func quadQ(s []float64, a float64) float64 {
	d := a - (0.5 + 0.3*s[0] - 0.2*s[1])
	return 1 - 2*d*d - 0.5*s[1]*s[1] + 0.3*s[0]*s[2]
}

func quadArgmax(s []float64) float64 { return 0.5 + 0.3*s[0] - 0.2*s[1] }

// fitQuadratic trains a fresh agent's critic on quadQ with gamma 0 (targets
// are the rewards) through the replay buffer and update path, and returns
// the agent and its held-out mean squared error.
func fitQuadratic(t *testing.T) (*agent, float64, float64) {
	t.Helper()
	const dim, steps = 3, 4000
	rng := rand.New(rand.NewPCG(11, 12))
	ag := newAgent(agentConfig{dim: dim, hidden: 32, batch: 64, actorLR: 1e-3, criticLR: 3e-3, tau: 0.01, gam: 0}, rng)
	buf := newReplay(dim, 20000)
	s := make([]float64, dim)
	draw := func() float64 {
		for k := range s {
			s[k] = 2*rng.Float64() - 1
		}
		return rng.Float64()
	}
	for range buf.capacity {
		a := draw()
		buf.add(s, a, quadQ(s, a), nil, true)
	}
	for range steps {
		buf.sample(rng, ag.idx)
		for k, i := range ag.idx {
			copy(ag.sb[k*dim:(k+1)*dim], buf.s[i*dim:(i+1)*dim])
			ag.ab[k], ag.y[k] = buf.a[i], buf.r[i]
		}
		ag.criticStep(ag.sb, ag.ab, ag.y, ag.batch)
	}
	// Held-out error and the variance of the targets.
	mse, mean, sq := 0.0, 0.0, 0.0
	const nTest = 2000
	for range nTest {
		a := draw()
		copy(ag.sb[:dim], s)
		ag.ab[0] = a
		q := ag.q(ag.sb, ag.ab, 1)[0]
		want := quadQ(s, a)
		mse += (q - want) * (q - want)
		mean += want
		sq += want * want
	}
	mse /= nTest
	mean /= nTest
	return ag, mse, sq/nTest - mean*mean
}

// TestCriticFitsQuadratic: the critic regresses a known quadratic Q(s, a).
func TestCriticFitsQuadratic(t *testing.T) {
	// The bound: 1% of the targets' variance (R^2 > 0.99). The best fit
	// linear in (s, a), computed here by least squares, must fall short of
	// it, so that passing needs the network's nonlinearity.
	_, mse, variance := fitQuadratic(t)
	bound := 0.01 * variance
	if lin := linearFitMSE(); lin <= bound {
		t.Fatalf("test is vacuous: a linear fit reaches MSE %.3g <= bound %.3g", lin, bound)
	}
	if mse > bound {
		t.Errorf("critic held-out MSE: got %.3g; want below %.3g (1%% of the target variance %.3g)", mse, bound, variance)
	}
	t.Logf("critic held-out MSE %.3g; bound %.3g; linear least-squares MSE %.3g", mse, bound, linearFitMSE())
}

// linearFitMSE is the in-sample mean squared error of the least-squares fit
// of quadQ by an affine function of (s, a) on 5000 uniform draws.
func linearFitMSE() float64 {
	const n = 5000
	rng := rand.New(rand.NewPCG(3, 4))
	x := mat.NewDense(n, 5, nil)
	y := mat.NewVecDense(n, nil)
	s := make([]float64, 3)
	for r := 0; r < n; r++ {
		for k := range s {
			s[k] = 2*rng.Float64() - 1
		}
		a := rng.Float64()
		x.SetRow(r, []float64{1, s[0], s[1], s[2], a})
		y.SetVec(r, quadQ(s, a))
	}
	var beta, fit mat.VecDense
	if err := beta.SolveVec(x, y); err != nil {
		panic(err)
	}
	fit.MulVec(x, &beta)
	fit.SubVec(&fit, y)
	return mat.Dot(&fit, &fit) / n
}

// TestActorStepRaisesQ: with the critic fixed, an actor step raises the
// batch mean of Q(s, mu(s)), leaves the critic's parameters alone, and
// repeated steps move mu(s) to the critic's maximiser.
func TestActorStepRaisesQ(t *testing.T) {
	ag, _, _ := fitQuadratic(t)
	const dim, n = 3, 64
	rng := rand.New(rand.NewPCG(13, 14))
	states := make([]float64, n*dim)
	for i := range states {
		states[i] = 2*rng.Float64() - 1
	}
	meanQ := func() float64 {
		a := append([]float64(nil), ag.actor.forward(states, n)...)
		q := ag.q(states, a, n)
		s := 0.0
		for _, v := range q {
			s += v
		}
		return s / n
	}
	critic := append([]float64(nil), ag.critic.params...)
	before := meanQ()
	ag.actorStep(states, n)
	after := meanQ()
	if !(after > before) {
		t.Errorf("mean Q(s, mu(s)) after one actor step: got %.6g; want above %.6g (before)", after, before)
	}
	for i, v := range ag.critic.params {
		if v != critic[i] {
			t.Fatalf("actor step changed critic parameter %d: got %v; want %v", i, v, critic[i])
		}
	}
	for range 1500 {
		ag.actorStep(states, n)
	}
	// argTol: the fitted critic's maximiser differs from the true one by
	// about sqrt(MSE/2) (the curvature of quadQ in a is 4), a few 0.01;
	// 0.08 is the bound on the mean distance.
	const argTol = 0.08
	a := ag.actor.forward(states, n)
	dist := 0.0
	for r := 0; r < n; r++ {
		dist += math.Abs(a[r] - quadArgmax(states[r*dim:(r+1)*dim]))
	}
	dist /= n
	t.Logf("mean |mu(s) - argmax| after 1500 actor steps: %.3g", dist)
	if dist > argTol {
		t.Errorf("mean |mu(s) - argmax_a Q(s,a)| after 1500 actor steps: got %.3g; want below %g", dist, argTol)
	}
	if q := meanQ(); !(q > after) {
		t.Errorf("mean Q after 1500 actor steps: got %.6g; want above %.6g", q, after)
	}
}

// TestAdamMinimisesQuadratic checks the optimiser alone: Adam with step 0.1
// on f(x) = sum_i c_i (x_i - t_i)^2 reaches the minimum.
func TestAdamMinimisesQuadratic(t *testing.T) {
	x := []float64{3, -2, 0.5}
	target := []float64{1, 1, -1}
	c := []float64{1, 10, 0.1}
	g := make([]float64, 3)
	opt := newAdam(3, 0.05)
	for range 3000 {
		for i := range x {
			g[i] = 2 * c[i] * (x[i] - target[i])
		}
		opt.step(x, g)
	}
	// adamTol: Adam's steps shrink with its gradient ratio near the
	// optimum; after 3000 steps of 0.05 the iterate sits within a few step
	// sizes' fraction of the minimum.
	const adamTol = 1e-2
	for i := range x {
		if math.Abs(x[i]-target[i]) > adamTol {
			t.Errorf("x[%d]: got %.4g; want %.4g", i, x[i], target[i])
		}
	}
}
