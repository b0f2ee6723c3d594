package pipeline

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"testing"
	"time"

	"mpsearch/costmodel"
	"mpsearch/intengine"
	"mpsearch/tensor"
)

// BenchmarkPredictedSteps breaks BenchmarkPredictedVsMeasured down by
// step: for each model of predictModels (MPSEARCH_STEPS_MODELS narrows
// them) and each configuration of predictConfigs it times every step of
// the integer engine's program in model order (intengine.Model.Time:
// median over runs, each step timed inside whole runs, so its weights and
// input are as warm as in a run) and logs them next to the profile's
// prediction of the same layer or operation (costmodel.Predict,
// costmodel.PredictOps, with the profile's cold terms when the model's
// weights exceed the L2: PredictInPass, PredictOpsInPass), with the ratio
// predicted / measured. Steps with
// no model (float fallbacks) have no prediction. MPSEARCH_PROFILE_BEFORE
// names a second profile whose ratios are logged too.
//
//	MPSEARCH_STEPS_MODELS=vgg go test ./pipeline -run '^$' -bench PredictedSteps -benchtime 1x -v
func BenchmarkPredictedSteps(b *testing.B) {
	ctx := context.Background()
	prof, name, before, want := benchProfiles(b)
	runs := 201
	lines := []string{"profile " + name}
	for i := 0; i < b.N; i++ {
		for _, md := range predictModels() {
			if len(want) > 0 && !want[md.name] {
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
			if strings.Contains(md.path, "opset") {
				runs = 15
			}
			for ci, cfg := range predictConfigs(len(shapes)) {
				eng, err := intengine.Compile(net, intengine.Config{Bits: cfg, Ranges: ranges})
				if err != nil {
					b.Fatal(err)
				}
				tm, err := eng.Time(ctx, x1, 3, runs)
				if err != nil {
					b.Fatal(err)
				}
				pred, predB := map[string]float64{}, map[string]float64{}
				path := map[string]string{}
				cold := costmodel.ColdShare(prof, shapes, cfg, ops)
				var coldB costmodel.PassShare
				if before != nil {
					coldB = costmodel.ColdShare(before, shapes, cfg, ops)
				}
				for li, s := range shapes {
					d, err := costmodel.PredictInPass(prof, s, cfg[li], 1, cold)
					if err != nil {
						b.Fatal(err)
					}
					pred[s.Name] = float64(d.Nanoseconds()) / 1e3
					if before != nil {
						if d, err = costmodel.PredictInPass(before, s, cfg[li], 1, coldB); err != nil {
							b.Fatal(err)
						}
						predB[s.Name] = float64(d.Nanoseconds()) / 1e3
					}
					path[s.Name] = fmt.Sprintf("M%d K%d N%d g%d in%v out%v dw%v dir%v st%v b%d", s.M, s.K, s.N, max(s.Groups, 1), s.InNHWC, s.OutNHWC, s.Depthwise, s.Direct, s.Stream, cfg[li])
				}
				for _, o := range ops {
					d, err := costmodel.PredictOpsInPass(prof, []costmodel.OpShape{o}, 1, cold)
					if err != nil {
						b.Fatal(err)
					}
					pred[o.Name] += float64(d.Nanoseconds()) / 1e3
					if before != nil {
						if d, err = costmodel.PredictOpsInPass(before, []costmodel.OpShape{o}, 1, coldB); err != nil {
							b.Fatal(err)
						}
						predB[o.Name] += float64(d.Nanoseconds()) / 1e3
					}
					path[o.Name] = fmt.Sprintf("%s el%d taps%d nhwc%v c%d", o.Op, o.Elements, o.Taps, o.NHWC, o.Channels)
				}
				var sp, sm, sb float64
				lines = append(lines, fmt.Sprintf("%s %s: run median %.1f µs (cold pass: %v)", md.name, []string{"w8", "w4", "mixed"}[ci], float64(tm.Median.Nanoseconds())/1e3, cold))
				for _, st := range tm.Steps {
					m := float64(st.Median.Nanoseconds()) / 1e3
					key, _, _ := strings.Cut(st.Node, "+")
					if key == "input" { // the input quantization's step
						key = net.InputName
					}
					p, ok := pred[key]
					sm += m
					if ok {
						sp += p
						sb += predB[key]
						extra := ""
						if before != nil {
							extra = fmt.Sprintf(" (before %.2f)", predB[key]/m)
						}
						lines = append(lines, fmt.Sprintf("  %-28s %-14s meas %9.1f pred %9.1f ratio %.2f%s  %s", st.Node, st.Op, m, p, p/m, extra, path[key]))
					} else {
						lines = append(lines, fmt.Sprintf("  %-28s %-14s meas %9.1f (no model)", st.Node, st.Op, m))
					}
				}
				lines = append(lines, fmt.Sprintf("  sum of steps: meas %.1f pred %.1f ratio %.3f (before %.3f)", sm, sp, sp/sm, sb/sm))
			}
		}
	}
	_ = time.Second
	b.Log("\n" + strings.Join(lines, "\n"))
}

// benchProfiles reads what the step benchmarks share from the
// environment: the profile (MPSEARCH_PROFILE, default the shipped one)
// and its name, a second profile to compare (MPSEARCH_PROFILE_BEFORE, nil
// without one) and the models to run (MPSEARCH_STEPS_MODELS, empty: all).
func benchProfiles(b *testing.B) (prof *costmodel.Profile, name string, before *costmodel.Profile, want map[string]bool) {
	prof, name, err := LoadProfile(os.Getenv("MPSEARCH_PROFILE"))
	if err != nil {
		b.Fatal(err)
	}
	if path := os.Getenv("MPSEARCH_PROFILE_BEFORE"); path != "" {
		if before, _, err = LoadProfile(path); err != nil {
			b.Fatal(err)
		}
	}
	want = map[string]bool{}
	for _, n := range strings.Split(os.Getenv("MPSEARCH_STEPS_MODELS"), ",") {
		if n = strings.TrimSpace(n); n != "" {
			want[n] = true
		}
	}
	return prof, name, before, want
}
