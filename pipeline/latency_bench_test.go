package pipeline

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"testing"

	"mpsearch/costmodel"
	"mpsearch/intengine"
	"mpsearch/network"
	"mpsearch/onnx"
	"mpsearch/tensor"
)

// BenchmarkPredictedVsMeasured compares the model latency the cost model
// predicts (layer predictions plus the operations between layers,
// costmodel.PredictNetwork, from a profile measured in the same run with
// --quick settings) with the integer-only engine's measured
// latency (batch 1, one thread, median of 201 runs), for the fixture LeNet and the
// VGG-style Fashion-MNIST CNN at three bit configurations each. It reports
// the relative error of each case (the median of the b.N measurements);
// the goal is at most 10%. When profiles/ ships a profile measured
// on this CPU model, shipped-error-% is the error of its prediction.
func BenchmarkPredictedVsMeasured(b *testing.B) {
	ctx := context.Background()
	prof, err := costmodel.BuildProfile(ctx, costmodel.ProfileOptions{Name: "bench", Quick: true, Threads: 1})
	if err != nil {
		b.Fatal(err)
	}
	shipped, _, err := LoadProfile("")
	if err != nil {
		b.Fatal(err)
	}
	if shipped.Source != "measured" {
		shipped = nil
	}
	models := []struct {
		name, path string
		configs    [][]int
	}{
		{"lenet", "../testdata/fmnist-lenet/lenet.onnx", [][]int{{8, 8, 8, 8, 8}, {4, 4, 4, 4, 4}, {8, 4, 2, 4, 8}}},
		{"vgg", "../testdata/vgg-fmnist/model.onnx", [][]int{{8, 8, 8, 8, 8, 8, 8}, {4, 4, 4, 4, 4, 4, 4}, {8, 4, 2, 4, 2, 4, 8}}},
	}
	for _, md := range models {
		if _, err := os.Stat(md.path); err != nil {
			continue
		}
		m, err := onnx.Load(md.path)
		if err != nil {
			b.Fatal(err)
		}
		net, err := network.Build(m, network.Options{})
		if err != nil {
			b.Fatal(err)
		}
		shapes, err := LayerShapes(net)
		if err != nil {
			b.Fatal(err)
		}
		ops, err := OpShapes(net)
		if err != nil {
			b.Fatal(err)
		}
		rng := rand.New(rand.NewPCG(1, 1))
		calib := tensor.New(append([]int{64}, net.SampleShape...)...)
		for i := range calib.Data {
			calib.Data[i] = rng.NormFloat64()
		}
		ranges, err := intengine.ObserveRanges(ctx, net, []*tensor.Tensor{calib})
		if err != nil {
			b.Fatal(err)
		}
		x1 := tensor.FromData(calib.Data[:calib.Size()/64], append([]int{1}, net.SampleShape...)...)
		for _, cfg := range md.configs {
			b.Run(fmt.Sprintf("%s/%v", md.name, cfg), func(b *testing.B) {
				pred, err := costmodel.PredictNetwork(prof, shapes, cfg, ops, 1)
				if err != nil {
					b.Fatal(err)
				}
				layers, err := costmodel.PredictModel(prof, shapes, cfg, 1)
				if err != nil {
					b.Fatal(err)
				}
				eng, err := intengine.Compile(net, intengine.Config{Bits: cfg, Ranges: ranges})
				if err != nil {
					b.Fatal(err)
				}
				var runs []float64
				for i := 0; i < b.N; i++ {
					tm, err := eng.Time(ctx, x1, 20, 201)
					if err != nil {
						b.Fatal(err)
					}
					runs = append(runs, float64(tm.Median.Nanoseconds()))
				}
				slices.Sort(runs)
				meas := runs[len(runs)/2]
				p := float64(pred.Nanoseconds())
				b.ReportMetric(p/1e6, "predicted-ms")
				b.ReportMetric(float64(layers.Nanoseconds())/1e6, "layers-ms")
				b.ReportMetric(meas/1e6, "measured-ms")
				b.ReportMetric(100*math.Abs(p-meas)/meas, "error-%")
				if shipped != nil {
					ps, err := costmodel.PredictNetwork(shipped, shapes, cfg, ops, 1)
					if err != nil {
						b.Fatal(err)
					}
					b.ReportMetric(100*math.Abs(float64(ps.Nanoseconds())-meas)/meas, "shipped-error-%")
				}
			})
		}
	}
}
