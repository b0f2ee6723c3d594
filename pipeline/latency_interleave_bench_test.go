package pipeline

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"mpsearch/costmodel"
	"mpsearch/intengine"
	"mpsearch/tensor"
)

// BenchmarkPredictedVsMeasuredInterleaved is BenchmarkPredictedVsMeasured
// with the three configurations of a model measured in interleaved rounds
// (w8, w4, mixed, w8, ...; MPSEARCH_ROUNDS rounds, default 5, each the
// median of 3 samples of at least 20 ms on the profile's clock), so that
// load that comes and goes moves all three alike. It logs, per model, the
// median over rounds of each configuration's time and error, and the
// ratios w4 / w8 and mixed / w8 measured (median of the per-round ratios)
// against predicted, which survive a steady load better than absolute
// times. MPSEARCH_STEPS_MODELS narrows the models; MPSEARCH_PROFILE_BEFORE
// names a second profile whose predictions and errors are logged too.
//
//	MPSEARCH_PREDICT_MODELS=resnet50,vit_b_16 MPSEARCH_TORCHVISION_DIR=/work/models go test ./pipeline -run '^$' -bench PredictedVsMeasuredInterleaved -benchtime 1x -v -timeout 60m
func BenchmarkPredictedVsMeasuredInterleaved(b *testing.B) {
	ctx := context.Background()
	prof, name, before, want := benchProfiles(b)
	clock, err := costmodel.ParseClock(prof.Clock)
	if err != nil {
		b.Fatal(err)
	}
	rounds := 5
	if v := os.Getenv("MPSEARCH_ROUNDS"); v != "" {
		fmt.Sscan(v, &rounds)
	}
	lines := []string{"profile " + name, "| model | bits | predicted ms | measured ms (median of rounds) | error | ratio to w8 predicted / measured |", "|---|---|---|---|---|---|"}
	for i := 0; i < b.N; i++ {
		for _, md := range predictModels() {
			if len(want) > 0 && !want[md.name] {
				continue
			}
			if _, err := os.Stat(md.path); err != nil {
				continue
			}
			net, err := LoadModel(md.path, ModelOptions{})
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
			calib := tensor.New(append([]int{4}, net.SampleShape...)...)
			for i := range calib.Data {
				calib.Data[i] = rng.NormFloat64()
			}
			ranges, err := intengine.ObserveRanges(ctx, net, []*tensor.Tensor{calib})
			if err != nil {
				b.Fatal(err)
			}
			x1 := tensor.FromData(calib.Data[:calib.Size()/4], append([]int{1}, net.SampleShape...)...)
			floatMs, err := FloatStepsMs(ctx, net, calib)
			if err != nil {
				b.Fatal(err)
			}
			cfgs := predictConfigs(len(shapes))
			var runs []func() error
			var preds, predsBefore []float64
			for _, cfg := range cfgs {
				p, err := costmodel.PredictNetwork(prof, shapes, cfg, ops, 1)
				if err != nil {
					b.Fatal(err)
				}
				preds = append(preds, float64(p.Nanoseconds())/1e6+floatMs)
				if before != nil {
					p, err := costmodel.PredictNetwork(before, shapes, cfg, ops, 1)
					if err != nil {
						b.Fatal(err)
					}
					predsBefore = append(predsBefore, float64(p.Nanoseconds())/1e6+floatMs)
				}
				eng, err := intengine.Compile(net, intengine.Config{Bits: cfg, Ranges: ranges})
				if err != nil {
					b.Fatal(err)
				}
				out := tensor.New(eng.OutputShape(1)...)
				runs = append(runs, func() error { return eng.RunInto(ctx, out, x1) })
			}
			meas := make([][]float64, len(cfgs))
			ratios := make([][]float64, len(cfgs))
			for r := 0; r < rounds; r++ {
				for ci, run := range runs {
					t, err := costmodel.Time(ctx, run, costmodel.MeasureOptions{Clock: clock, Repeats: 3, MinSample: 20 * time.Millisecond})
					if err != nil {
						b.Fatal(err)
					}
					meas[ci] = append(meas[ci], float64(t[0].Median.Nanoseconds())/1e6)
				}
				for ci := range runs {
					ratios[ci] = append(ratios[ci], meas[ci][r]/meas[0][r])
				}
			}
			for ci := range cfgs {
				m, q := medianOf(meas[ci]), medianOf(ratios[ci])
				lines = append(lines, fmt.Sprintf("| %s | %s | %.3f | %.3f (%.3f-%.3f) | %+.1f%% | %.3f / %.3f |", md.name, []string{"w8", "w4", "mixed 8/4/2"}[ci],
					preds[ci], m, slices.Min(meas[ci]), slices.Max(meas[ci]), 100*(preds[ci]/m-1), preds[ci]/preds[0], q))
				if before != nil {
					lines = append(lines, fmt.Sprintf("| %s | %s | before: %.3f | | %+.1f%% | |", md.name, []string{"w8", "w4", "mixed 8/4/2"}[ci], predsBefore[ci], 100*(predsBefore[ci]/m-1)))
				}
			}
		}
	}
	b.Log("\n" + strings.Join(lines, "\n"))
}

func medianOf(x []float64) float64 {
	y := slices.Clone(x)
	slices.Sort(y)
	if n := len(y); n%2 == 0 {
		return (y[n/2-1] + y[n/2]) / 2
	}
	return y[len(y)/2]
}
