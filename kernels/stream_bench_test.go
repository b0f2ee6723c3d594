package kernels

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"strconv"
	"testing"
	"time"
)

// BenchmarkGEMMStream measures one-thread GEMMStream at m = 1, 4 and 16
// rows against 4096 x 4096 weights, per bit width, on the kernels the
// flags select, next to the tile GEMM on the same product (GOPS counts 2
// operations per multiply-accumulate).
func BenchmarkGEMMStream(b *testing.B) {
	const n, k = 4096, 4096
	rng := rand.New(rand.NewPCG(41, 42))
	for _, bits := range []int{8, 4, 2, 1} {
		w := randWeights(rng, n, k, bits)
		sw, err := PackStream(w, n, k, bits)
		if err != nil {
			b.Fatal(err)
		}
		gw, err := PackWeights(w, n, k, bits)
		if err != nil {
			b.Fatal(err)
		}
		for _, m := range []int{1, 4, 16} {
			a := make([]uint8, m*k)
			for i := range a {
				a[i] = uint8(rng.IntN(256))
			}
			dst := make([]int32, m*n)
			b.Run(fmt.Sprintf("bits=%d/m=%d/stream", bits, m), func(b *testing.B) {
				measure(b, 2*float64(m*n*k), true, func() error {
					return GEMMStream(dst, a, m, k, 128, sw, Options{})
				})
			})
			b.Run(fmt.Sprintf("bits=%d/m=%d/gemm", bits, m), func(b *testing.B) {
				measure(b, 2*float64(m*n*k), true, func() error {
					return GEMM(dst, a, m, k, 128, gw, Options{})
				})
			})
		}
	}
}

// BenchmarkStreamRatios times, interleaved in one run, a product of one
// activation row with K x N weights (STREAM_K, STREAM_N, default 8192 x
// 8192: 64 MiB of int8 weights) for the tile GEMM with 8-bit weights and
// GEMMStream at 8, 4, 2 and 1 bits, on every stream kernel family this CPU
// has. Each repetition (STREAM_REPS, default 7) runs every configuration
// three times in a row ("hot": the last call finds what the previous ones
// left in the caches) and once after touching a 256 MiB buffer ("cold");
// the minimum over repetitions of the thread CPU time is reported, and the
// ratios to the 8-bit stream kernel of the same family. Run with
// -benchtime=1x.
func BenchmarkStreamRatios(b *testing.B) {
	n, k, reps := envInt("STREAM_N", 8192), envInt("STREAM_K", 8192), envInt("STREAM_REPS", 7)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	rng := rand.New(rand.NewPCG(43, 44))
	a := make([]uint8, k)
	for i := range a {
		a[i] = uint8(rng.IntN(256))
	}
	dst := make([]int32, n)
	type cfg struct {
		name string
		run  func()
	}
	var cfgs []cfg
	w8 := randWeights(rng, n, k, 8)
	gw, err := PackWeights(w8, n, k, 8)
	if err != nil {
		b.Fatal(err)
	}
	cfgs = append(cfgs, cfg{"gemm-int8", func() { _ = GEMM(dst, a, 1, k, 128, gw, Options{}) }})
	var paths []streamPath
	for _, p := range streamPaths() {
		if p != streamGo && p != streamGoAVX2 {
			paths = append(paths, p)
		}
	}
	for _, bits := range []int{8, 4, 2, 1} {
		w := w8
		if bits != 8 {
			w = randWeights(rng, n, k, bits)
		}
		sw, err := PackStream(w, n, k, bits)
		if err != nil {
			b.Fatal(err)
		}
		for _, p := range paths {
			cfgs = append(cfgs, cfg{fmt.Sprintf("%s-%d", p, bits), func() {
				runStream(a, 1, 128, sw, 1, p, func(p0, gp int, c []int32) { copy(dst[p0*tileN:], c[:min(gp*tileN, n-p0*tileN)]) })
			}})
		}
	}
	evict := make([]byte, 256<<20)
	hot := make([]time.Duration, len(cfgs))
	cold := make([]time.Duration, len(cfgs))
	for i := range hot {
		hot[i], cold[i] = time.Hour, time.Hour
	}
	cpuTime := func(f func()) time.Duration {
		t0, _ := threadCPU()
		f()
		t1, _ := threadCPU()
		return t1 - t0
	}
	b.ResetTimer()
	for r := 0; r < reps; r++ {
		for j := range cfgs {
			c := cfgs[(j+r)%len(cfgs)] // rotate the order between repetitions
			i := (j + r) % len(cfgs)
			for range 3 {
				hot[i] = min(hot[i], cpuTime(c.run))
			}
			for x := 0; x < len(evict); x += 64 {
				evict[x]++
			}
			cold[i] = min(cold[i], cpuTime(c.run))
		}
	}
	b.StopTimer()
	idx := map[string]int{}
	for i, c := range cfgs {
		idx[c.name] = i
		b.ReportMetric(float64(hot[i].Microseconds()), c.name+"-hot-us")
		b.ReportMetric(float64(cold[i].Microseconds()), c.name+"-cold-us")
	}
	for _, p := range paths {
		base := idx[fmt.Sprintf("%s-8", p)]
		for _, bits := range []int{4, 2, 1} {
			i := idx[fmt.Sprintf("%s-%d", p, bits)]
			b.ReportMetric(float64(hot[base])/float64(hot[i]), fmt.Sprintf("%s-%dvs8-hot-x", p, bits))
			b.ReportMetric(float64(cold[base])/float64(cold[i]), fmt.Sprintf("%s-%dvs8-cold-x", p, bits))
		}
		b.ReportMetric(float64(cold[0])/float64(cold[base]), fmt.Sprintf("%s-8vsgemm-cold-x", p))
	}
}

// BenchmarkStreamBandwidth measures how fast the 8-bit stream kernels
// read their weights at m = 1 (GB/s of packed weight bytes, thread CPU
// time; STREAM_K x STREAM_N, default 8192 x 8192: 64 MiB) next to a plain
// read of a buffer of the same size (bytes.Equal of its two equal
// halves: the runtime's vector compare, two sequential streams, about
// 60 GB/s from L2 on Zen 5, so that memory, not the loop, sets its pace at
// 64 MiB), interleaved in one run. Each repetition
// (STREAM_REPS, default 9) times every configuration hot (the third of
// three calls in a row) and cold (one call after reading, not writing, a
// 256 MiB buffer, so that no dirty lines are written back during the
// call); the medians are reported, and for each kernel family the median
// over repetitions of its ratio to the read in the same repetition: at
// 1.0 the kernel moves the weights as fast as this core reads memory, and
// only fewer bytes (narrower weights) can make it faster. The AVX-512
// kernels read two groups of panels per pass (two streams);
// avx512-vnni-4streams is the same product four groups at a time
// (useStreamQuads, off by default) and avx512-vnni-1stream one group at a
// time; 4streams-vs-2streams is the median over repetitions of the ratio
// of the first two. Run with
// -benchtime=1x.
func BenchmarkStreamBandwidth(b *testing.B) {
	n, k, reps := envInt("STREAM_N", 8192), envInt("STREAM_K", 8192), envInt("STREAM_REPS", 9)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	rng := rand.New(rand.NewPCG(45, 46))
	a := make([]uint8, k)
	for i := range a {
		a[i] = uint8(rng.IntN(256))
	}
	dst := make([]int32, n)
	sw, err := PackStream(randWeights(rng, n, k, 8), n, k, 8)
	if err != nil {
		b.Fatal(err)
	}
	size := sw.PackedBytes()
	plain := bytes.Repeat([]byte{1}, size)
	type cfg struct {
		name string
		run  func()
	}
	cfgs := []cfg{{"read", func() {
		if !bytes.Equal(plain[:size/2], plain[size/2:]) {
			b.Fatal("the read buffer's halves differ")
		}
	}}}
	for _, p := range streamPaths() {
		if p == streamGo || p == streamGoAVX2 {
			continue
		}
		run := func() {
			runStream(a, 1, 128, sw, 1, p, func(p0, gp int, c []int32) { copy(dst[p0*tileN:], c[:min(gp*tileN, n-p0*tileN)]) })
		}
		cfgs = append(cfgs, cfg{p.String(), run})
		if p == streamAVX512 {
			quads := useStreamQuads
			cfgs = append(cfgs, cfg{p.String() + "-4streams", func() {
				useStreamQuads = true
				defer func() { useStreamQuads = quads }()
				run()
			}}, cfg{p.String() + "-1stream", func() {
				useStreamPairs, useStreamQuads = false, false
				defer func() { useStreamPairs, useStreamQuads = true, quads }()
				run()
			}})
		}
	}
	evict := make([]uint64, 256<<20/8)
	for i := range evict {
		evict[i] = uint64(i)
	}
	var sink uint64
	gbs := func(f func()) float64 {
		t0, _ := threadCPU()
		f()
		t1, _ := threadCPU()
		return float64(size) / float64((t1 - t0).Nanoseconds())
	}
	hot := make([][]float64, len(cfgs))
	cold := make([][]float64, len(cfgs))
	b.ResetTimer()
	for r := 0; r < reps; r++ {
		for j := range cfgs {
			i := (j + r) % len(cfgs) // rotate the order between repetitions
			cfgs[i].run()
			cfgs[i].run()
			hot[i] = append(hot[i], gbs(cfgs[i].run))
			for x := 0; x < len(evict); x += 8 {
				sink += evict[x]
			}
			cold[i] = append(cold[i], gbs(cfgs[i].run))
		}
	}
	b.StopTimer()
	if sink == 1 {
		b.Log("unlikely eviction sum")
	}
	median := func(xs []float64) float64 {
		s := slices.Clone(xs)
		slices.Sort(s)
		return s[len(s)/2]
	}
	ratio := func(x, y []float64) []float64 {
		out := make([]float64, len(x))
		for i := range x {
			out[i] = x[i] / y[i]
		}
		return out
	}
	// The four-stream 8-bit kernel against the default (two streams), per
	// repetition (interleaved A/B).
	for i, c := range cfgs {
		if c.name == streamAVX512.String()+"-4streams" {
			b.ReportMetric(median(ratio(hot[i], hot[i-1])), "4streams-vs-2streams-hot-x")
			b.ReportMetric(median(ratio(cold[i], cold[i-1])), "4streams-vs-2streams-cold-x")
		}
	}
	for i, c := range cfgs {
		b.ReportMetric(median(hot[i]), c.name+"-hot-GB/s")
		b.ReportMetric(median(cold[i]), c.name+"-cold-GB/s")
		if i > 0 {
			b.ReportMetric(median(ratio(hot[i], hot[0])), c.name+"-vs-read-hot-x")
			b.ReportMetric(median(ratio(cold[i], cold[0])), c.name+"-vs-read-cold-x")
		}
	}
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// BenchmarkStreamCrossover times GEMMStreamRequant against GEMMRequant
// (both with a Scratch, one thread, the kernels the flags select) on the
// same product for m = 1 to 16 rows, per bit width, at K x N = 1024 x 1024
// and 4096 x 4096 (STREAM_REPS repetitions, default 5, interleaved; the
// minimum thread CPU time of each), and reports the ratio tile / stream:
// above 1 the stream kernels are faster. The integer engine's choice of
// kernel by rows (intengine, streamMaxRows) follows these figures. Run
// with -benchtime=1x.
func BenchmarkStreamCrossover(b *testing.B) {
	reps := envInt("STREAM_REPS", 5)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	rng := rand.New(rand.NewPCG(51, 52))
	cpuTime := func(f func()) time.Duration {
		t0, _ := threadCPU()
		f()
		t1, _ := threadCPU()
		return t1 - t0
	}
	for _, size := range []int{1024, 4096} {
		n, k := size, size
		rq := randRequant(rng, n, false)
		for _, bits := range []int{8, 4, 2, 1} {
			w := randWeights(rng, n, k, bits)
			sw, err := PackStream(w, n, k, bits)
			if err != nil {
				b.Fatal(err)
			}
			gw, err := PackWeights(w, n, k, bits)
			if err != nil {
				b.Fatal(err)
			}
			var sc Scratch
			opt := Options{Scratch: &sc}
			for _, m := range []int{1, 2, 4, 6, 8, 12, 16} {
				a := make([]uint8, m*k)
				for i := range a {
					a[i] = uint8(rng.IntN(256))
				}
				dst := make([]uint8, m*n)
				st, gt := time.Hour, time.Hour
				for r := 0; r < reps; r++ {
					st = min(st, cpuTime(func() { _ = GEMMStreamRequant(dst, a, m, k, 128, sw, rq, opt) }))
					gt = min(gt, cpuTime(func() { _ = GEMMRequant(dst, a, m, k, 128, gw, rq, opt) }))
				}
				b.ReportMetric(float64(gt)/float64(st), fmt.Sprintf("k=n=%d/bits=%d/m=%d/tile-vs-stream-x", size, bits, m))
			}
		}
	}
}
