package kernels

import (
	"fmt"
	"runtime"
	"testing"
)

// BenchmarkTile measures the micro-kernels alone on L1-resident data
// (K = 256), reporting multiply-accumulates per nanosecond of wall clock and
// of this thread's CPU time.
func BenchmarkTile(b *testing.B) {
	const k = 256
	a8 := make([]uint8, k*tileM)
	w8 := make([]int8, k*tileN)
	a16 := make([]int16, k*tileM)
	w16 := make([]int16, k*tileN)
	var c tile
	macs := float64(tileM * tileN * k)
	run := func(b *testing.B, f func()) {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		cpu0, ok0 := threadCPU()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			f()
		}
		b.StopTimer()
		b.ReportMetric(macs*float64(b.N)/float64(b.Elapsed().Nanoseconds()), "MAC/ns")
		if cpu1, ok := threadCPU(); ok && ok0 && cpu1 > cpu0 {
			b.ReportMetric(macs*float64(b.N)/float64((cpu1-cpu0).Nanoseconds()), "MAC/ns-cpu")
		}
	}
	b.Run("int8", func(b *testing.B) {
		run(b, func() { tile16(a16, w16, &c, k/2, false) })
	})
	if useVNNI {
		w4 := make([]int8, quadGroup*k*tileN)
		c4 := make([]tile, quadGroup)
		b.Run("vnni/panels=4", func(b *testing.B) {
			macs *= quadGroup
			defer func() { macs /= quadGroup }()
			run(b, func() { tilesQuad(a8, w4, k*tileN, c4, k/4, 0, nil) })
		})
		b.Run("vnni/panels=1", func(b *testing.B) {
			run(b, func() { tilesQuad(a8, w8, k*tileN, c4[:1], k/4, 0, nil) })
		})
	}
	for _, g := range []int{8, 32, 64} {
		b.Run(fmt.Sprintf("lowbit/group=%d", g), func(b *testing.B) {
			run(b, func() { tile8(a8, w8, &c, k/4, g, false) })
		})
	}
}

// BenchmarkRequantTile times the requantization epilogue on full 6 x 16
// tiles (the path the flags select), per output value.
func BenchmarkRequantTile(b *testing.B) {
	var c tile
	var prm rqParams
	for i := range c {
		c[i] = int32(i*7919) - 300000
	}
	for j := 0; j < tileN; j++ {
		prm.set(j, int32(j*100), 1<<30+int32(j), 40)
	}
	for j := range 4 {
		prm.lo[j], prm.hi[j], prm.zero[j] = 0, 255, 128
	}
	dst := make([]uint8, 64*tileM)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		requantTile(dst, 64, &c, tileM, tileN, &prm)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*tileM*tileN), "ns/value")
}
