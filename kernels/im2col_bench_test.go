package kernels

import (
	"runtime"
	"testing"
)

// BenchmarkIm2Col measures the patch-matrix construction on LeNet- and
// VGG-style layers, reporting output bytes written per second of wall clock (MB/s) and
// of this thread's CPU time (GB/s-cpu), and CPU nanoseconds per call.
func BenchmarkIm2Col(b *testing.B) {
	shapes := []struct {
		name string
		s    ConvShape
	}{
		{"lenet1_1x28x28_k5p2", ConvShape{C: 1, H: 28, W: 28, KH: 5, KW: 5, PadTop: 2, PadLeft: 2, PadBottom: 2, PadRight: 2}},
		{"lenet2_6x14x14_k5", ConvShape{C: 6, H: 14, W: 14, KH: 5, KW: 5}},
		{"vgg_64x32x32_k3p1", ConvShape{C: 64, H: 32, W: 32, KH: 3, KW: 3, PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1}},
		{"s2d2_16x33x33_k3p2", ConvShape{C: 16, H: 33, W: 33, KH: 3, KW: 3, StrideH: 2, StrideW: 2, DilationH: 2, DilationW: 2, PadTop: 2, PadLeft: 2, PadBottom: 2, PadRight: 2}},
	}
	for _, sh := range shapes {
		b.Run(sh.name, func(b *testing.B) {
			s := sh.s
			oh, ow, err := s.Out()
			if err != nil {
				b.Fatal(err)
			}
			src := make([]uint8, s.C*s.H*s.W)
			for i := range src {
				src[i] = uint8(i * 7)
			}
			dst := make([]uint8, oh*ow*s.C*s.KH*s.KW)
			b.SetBytes(int64(len(dst)))
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			cpu0, ok0 := threadCPU()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if err := Im2Col(dst, src, s, 3); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			if cpu1, ok := threadCPU(); ok && ok0 && cpu1 > cpu0 {
				b.ReportMetric(float64(int64(len(dst))*int64(b.N))/float64((cpu1-cpu0).Nanoseconds()), "GB/s-cpu")
				b.ReportMetric(float64((cpu1-cpu0).Nanoseconds())/float64(b.N), "ns-cpu/op")
			}
		})
	}
}
