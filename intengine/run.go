package intengine

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"time"

	"mpsearch/kernels"
	"mpsearch/network"
	"mpsearch/tensor"
)

// workspace holds the buffers of one Run; Models recycle them.
type workspace struct {
	m     *Model
	x     []float64
	bufs  [][]uint8
	acc   []int32
	cols  []uint8
	tmp8  []uint8
	tmp32 []int32
	sum   []int32      // per-channel sums of a channels-last average pool
	gate  []float64    // a channel Mul's dequantized gate (runChanMul)
	prod  []float64    // runChanMul's products before they are quantized
	tab   [][256]uint8 // a channel Mul's tables, one per channel
	opt   kernels.Options
	// scratch is the GEMMs' working memory (opt.Scratch), kept with the
	// workspace so that a run allocates nothing.
	scratch kernels.Scratch
	dw      kernels.DWScratch // the depthwise convolutions' working memory
	// micro is the view of one pass of a micro-batched run (execMicro),
	// kept with the workspace with its own scratch buffers.
	micro *workspace
}

// wsPool recycles workspaces. Unlike a sync.Pool it keeps them across
// garbage collections: a workspace dropped by a collection would be
// allocated again, and its pages faulted in, on the next run (at batch 32
// that made the VGG-style CNN's runs 4x slower). It keeps at most
// GOMAXPROCS workspaces, the number of runs that can proceed at once.
type wsPool struct {
	mu   sync.Mutex
	free []*workspace
}

func (p *wsPool) get() *workspace {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := len(p.free)
	if n == 0 {
		return nil
	}
	ws := p.free[n-1]
	p.free[n-1] = nil
	p.free = p.free[:n-1]
	return ws
}

func (p *wsPool) put(ws *workspace) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.free) < runtime.GOMAXPROCS(0) {
		p.free = append(p.free, ws)
	}
}

func (m *Model) getWorkspace(x *tensor.Tensor) *workspace {
	ws := m.pool.get()
	if ws == nil {
		ws = &workspace{bufs: make([][]uint8, len(m.plan.bufs))}
	}
	n := x.Shape[0]
	ws.m, ws.x, ws.opt = m, x.Data, m.opt
	ws.opt.Scratch = &ws.scratch
	for i, b := range m.plan.bufs {
		ws.bufs[i] = grow(ws.bufs[i], n*b.size)
	}
	if m.plan.outLayer != nil {
		ws.acc = grow32(ws.acc, n*tensor.Size(m.plan.outShape))
	}
	return ws
}

func (m *Model) putWorkspace(ws *workspace) {
	ws.x = nil
	m.pool.put(ws)
}

// exec runs the program on x; timed, when not nil, receives the duration
// of each step. Untimed runs of more than plan.micro samples go through
// execMicro.
func (m *Model) exec(ctx context.Context, ws *workspace, n int, timed []time.Duration) error {
	if k := m.plan.micro; k > 0 && n > k && timed == nil {
		return m.execMicro(ctx, ws, n, k)
	}
	return m.execSteps(ctx, ws, n, 0, len(m.plan.steps), timed)
}

// execMicro runs the whole program on k samples at a time, on a view of
// ws holding those samples' part of every buffer (the buffers are
// batch-major), so that a pass's tensors stay in the cache (microBatch).
// The view keeps its own im2col and depthwise scratch and shares the GEMM
// scratch; it is made once per workspace, so runs allocate nothing.
func (m *Model) execMicro(ctx context.Context, ws *workspace, n, k int) error {
	sv := ws.micro
	if sv == nil || len(sv.bufs) != len(ws.bufs) {
		sv = &workspace{bufs: make([][]uint8, len(ws.bufs))}
		ws.micro = sv
	}
	sv.m, sv.opt = m, ws.opt
	in := tensor.Size(m.net.SampleShape)
	acc := tensor.Size(m.plan.outShape)
	for i0 := 0; i0 < n; i0 += k {
		nb := min(k, n-i0)
		for b, buf := range m.plan.bufs {
			sv.bufs[b] = ws.bufs[b][i0*buf.size : (i0+nb)*buf.size]
		}
		sv.x = ws.x[i0*in : (i0+nb)*in]
		if m.plan.outLayer != nil {
			sv.acc = ws.acc[i0*acc : (i0+nb)*acc]
		}
		if err := m.execSteps(ctx, sv, nb, 0, len(m.plan.steps), nil); err != nil {
			return err
		}
	}
	sv.x = nil
	return nil
}

// execRange runs steps [from, to) of the program.
func (m *Model) execRange(ctx context.Context, ws *workspace, n, from, to int) error {
	return m.execSteps(ctx, ws, n, from, to, nil)
}

func (m *Model) execSteps(ctx context.Context, ws *workspace, n, from, to int, timed []time.Duration) error {
	run := func(s step) error { return s.run(ws, n) }
	if m.plan.serial && n > 1 {
		run = m.serialRunner(ws, n)
	}
	for i := from; i < to; i++ {
		s := m.plan.steps[i]
		if err := ctx.Err(); err != nil {
			return err
		}
		var t0 time.Time
		if timed != nil {
			t0 = time.Now()
		}
		if err := run(s); err != nil {
			node, op := s.describe()
			return fmt.Errorf("intengine: %s %q: %w", op, node, err)
		}
		if timed != nil {
			timed[i] = time.Since(t0)
		}
	}
	return nil
}

// serialRunner runs a step of a serial plan once per sample, on a view of
// ws that holds that sample's part of every buffer (buffers keep the
// batch-major layout, so a Prefix of a serial Model is continued as any
// other). The view shares ws's scratch space and hands it back after
// every step.
func (m *Model) serialRunner(ws *workspace, n int) func(step) error {
	sv := &workspace{m: ws.m, bufs: make([][]uint8, len(ws.bufs)), opt: ws.opt}
	in := tensor.Size(m.net.SampleShape)
	acc := tensor.Size(m.plan.outShape)
	return func(s step) error {
		sv.cols, sv.tmp8, sv.tmp32 = ws.cols, ws.tmp8, ws.tmp32
		defer func() { ws.cols, ws.tmp8, ws.tmp32 = sv.cols, sv.tmp8, sv.tmp32 }()
		for k := 0; k < n; k++ {
			for b, buf := range m.plan.bufs {
				sv.bufs[b] = ws.bufs[b][k*buf.size : (k+1)*buf.size]
			}
			sv.x = ws.x[k*in : (k+1)*in]
			if m.plan.outLayer != nil {
				sv.acc = ws.acc[k*acc : (k+1)*acc]
			}
			if err := s.run(sv, 1); err != nil {
				return err
			}
		}
		return nil
	}
}

func (m *Model) check(x *tensor.Tensor) error {
	if x == nil || len(x.Shape) != 1+len(m.net.SampleShape) || x.Shape[0] < 1 || !tensor.SameShape(x.Shape[1:], m.net.SampleShape) || len(x.Data) != tensor.Size(x.Shape) {
		var shape []int
		if x != nil {
			shape = x.Shape
		}
		return fmt.Errorf("intengine: input of shape %v; want [N %v]: %w", shape, m.net.SampleShape, network.ErrShape)
	}
	return nil
}

// dequantize writes the float output of the program into out.
func (m *Model) dequantize(ws *workspace, out []float64) {
	if l := m.plan.outLayer; l != nil {
		per := tensor.Size(m.plan.outShape)
		for i, a := range ws.acc[:len(out)] {
			out[i] = float64(a) * l.outScale[l.channel(i%per)]
		}
		return
	}
	q := m.quant[m.plan.outBuf]
	for i, c := range ws.bufs[m.plan.outBuf][:len(out)] {
		out[i] = float64(int(c)-q.ZeroPoint) * q.Scale
	}
}

// Run executes the integer program on a float batch x ([N]+SampleShape)
// and returns the dequantized output (the logits) of shape [N]+output.
func (m *Model) Run(ctx context.Context, x *tensor.Tensor) (*tensor.Tensor, error) {
	if err := m.check(x); err != nil {
		return nil, err
	}
	n := x.Shape[0]
	ws := m.getWorkspace(x)
	defer m.putWorkspace(ws)
	if err := m.exec(ctx, ws, n, nil); err != nil {
		return nil, err
	}
	out := tensor.New(append([]int{n}, m.plan.outShape...)...)
	m.dequantize(ws, out.Data)
	return out, nil
}

// OutputShape returns the shape of the output of a batch of n samples:
// [n]+the per-sample output shape.
func (m *Model) OutputShape(n int) []int { return append([]int{n}, m.plan.outShape...) }

// RunInto is Run writing the dequantized output into out, whose shape must
// be OutputShape(N) for the N samples of x. After a first run at the
// largest batch, it allocates nothing: the workspace (every uint8 tensor,
// the im2col and GEMM scratch) is recycled from run to run.
func (m *Model) RunInto(ctx context.Context, out, x *tensor.Tensor) error {
	if err := m.check(x); err != nil {
		return err
	}
	n := x.Shape[0]
	if out == nil || len(out.Shape) != 1+len(m.plan.outShape) || out.Shape[0] != n || !tensor.SameShape(out.Shape[1:], m.plan.outShape) || len(out.Data) != tensor.Size(out.Shape) {
		var shape []int
		if out != nil {
			shape = out.Shape
		}
		return fmt.Errorf("intengine: output tensor of shape %v; want %v (OutputShape): %w", shape, m.OutputShape(n), network.ErrShape)
	}
	ws := m.getWorkspace(x)
	defer m.putWorkspace(ws)
	if err := m.exec(ctx, ws, n, nil); err != nil {
		return err
	}
	m.dequantize(ws, out.Data)
	return nil
}

// IntTensor is one uint8 tensor of a run.
type IntTensor struct {
	Name  string
	Shape []int   // per sample
	Codes []uint8 // Batch × Shape, row-major
}

// IntResult holds the integer values of one run, for exactness tests.
type IntResult struct {
	Batch int
	// Tensors holds every uint8 tensor, in the order of Model.Tensors.
	Tensors []IntTensor
	// Acc holds the int32 accumulators (bias included) of the layer that
	// produces the graph output, [Batch]+AccShape; nil when the output is
	// a uint8 tensor.
	Acc      []int32
	AccShape []int
	// Output is the dequantized output, as Run returns it.
	Output *tensor.Tensor
}

// RunInt is Run returning every integer tensor of the program as well.
func (m *Model) RunInt(ctx context.Context, x *tensor.Tensor) (*IntResult, error) {
	if err := m.check(x); err != nil {
		return nil, err
	}
	n := x.Shape[0]
	ws := m.getWorkspace(x)
	defer m.putWorkspace(ws)
	if err := m.exec(ctx, ws, n, nil); err != nil {
		return nil, err
	}
	r := &IntResult{Batch: n, Output: tensor.New(append([]int{n}, m.plan.outShape...)...)}
	m.dequantize(ws, r.Output.Data)
	for i, b := range m.plan.bufs {
		codes := slices.Clone(ws.bufs[i][:n*b.size])
		if sh := m.plan.shapes[b.name]; m.plan.nhwc[i] {
			toNCHW(codes, ws.bufs[i][:n*b.size], n, sh[0], sh[1]*sh[2])
		}
		r.Tensors = append(r.Tensors, IntTensor{Name: b.name, Shape: slices.Clone(m.plan.shapes[b.name]), Codes: codes})
	}
	if m.plan.outLayer != nil {
		r.AccShape = slices.Clone(m.plan.outShape)
		r.Acc = slices.Clone(ws.acc[:n*tensor.Size(r.AccShape)])
	}
	return r, nil
}

// StepTiming is the median duration of one program step.
type StepTiming struct {
	Node, Op string
	Median   time.Duration
}

// Timing is the measured latency of Run on one batch.
type Timing struct {
	Batch            int
	Runs             int
	Median, Min, Max time.Duration // per batch
	// Steps holds the median of each step (timed in a separate series of
	// runs, so their sum need not equal Median exactly).
	Steps []StepTiming
}

// ImagesPerSecond is Batch / Median.
func (t *Timing) ImagesPerSecond() float64 {
	return float64(t.Batch) / t.Median.Seconds()
}

// Time measures Run on the batch x: it collects the heap, then makes
// warmup untimed runs, then runs timed runs of the whole program (Median,
// Min, Max) and runs more with each step timed (Steps). Input quantization
// and output dequantization are included in the whole-program figures.
//
// The collection makes the figures those of a steady process: a run
// allocates a little (its output, the kernels' per-call buffers), and
// after the caller dropped large buffers the collector lets the heap grow
// far before reusing memory, so without it those allocations fault in
// fresh pages (on the development VM, after compiling and calibrating, the
// LeNet's runs took 0.7 page faults each instead of under 0.01, the
// VGG-style CNN's 7.6 instead of 0.02).
func (m *Model) Time(ctx context.Context, x *tensor.Tensor, warmup, runs int) (*Timing, error) {
	if runs < 1 {
		return nil, fmt.Errorf("intengine: %d timed runs; want at least 1: %w", runs, ErrConfig)
	}
	runtime.GC()
	for i := 0; i < warmup; i++ {
		if _, err := m.Run(ctx, x); err != nil {
			return nil, err
		}
	}
	total := make([]time.Duration, runs)
	for i := range total {
		t0 := time.Now()
		if _, err := m.Run(ctx, x); err != nil {
			return nil, err
		}
		total[i] = time.Since(t0)
	}
	t := &Timing{Batch: x.Shape[0], Runs: runs}
	slices.Sort(total)
	t.Median, t.Min, t.Max = median(total), total[0], total[runs-1]

	n := x.Shape[0]
	ws := m.getWorkspace(x)
	defer m.putWorkspace(ws)
	per := make([][]time.Duration, len(m.plan.steps))
	timed := make([]time.Duration, len(m.plan.steps))
	for r := 0; r < runs; r++ {
		if err := m.exec(ctx, ws, n, timed); err != nil {
			return nil, err
		}
		for i, d := range timed {
			per[i] = append(per[i], d)
		}
	}
	for i, s := range m.plan.steps {
		node, op := s.describe()
		slices.Sort(per[i])
		t.Steps = append(t.Steps, StepTiming{Node: node, Op: op, Median: median(per[i])})
	}
	return t, nil
}

func median(sorted []time.Duration) time.Duration {
	n := len(sorted)
	if n%2 == 1 {
		return sorted[n/2]
	}
	return (sorted[n/2-1] + sorted[n/2]) / 2
}
