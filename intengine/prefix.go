package intengine

import (
	"context"
	"fmt"
	"slices"

	"mpsearch/tensor"
)

// Prefix reuse: a Model and its variants (WithLayerBits) differ in one
// layer's step only, so the steps before that layer compute the same codes
// in all of them. A Prefix runs the steps of one model on a batch up to a
// cut; RunFrom continues it in a variant from the cut on, starting from
// the tensors live at the cut (written before it and read at or after it).

// liveness records, per buffer, the step that writes it and the last step
// that reads it (-1 when none does).
func (p *plan) liveness() {
	p.writer = make([]int, len(p.bufs))
	p.lastRead = make([]int, len(p.bufs))
	for i := range p.bufs {
		p.writer[i], p.lastRead[i] = -1, -1
	}
	for i, s := range p.steps {
		ins, out := s.buffers()
		for _, b := range ins {
			p.lastRead[b] = max(p.lastRead[b], i)
		}
		if out >= 0 {
			p.writer[out] = i
		}
	}
}

// live returns the buffers live at cut c (before step c runs): written by
// a step before c and read by step c or a later one, or holding the graph
// output.
func (p *plan) live(c int) []int {
	var out []int
	for b := range p.bufs {
		if p.writer[b] >= 0 && p.writer[b] < c && (p.lastRead[b] >= c || b == p.outBuf) {
			out = append(out, b)
		}
	}
	return out
}

// LiveAt returns the names of the uint8 tensors live at cut step (before
// Steps()[step] runs): the tensors a Prefix stopped there hands to RunFrom.
func (m *Model) LiveAt(step int) []string {
	var out []string
	for _, b := range m.plan.live(step) {
		out = append(out, m.plan.bufs[b].name)
	}
	return out
}

// layerStep returns the index in plan.steps of layer li's step.
func (m *Model) layerStepIndex(li int) int {
	for i, s := range m.plan.steps {
		if ls, ok := s.(*layerStep); ok && ls.li == li {
			return i
		}
	}
	return -1
}

// LayerStep returns the index (in Steps order) of layer li's step, the
// first step whose values depend on the layer's weights: every step before
// it computes the same codes whatever the layer's bit width.
func (m *Model) LayerStep(li int) (int, error) {
	i := m.layerStepIndex(li)
	if i < 0 {
		return 0, fmt.Errorf("intengine: no layer %d (the model has %d): %w", li, len(m.bits), ErrConfig)
	}
	return i, nil
}

// WithLayerBits returns the Model that Compile would give with m's
// configuration except layer li at b bits. It shares every other step, the
// quantizers and the workspaces with m and is, like m, immutable and safe
// for concurrent use. The layer's codes come from m's weight source
// (Config.Weights).
func (m *Model) WithLayerBits(li, b int) (*Model, error) {
	idx, err := m.LayerStep(li)
	if err != nil {
		return nil, err
	}
	old := m.plan.steps[idx].(*layerStep)
	if b < 1 || b > 8 {
		return nil, fmt.Errorf("intengine: layer %q: %d-bit weights; want 1 to 8: %w", old.node, b, ErrConfig)
	}
	ns := new(layerStep)
	*ns = *old // geometry; setup replaces everything it derives
	p := *m.plan
	p.steps = slices.Clone(m.plan.steps)
	p.steps[idx] = ns
	if m.plan.outLayer == old {
		p.outLayer = ns
	}
	bits := slices.Clone(m.bits)
	bits[li] = b
	v := &Model{net: m.net, plan: &p, bits: bits, quant: m.quant, opt: m.opt, pool: m.pool, family: m.family, codes: m.codes}
	if err := ns.setup(v); err != nil {
		return nil, err
	}
	return v, nil
}

// Prefix is a run of a Model on one batch stopped between two steps. It
// holds a workspace until Release.
type Prefix struct {
	m    *Model
	ws   *workspace
	x    *tensor.Tensor
	next int // first step not run
}

// Start prepares a run of m on the float batch x ([N]+SampleShape),
// stopped before its first step.
func (m *Model) Start(x *tensor.Tensor) (*Prefix, error) {
	if err := m.check(x); err != nil {
		return nil, err
	}
	return &Prefix{m: m, ws: m.getWorkspace(x), x: x}, nil
}

// Next returns the index of the first step not run yet.
func (p *Prefix) Next() int { return p.next }

// RunTo runs the steps from Next up to step (exclusive; at most
// len(Steps())).
func (p *Prefix) RunTo(ctx context.Context, step int) error {
	if p.ws == nil {
		return fmt.Errorf("intengine: prefix used after Release: %w", ErrConfig)
	}
	if step < p.next || step > len(p.m.plan.steps) {
		return fmt.Errorf("intengine: run to step %d from step %d of %d: %w", step, p.next, len(p.m.plan.steps), ErrConfig)
	}
	if err := p.m.execRange(ctx, p.ws, p.x.Shape[0], p.next, step); err != nil {
		return err
	}
	p.next = step
	return nil
}

// Output returns the dequantized output of a Prefix that has run every
// step (what Run returns).
func (p *Prefix) Output() (*tensor.Tensor, error) {
	if p.ws == nil || p.next != len(p.m.plan.steps) {
		return nil, fmt.Errorf("intengine: output of a run stopped at step %d of %d: %w", p.next, len(p.m.plan.steps), ErrConfig)
	}
	out := tensor.New(append([]int{p.x.Shape[0]}, p.m.plan.outShape...)...)
	p.m.dequantize(p.ws, out.Data)
	return out, nil
}

// Release returns the Prefix's workspace; the Prefix is unusable after.
func (p *Prefix) Release() {
	if p.ws != nil {
		p.m.putWorkspace(p.ws)
		p.ws = nil
	}
}

// RunFrom continues the run p in m: the tensors live at p.Next() are
// copied into a workspace of m, m's steps from there on run, and the
// dequantized output is returned (what m.Run on the same batch returns).
// m must come from the same Compile as p's model (one is the other, or a
// WithLayerBits variant of it) and agree with it on every step before the
// cut; p is left unchanged.
func (m *Model) RunFrom(ctx context.Context, p *Prefix) (*tensor.Tensor, error) {
	if p.ws == nil {
		return nil, fmt.Errorf("intengine: prefix used after Release: %w", ErrConfig)
	}
	if m.family != p.m.family {
		return nil, fmt.Errorf("intengine: the prefix comes from another compiled model: %w", ErrConfig)
	}
	for i := 0; i < p.next; i++ {
		if m.plan.steps[i] != p.m.plan.steps[i] {
			node, _ := m.plan.steps[i].describe()
			return nil, fmt.Errorf("intengine: step %d (%s) differs between the prefix's model and this one, but the prefix ran past it (to step %d): %w", i, node, p.next, ErrConfig)
		}
	}
	n := p.x.Shape[0]
	ws := m.getWorkspace(p.x)
	defer m.putWorkspace(ws)
	for _, b := range m.plan.live(p.next) {
		size := n * m.plan.bufs[b].size
		copy(ws.bufs[b][:size], p.ws.bufs[b][:size])
	}
	if err := m.execRange(ctx, ws, n, p.next, len(m.plan.steps)); err != nil {
		return nil, err
	}
	out := tensor.New(append([]int{n}, m.plan.outShape...)...)
	m.dequantize(ws, out.Data)
	return out, nil
}
