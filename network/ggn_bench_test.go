package network

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"

	"mpsearch/dataset"
	"mpsearch/onnx"
)

// ggnTorchRel bounds the relative difference between our float64 traces and
// PyTorch's float32 ones (float32 sums over ~1e5-value gradients: about
// 1e-6 per value, far below this).
const ggnTorchRel = 1e-3

// BenchmarkGGNTracesVGG times exact GGN traces of the VGG-style
// Fashion-MNIST model (testdata/vgg-fmnist) on the first
// MPSEARCH_GGN_IMAGES (default 1024) test images in batches of 256, one
// thread: the batched algorithm on all images, the reference per-sample
// algorithm on the first MPSEARCH_GGN_OLD_IMAGES (default 64, scaled
// linearly to all images: it costs the same per image), and PyTorch's
// exact GGN (scripts/bench_ggn_torch.py, float32) on the same images in
// the same run. It checks that our traces equal PyTorch's. Wall and CPU
// seconds are reported (CPU time is the fair figure on a loaded machine:
// both run one thread).
//
//	go test ./network/ -run '^$' -bench GGNTracesVGG -benchtime 1x -timeout 60m
func BenchmarkGGNTracesVGG(b *testing.B) {
	const dataDir = "/usr/share/datasets/fashion-mnist/"
	if _, err := os.Stat(dataDir); err != nil {
		b.Skip("no Fashion-MNIST at " + dataDir)
	}
	images := envInt("MPSEARCH_GGN_IMAGES", 1024)
	old := envInt("MPSEARCH_GGN_OLD_IMAGES", 64)
	m, err := onnx.Load("../testdata/vgg-fmnist/model.onnx")
	if err != nil {
		b.Fatal(err)
	}
	net, err := Build(m, Options{})
	if err != nil {
		b.Fatal(err)
	}
	ds, err := dataset.Load(dataDir+"t10k-images-idx3-ubyte.gz", dataset.Options{Mean: []float64{0.2860}, Std: []float64{0.3530}, Limit: images})
	if err != nil {
		b.Fatal(err)
	}
	SetBLASThreads(1)
	ctx := context.Background()
	for it := 0; it < b.N; it++ {
		t0, c0 := time.Now(), cpuTime()
		traces := make([]float64, len(net.Layers()))
		for bi := 0; bi < ds.NumBatches(256); bi++ {
			x, _ := ds.Batch(bi, 256)
			p, err := net.Forward(ctx, x)
			if err != nil {
				b.Fatal(err)
			}
			tr, err := p.GGNTraces(ctx, float64(ds.Len()))
			if err != nil {
				b.Fatal(err)
			}
			for i, v := range tr {
				traces[i] += v
			}
		}
		fast, fastCPU := time.Since(t0).Seconds(), cpuTime()-c0

		t0, c0 = time.Now(), cpuTime()
		sub := ds.Subset(0, old)
		p, err := net.Forward(ctx, sub.X)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := p.ggnTracesPerSample(float64(old)); err != nil {
			b.Fatal(err)
		}
		scale := float64(ds.Len()) / float64(old)
		slow, slowCPU := time.Since(t0).Seconds()*scale, (cpuTime()-c0)*scale

		cmd := exec.Command("/usr/bin/python3", "../scripts/bench_ggn_torch.py", "--model", "../testdata/vgg-fmnist/model.onnx",
			"--data", dataDir, "--images", strconv.Itoa(ds.Len()), "--threads", "1")
		cmd.Stderr = os.Stderr
		out, err := cmd.Output()
		if err != nil {
			b.Fatalf("bench_ggn_torch.py: %v", err)
		}
		var torch struct {
			Seconds    float64
			CPUSeconds float64 `json:"cpu_seconds"`
			Traces     map[string]float64
		}
		if err := json.Unmarshal(out, &torch); err != nil {
			b.Fatal(err)
		}
		for i, l := range net.Layers() {
			want, ok := torch.Traces[l.Node]
			if !ok {
				b.Fatalf("layer %s: no PyTorch trace", l.Node)
			}
			if rel := math.Abs(traces[i]-want) / want; !(rel <= ggnTorchRel) {
				b.Errorf("layer %s: trace %.6g; PyTorch %.6g (relative difference %.2g > %g)", l.Node, traces[i], want, rel, ggnTorchRel)
			}
		}
		b.ReportMetric(fast, "s-batched")
		b.ReportMetric(slow, "s-per-sample-est")
		b.ReportMetric(torch.Seconds, "s-pytorch")
		b.ReportMetric(fastCPU, "cpu-s-batched")
		b.ReportMetric(slowCPU, "cpu-s-per-sample-est")
		b.ReportMetric(torch.CPUSeconds, "cpu-s-pytorch")
		b.ReportMetric(fast/torch.Seconds, "batched/pytorch")
		b.ReportMetric(fastCPU/torch.CPUSeconds, "cpu-batched/pytorch")
		b.ReportMetric(slowCPU/fastCPU, "cpu-speedup")
	}
}

// cpuTime returns this process's user+system CPU time in seconds.
func cpuTime() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}
