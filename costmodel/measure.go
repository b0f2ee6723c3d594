package costmodel

import (
	"context"
	"fmt"
	"math/rand/v2"
	"runtime"
	"runtime/metrics"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"mpsearch/kernels"
)

// Clock selects how Measure times a call.
type Clock int

const (
	// ClockAuto uses ClockThreadCPU when Threads is 1 and the system
	// provides per-thread CPU time, else ClockWall.
	ClockAuto Clock = iota
	// ClockWall is the monotonic wall clock: the latency a user sees, which
	// on a shared machine includes the time other processes held the core.
	ClockWall
	// ClockThreadCPU is the CPU time of the measuring thread (Linux
	// CLOCK_THREAD_CPUTIME_ID): the latency on an otherwise idle core, and
	// the steadier figure on a loaded machine. Only valid with one thread,
	// since the kernels then run on the calling goroutine.
	ClockThreadCPU
)

// String returns the name ParseClock accepts.
func (c Clock) String() string {
	switch c {
	case ClockAuto:
		return "auto"
	case ClockWall:
		return "wall"
	case ClockThreadCPU:
		return "thread-cpu"
	}
	return fmt.Sprintf("Clock(%d)", int(c))
}

// ParseClock parses "auto", "wall" or "thread-cpu" (also "cpu").
func ParseClock(s string) (Clock, error) {
	switch s {
	case "auto", "":
		return ClockAuto, nil
	case "wall":
		return ClockWall, nil
	case "thread-cpu", "cpu":
		return ClockThreadCPU, nil
	}
	return 0, fmt.Errorf("costmodel: unknown clock %q; want auto, wall or thread-cpu", s)
}

// MeasureOptions tunes Measure and MeasureModel. The zero value measures
// batch 1 on one thread with the defaults below.
type MeasureOptions struct {
	Batch   int // samples per call; 0 means 1
	Threads int // kernels.Options.Threads; 0 means 1
	// Repeats is the number of timed samples per layer and bit width; 0
	// means 9. Warmup is the least number of untimed calls before them,
	// which also last at least MinSample; 0 means 2, negative means none.
	Repeats, Warmup int
	// MinSample is the shortest timed sample: a sample repeats the call
	// until it lasts at least this long and reports the mean per call, so
	// that microsecond layers are timed above the clock's resolution. 0
	// means 2ms.
	MinSample time.Duration
	Clock     Clock
	// Cold times every call alone after reading a buffer larger than the
	// last-level cache (EvictBytes), so that the layer's weights and inputs
	// come from memory, as in a whole-model pass whose other layers have
	// evicted them: Timing.Calls is then 1 and MinSample is ignored for the
	// samples. Measure then reports both figures (BitCost.Latency hot,
	// BitCost.Cold cold); MeasureModel times one cold pass per sample.
	Cold bool
	// Seed fixes the random weights and activations.
	Seed uint64
	// Progress, if set, is called after each layer and bit width.
	Progress func(done, total int)
}

func (o MeasureOptions) norm() (MeasureOptions, error) {
	o.Batch = max(o.Batch, 1)
	o.Threads = max(o.Threads, 1)
	if o.Repeats == 0 {
		o.Repeats = 9
	}
	if o.Repeats < 0 {
		return o, fmt.Errorf("costmodel: %d repeats; want at least 1", o.Repeats)
	}
	switch {
	case o.Warmup == 0:
		o.Warmup = 2
	case o.Warmup < 0:
		o.Warmup = 0
	}
	if o.MinSample <= 0 {
		o.MinSample = 2 * time.Millisecond
	}
	_, cpuOK := threadCPU()
	switch o.Clock {
	case ClockAuto:
		o.Clock = ClockWall
		if o.Threads == 1 && cpuOK {
			o.Clock = ClockThreadCPU
		}
	case ClockThreadCPU:
		if o.Threads != 1 {
			return o, fmt.Errorf("costmodel: the thread-cpu clock needs one thread (got %d); use the wall clock", o.Threads)
		}
		if !cpuOK {
			return o, fmt.Errorf("costmodel: this system has no per-thread CPU clock; use the wall clock")
		}
	case ClockWall:
	default:
		return o, fmt.Errorf("costmodel: unknown clock %d", int(o.Clock))
	}
	return o, nil
}

// Timing summarizes the timed samples of one call.
type Timing struct {
	Median time.Duration
	// Q1 and Q3 are the quartiles (interquartile range Q3-Q1), Min and Max
	// the extremes of the samples.
	Q1, Q3, Min, Max time.Duration
	Samples          int // timed samples
	Calls            int // calls per sample
}

// BitCost is the cost of a layer at one weight bit width.
type BitCost struct {
	Bits int
	// Latency is one run of the layer's step in the integer engine for
	// the batch (all groups; im2col, GEMM, requantization and the move to
	// the output layout, or the depthwise kernel, as the engine runs it).
	Latency Timing
	// Cold is the same run after the caches were flushed (see
	// MeasureOptions.Cold); zero unless Cold was set.
	Cold      Timing
	SizeBytes int64   // see LayerShape.SizeBytes
	BOPs      float64 // per sample, see LayerShape.BOPs
}

// LayerCost is what Measure reports for one layer.
type LayerCost struct {
	Shape LayerShape
	Batch int
	Costs []BitCost // one per requested bit width, in order
}

// Measure times every layer at every bit width on the integer engine
// itself: each layer is compiled by package intengine in a small program
// that gives it the path of its shape (newLayerProgram), with random
// weights and inputs, and its step is timed alone
// (intengine.Model.LayerRunner). It reports the median and spread of its
// latency. Bit widths sharing a kernel (see KernelBits) are timed once.
func Measure(ctx context.Context, shapes []LayerShape, bits []int, opt MeasureOptions) ([]LayerCost, error) {
	opt, err := opt.norm()
	if err != nil {
		return nil, err
	}
	if len(bits) == 0 {
		return nil, fmt.Errorf("%w: no bit widths to measure", ErrBits)
	}
	for _, b := range bits {
		if _, err := KernelBits(b); err != nil {
			return nil, err
		}
	}
	for _, s := range shapes {
		if err := s.Validate(); err != nil {
			return nil, err
		}
	}
	unlock := lockThread(opt.Clock)
	defer unlock()
	rng := rand.New(rand.NewPCG(opt.Seed, 0x636f73746d6f64))
	out := make([]LayerCost, len(shapes))
	done, total := 0, len(shapes)*len(bits)
	for i, s := range shapes {
		lc := LayerCost{Shape: s, Batch: opt.Batch, Costs: make([]BitCost, len(bits))}
		byKernel := map[int][2]Timing{}
		for j, b := range bits {
			kb, _ := KernelBits(b)
			t, ok := byKernel[kb]
			if !ok {
				p, err := newLayerProgram(ctx, s, kb, opt.Batch, opt.Threads, rng)
				if err != nil {
					return nil, err
				}
				t, err = timeHotCold(ctx, p.run, opt)
				p.release()
				if err != nil {
					return nil, fmt.Errorf("costmodel: layer %q at %d bits: %w", s.Name, b, err)
				}
				byKernel[kb] = t
			}
			lc.Costs[j] = BitCost{Bits: b, Latency: t[0], Cold: t[1], SizeBytes: s.SizeBytes(b), BOPs: s.BOPs(b)}
			done++
			if opt.Progress != nil {
				opt.Progress(done, total)
			}
		}
		out[i] = lc
	}
	return out, nil
}

// MeasureModel times the layers' engine steps (as Measure does) run one
// after another, layer i at bits[i], as one call: the latency of the
// model's quantized layers without the operations between them (pooling,
// additions), which cost no MACs.
func MeasureModel(ctx context.Context, shapes []LayerShape, bits []int, opt MeasureOptions) (Timing, error) {
	opt, err := opt.norm()
	if err != nil {
		return Timing{}, err
	}
	if len(bits) != len(shapes) {
		return Timing{}, fmt.Errorf("%w: %d bit widths for %d layers", ErrBits, len(bits), len(shapes))
	}
	unlock := lockThread(opt.Clock)
	defer unlock()
	rng := rand.New(rand.NewPCG(opt.Seed, 0x6d6f64656c))
	progs := make([]*layerProgram, 0, len(shapes))
	defer func() {
		for _, p := range progs {
			p.release()
		}
	}()
	for i, s := range shapes {
		if err := s.Validate(); err != nil {
			return Timing{}, err
		}
		kb, err := KernelBits(bits[i])
		if err != nil {
			return Timing{}, fmt.Errorf("layer %q: %w", s.Name, err)
		}
		p, err := newLayerProgram(ctx, s, kb, opt.Batch, opt.Threads, rng)
		if err != nil {
			return Timing{}, err
		}
		progs = append(progs, p)
	}
	return timeCall(ctx, func() error {
		for _, p := range progs {
			if err := p.run(); err != nil {
				return err
			}
		}
		return nil
	}, opt)
}

// timeHotCold times f hot and, when opt.Cold is set, cold (the second
// Timing is zero otherwise).
func timeHotCold(ctx context.Context, f func() error, opt MeasureOptions) ([2]Timing, error) {
	var t [2]Timing
	hot := opt
	hot.Cold = false
	var err error
	if t[0], err = timeCall(ctx, f, hot); err != nil || !opt.Cold {
		return t, err
	}
	t[1], err = timeCall(ctx, f, opt)
	return t, err
}

// EvictBytes is the buffer cold measurements read between calls: larger
// than the last-level cache of current CPUs (32 MiB per Zen 5 CCD, 96 MiB
// with 3D V-Cache, about 2 MiB per core on Intel servers) several times
// over, so that no line of the previous call survives.
const EvictBytes = 256 << 20

var (
	evictOnce sync.Once
	evictBuf  []uint64
	// evictSink keeps the eviction reads from being optimized away.
	evictSink atomic.Uint64
)

// evictCaches reads EvictBytes of memory, one word per 64-byte line.
// Reading, not writing, leaves no dirty lines whose write-back would load
// the memory bus during the timed call.
func evictCaches() {
	evictOnce.Do(func() {
		evictBuf = make([]uint64, EvictBytes/8)
		for i := range evictBuf {
			evictBuf[i] = uint64(i)
		}
	})
	var s uint64
	for i := 0; i < len(evictBuf); i += 8 {
		s += evictBuf[i]
	}
	evictSink.Add(s)
}

// lockThread pins the goroutine to its OS thread while a per-thread clock
// is read.
func lockThread(c Clock) func() {
	if c != ClockThreadCPU {
		return func() {}
	}
	runtime.LockOSThread()
	return runtime.UnlockOSThread
}

// wallBase anchors wall-clock readings; time.Since keeps the monotonic
// clock, immune to wall-clock steps.
var wallBase = time.Now()

// settleHeap collects the heap before a measurement, so that the calls
// timed next allocate as they do in a running inference: from memory the
// heap has already used. The kernels allocate a little per call (about
// 1.1 KB and 5 objects for a GEMMRequant); after a measurement that held
// large buffers (a sweep's big shapes, the 2 x 64 MB copy) the collector's
// heap goal is hundreds of MB, so without a collection those allocations
// land on pages never touched, and each page fault (about 10 µs in the
// development VM) is charged to the call: the smallest GEMMRequant then
// took about 4 µs instead of 0.6 µs. An inference runs in a steady heap
// whose freed memory is reused, and pays none of that.
func settleHeap() { runtime.GC() }

// steadyCycles is the number of collections a call that allocates runs
// through in its warm-up after settleHeap, within steadyLimit times
// MinSample. A forced collection of a small heap sets the runtime's
// scavenger to return nearly all free memory to the OS, so the next few
// megabytes of allocations fault pages in again (measured: about one
// fault per call of three small GEMMs for 30 ms); the collections that
// follow, triggered by the allocations themselves, restore the steady
// state of a running inference.
const (
	steadyCycles = 2
	steadyLimit  = 10
)

// gcCycles returns the number of completed collections.
func gcCycles() uint64 {
	s := [...]metrics.Sample{{Name: "/gc/cycles/total:gc-cycles"}}
	metrics.Read(s[:])
	return s[0].Value.Uint64()
}

// heapAllocs returns the number of heap objects allocated so far.
func heapAllocs() uint64 {
	s := [...]metrics.Sample{{Name: "/gc/heap/allocs:objects"}}
	metrics.Read(s[:])
	return s[0].Value.Uint64()
}

// clockOf returns the reading of clock c: the calling thread's CPU time
// (ClockThreadCPU; the caller has locked its OS thread) or the wall time
// since wallBase.
func clockOf(c Clock) func() time.Duration {
	if c == ClockThreadCPU {
		return func() time.Duration {
			t, _ := threadCPU()
			return t
		}
	}
	return func() time.Duration { return time.Since(wallBase) }
}

// timeCall collects the heap (settleHeap), runs f Warmup times and for at
// least MinSample (then, if f allocates, until the collector has run
// steadyCycles times), then Repeats samples of enough calls to last
// MinSample each, and summarizes the per-call times.
func timeCall(ctx context.Context, f func() error, opt MeasureOptions) (Timing, error) {
	clock := clockOf(opt.Clock)
	settleHeap()
	// Warm up for Warmup calls and at least MinSample, so that buffers are
	// faulted in and caches and branch predictors are in their steady
	// state.
	w0, c0, a0 := clock(), gcCycles(), heapAllocs()
	for i := 0; i < opt.Warmup || (opt.Warmup > 0 && clock()-w0 < opt.MinSample); i++ {
		if err := f(); err != nil {
			return Timing{}, err
		}
	}
	if opt.Warmup > 0 && heapAllocs() > a0 {
		for gcCycles() < c0+steadyCycles && clock()-w0 < steadyLimit*opt.MinSample {
			if err := f(); err != nil {
				return Timing{}, err
			}
		}
	}
	if opt.Cold {
		return timeColdCalls(ctx, f, clock, opt.Repeats)
	}
	// Calibrate the number of calls per sample.
	calls := 1
	for {
		t0 := clock()
		for i := 0; i < calls; i++ {
			if err := f(); err != nil {
				return Timing{}, err
			}
		}
		el := clock() - t0
		if el >= opt.MinSample/4 || calls >= 1<<20 {
			if el > 0 {
				calls = int(min(float64(calls)*float64(opt.MinSample)/float64(el)+0.5, 1<<20))
			}
			calls = max(calls, 1)
			break
		}
		calls *= 8
	}
	if err := ctx.Err(); err != nil {
		return Timing{}, err
	}
	samples := make([]time.Duration, opt.Repeats)
	for r := range samples {
		t0 := clock()
		for i := 0; i < calls; i++ {
			if err := f(); err != nil {
				return Timing{}, err
			}
		}
		samples[r] = (clock() - t0) / time.Duration(calls)
		if err := ctx.Err(); err != nil {
			return Timing{}, err
		}
	}
	t := summarize(samples)
	t.Calls = calls
	return t, nil
}

// timeColdCalls times repeats single calls of f, each after evictCaches.
func timeColdCalls(ctx context.Context, f func() error, clock func() time.Duration, repeats int) (Timing, error) {
	samples, err := timeSingleCalls(ctx, f, func() error { evictCaches(); return nil }, clock, repeats)
	if err != nil {
		return Timing{}, err
	}
	t := summarize(samples)
	t.Calls = 1
	return t, nil
}

// timeSingleCalls times n single calls of f on clock, each after an
// untimed call of before (nil: none).
func timeSingleCalls(ctx context.Context, f, before func() error, clock func() time.Duration, n int) ([]time.Duration, error) {
	samples := make([]time.Duration, n)
	for r := range samples {
		if before != nil {
			if err := before(); err != nil {
				return nil, err
			}
		}
		t0 := clock()
		if err := f(); err != nil {
			return nil, err
		}
		samples[r] = clock() - t0
		if err := ctx.Err(); err != nil {
			return nil, err
		}
	}
	return samples, nil
}

// summarize returns the median, quartiles (linear interpolation between
// order statistics) and extremes of d.
func summarize(d []time.Duration) Timing {
	s := slices.Clone(d)
	slices.Sort(s)
	q := func(p float64) time.Duration {
		x := p * float64(len(s)-1)
		i := int(x)
		if i+1 >= len(s) {
			return s[len(s)-1]
		}
		f := x - float64(i)
		return s[i] + time.Duration(f*float64(s[i+1]-s[i])+0.5)
	}
	return Timing{Median: q(0.5), Q1: q(0.25), Q3: q(0.75), Min: s[0], Max: s[len(s)-1], Samples: len(s)}
}

// runner holds the buffers and packed weights of one kernels.GEMMRequant
// call (the engine's Gemm step) at one kernel bit width, for the profile's
// sweeps.
type runner struct {
	rows, k int
	opt     kernels.Options
	zero    uint8
	w       *kernels.Weights
	rq      *kernels.Requant
	src     []uint8 // rows x K
	out     []uint8 // rows x N
}

func newRunner(rows, k, n, kbits, threads int, rng *rand.Rand) (*runner, error) {
	r := &runner{rows: rows, k: k, opt: kernels.Options{Threads: threads, Scratch: &kernels.Scratch{}}, zero: uint8(rng.IntN(16))}
	lo, hi := weightRange(kbits)
	w := make([]int8, n*k)
	for i := range w {
		v := lo + rng.IntN(hi-lo+1)
		if kbits == 1 && v == 0 {
			v = 1
		}
		w[i] = int8(v)
	}
	var err error
	if r.w, err = kernels.PackWeights(w, n, k, kbits); err != nil {
		return nil, fmt.Errorf("costmodel: %d x %d x %d GEMM: %w", rows, k, n, err)
	}
	r.rq = &kernels.Requant{Bias: make([]int32, n), Mult: make([]int32, n), Shift: make([]int, n), Zero: int32(r.zero), Lo: r.zero, Hi: 255}
	for i := range r.rq.Mult {
		r.rq.Bias[i] = int32(rng.IntN(1<<12)) - 1<<11
		r.rq.Mult[i] = 1<<30 + int32(rng.IntN(1<<29))
		r.rq.Shift[i] = 40
	}
	if err := r.rq.Freeze(n); err != nil { // as the engine's layers are
		return nil, fmt.Errorf("costmodel: %d x %d x %d GEMM: %w", rows, k, n, err)
	}
	r.src = randBytes(rng, rows*k)
	r.out = make([]uint8, rows*n)
	return r, nil
}

func randBytes(rng *rand.Rand, n int) []uint8 {
	b := make([]uint8, n)
	for i := range b {
		b[i] = uint8(rng.IntN(256))
	}
	return b
}

// weightRange is the value range of random weights for a kernel width.
func weightRange(kbits int) (lo, hi int) {
	switch kbits {
	case 8:
		return -127, 127
	case 4:
		return -7, 7
	case 2:
		return -1, 1
	}
	return -1, 1 // binary: zeros are replaced by +1
}

// run executes the GEMM once.
func (r *runner) run() error {
	return kernels.GEMMRequant(r.out, r.src, r.rows, r.k, r.zero, r.w, r.rq, r.opt)
}

// Time times f as Measure times a layer (opt.Clock, a collected heap,
// warm-up, opt.Repeats samples of at least opt.MinSample, hot and, with
// opt.Cold, cold): for comparing predictions with a whole run of the
// integer engine on the clock of a profile. The second Timing is zero
// unless opt.Cold is set.
func Time(ctx context.Context, f func() error, opt MeasureOptions) ([2]Timing, error) {
	opt, err := opt.norm()
	if err != nil {
		return [2]Timing{}, err
	}
	unlock := lockThread(opt.Clock)
	defer unlock()
	return timeHotCold(ctx, f, opt)
}
