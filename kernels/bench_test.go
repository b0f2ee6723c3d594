package kernels

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"
)

// BenchmarkGEMM measures one-thread GEMM throughput at n^3 per weight bit
// width and reports GOPS counting 2 operations per multiply-accumulate
// (packing of the activations included, weight packing excluded).
func BenchmarkGEMM(b *testing.B) {
	for _, bits := range allBits {
		for _, size := range []int{256, 512, 1024} {
			b.Run(fmt.Sprintf("bits=%s/%d", bitsName(bits), size), func(b *testing.B) {
				benchGEMM(b, bits, size, size, size, 1)
			})
		}
	}
}

func benchGEMM(b *testing.B, bits, m, n, k, threads int) {
	rng := rand.New(rand.NewPCG(11, 12))
	a := make([]uint8, m*k)
	for i := range a {
		a[i] = uint8(rng.IntN(256))
	}
	pw, err := packAny(randWeights(rng, n, k, bits), n, k, bits)
	if err != nil {
		b.Fatal(err)
	}
	dst := make([]int32, m*n)
	opt := Options{Threads: threads}
	measure(b, 2*float64(m)*float64(n)*float64(k), threads == 1, func() error {
		return GEMM(dst, a, m, k, 128, pw, opt)
	})
}

// measure runs f b.N times and reports GOPS (ops per call) over the wall
// clock and, when cpu is set (one thread), over this thread's CPU time: on a
// shared machine the wall clock includes time other processes held the core,
// so work per CPU-second of this thread is the steadier figure.
func measure(b *testing.B, ops float64, cpu bool, f func() error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	cpu0, cpuOK := threadCPU()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := f(); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	total := ops * float64(b.N)
	b.ReportMetric(total/b.Elapsed().Seconds()/1e9, "GOPS")
	if cpu1, ok := threadCPU(); ok && cpuOK && cpu && cpu1 > cpu0 {
		b.ReportMetric(total/(cpu1-cpu0).Seconds()/1e9, "GOPS-cpu")
	}
}

// BenchmarkPackA measures the per-call activation packing at 1024 x 1024.
func BenchmarkPackA(b *testing.B) {
	const m, k = 1024, 1024
	a := make([]uint8, m*k)
	kpad := (k + 3) &^ 3
	b.Run("int16", func(b *testing.B) {
		dst := make([]int16, kpad*tileM)
		for i := 0; i < b.N; i++ {
			for t := 0; t < m/tileM; t++ {
				packA16(dst, a, m, k, t*tileM, 7)
			}
		}
	})
	b.Run("int8", func(b *testing.B) {
		dst := make([]uint8, kpad*tileM)
		for i := 0; i < b.N; i++ {
			for t := 0; t < m/tileM; t++ {
				packA8(dst, a, m, k, t*tileM)
			}
		}
	})
}

// BenchmarkGEMMRequant measures the fused path (bias, per-channel dyadic
// requantization to uint8) at 512^3, one thread.
func BenchmarkGEMMRequant(b *testing.B) {
	const size = 512
	for _, bits := range allBits {
		b.Run(fmt.Sprintf("bits=%s/%d", bitsName(bits), size), func(b *testing.B) {
			rng := rand.New(rand.NewPCG(13, 14))
			a := make([]uint8, size*size)
			for i := range a {
				a[i] = uint8(rng.IntN(256))
			}
			pw, err := packAny(randWeights(rng, size, size, bits), size, size, bits)
			if err != nil {
				b.Fatal(err)
			}
			rq := &Requant{Bias: make([]int32, size), Mult: make([]int32, size), Shift: make([]int, size), Zero: 7, Lo: 7, Hi: 255}
			for i := range rq.Mult {
				rq.Mult[i], rq.Shift[i] = 1<<30+int32(i), 40
			}
			dst := make([]uint8, size*size)
			measure(b, 2*size*size*size, true, func() error {
				return GEMMRequant(dst, a, size, size, 128, pw, rq, Options{})
			})
		})
	}
}

// BenchmarkGEMMThreads measures the split over output tiles at 1024^3 with
// two goroutines (wall-clock GOPS; the machine has two cores).
func BenchmarkGEMMThreads(b *testing.B) {
	for _, bits := range []int{8, 1} {
		b.Run(fmt.Sprintf("bits=%s/threads=2/1024", bitsName(bits)), func(b *testing.B) {
			benchGEMM(b, bits, 1024, 1024, 1024, 2)
		})
	}
}
