package dataset

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

// BenchmarkStreamMemory streams uint8 NPY files of 64, 512 and 2048 images
// of 3×224×224 in batches of 32 and reports the largest live heap seen
// while a batch is in use (peak-live-MiB, after a collection) against the
// whole set's float64 size (whole-MiB): the first stays at one batch (32
// images, 36.75 MiB as float64, and their bytes) whatever the count. `go test ./dataset -run '^$' -bench StreamMemory -benchtime 1x`
// (the process-level figure for eval is scripts/bench_eval_memory.sh).
func BenchmarkStreamMemory(b *testing.B) {
	const c, h, w, bs = 3, 224, 224, 32
	dir := b.TempDir()
	for _, n := range []int{64, 512, 2048} {
		raw := make([]byte, n*c*h*w)
		for i := range raw {
			raw[i] = byte(i * 7)
		}
		path := filepath.Join(dir, fmt.Sprintf("x%d.npy", n))
		writeFileB(b, path, npyBytes("|u1", false, []int{n, c, h, w}, raw))
		raw = nil
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			s, err := Open(path, Options{Mean: []float64{0.485, 0.456, 0.406}, Std: []float64{0.229, 0.224, 0.225}})
			if err != nil {
				b.Fatal(err)
			}
			var peak uint64
			for b.Loop() {
				bt, err := s.Batches()
				if err != nil {
					b.Fatal(err)
				}
				for {
					x, _, err := bt.Next(context.Background(), bs)
					if errors.Is(err, io.EOF) {
						break
					}
					if err != nil {
						b.Fatal(err)
					}
					runtime.GC()
					var ms runtime.MemStats
					runtime.ReadMemStats(&ms)
					peak = max(peak, ms.HeapAlloc)
					runtime.KeepAlive(x) // the batch in use counts
				}
				bt.Close()
			}
			b.ReportMetric(float64(peak)/(1<<20), "peak-live-MiB")
			b.ReportMetric(float64(n*c*h*w*8)/(1<<20), "whole-MiB")
		})
	}
}

func writeFileB(b *testing.B, path string, data []byte) {
	b.Helper()
	if err := os.WriteFile(path, data, 0o644); err != nil {
		b.Fatal(err)
	}
}
