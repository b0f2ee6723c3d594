package cli

import (
	"context"
	"path/filepath"
	"testing"

	"mpsearch/export"
	"mpsearch/internal/ortrun"
	"mpsearch/network"
	"mpsearch/pipeline"
	"mpsearch/quant"
	"mpsearch/tensor"
)

// qdqAgreement is issue 10's bound (must-show 3): top-1 agreement, in
// percent, of ONNX Runtime running the exported QDQ model with our own
// simulated quantization of the same configuration.
const qdqAgreement = 90

// TestQDQMatchesSimulationTorchvision exports MobileNetV3-small and
// ViT-B/16 (random weights, opset 17) as QDQ models with mixed widths
// (8 at both ends, then 4, 3, 8 and 4 in turn, about the average width of
// a search at --size-budget 0.5x: convolutions, squeeze-
// excitation and classifier layers, attention projections and MLPs) by
// the command line's export (export.Compact: INT4 at opset 21) and
// activation ranges observed on the images, runs them in ONNX Runtime and
// checks top-1 agreement with the simulation (quant.WeightSetter and
// quant.ActHook on the float engine) on 16 random 224x224 images.
func TestQDQMatchesSimulationTorchvision(t *testing.T) {
	if testing.Short() && !ortrun.InCI() {
		t.Skip("exports and runs ViT-B/16: skipped with -short")
	}
	r := ortrun.ForTest(t)
	dir := torchvisionDir(t)
	x := randomImages(7, 16, 224, 224)
	ctx := context.Background()
	for _, name := range []string{"vit_b_16", "mobilenet_v3_small"} {
		t.Run(name, func(t *testing.T) {
			net, err := pipeline.LoadModel(filepath.Join(dir, name+"-opset17.onnx"), pipeline.ModelOptions{Precision: network.F32})
			if err != nil {
				t.Fatal(err)
			}
			n := len(net.Layers())
			bits := make([]int, n)
			for i := range bits {
				bits[i] = []int{4, 3, 8, 4}[i%4]
			}
			bits[0], bits[n-1] = 8, 8
			ranges, err := quant.ObserveRanges(ctx, net, []*tensor.Tensor{x})
			if err != nil {
				t.Fatal(err)
			}
			act := ranges.ActQuantizers()
			m, note, err := export.Compact(net, export.Config{Bits: bits, Act: act})
			if err != nil {
				t.Fatal(err)
			}
			if m.Opset != export.Int4Opset || note != "" {
				t.Errorf("exported at opset %d, note %q; want INT4 at opset %d", m.Opset, note, export.Int4Opset)
			}
			path := filepath.Join(t.TempDir(), "model.qdq.onnx")
			if err := export.Save(path, m); err != nil {
				t.Fatal(err)
			}
			outs, err := r.Run(ctx, path, "all", ortrun.Input{X: x})
			if err != nil {
				t.Fatal(err)
			}
			ws := quant.NewWeightSetter(net)
			defer ws.Restore()
			if err := ws.SetAll(bits); err != nil {
				t.Fatal(err)
			}
			sim, err := net.InferHook(ctx, x, quant.ActHook(act))
			if err != nil {
				t.Fatal(err)
			}
			got, want := argmaxRows(outs[0]), argmaxRows(sim)
			same := 0
			for i := range got {
				if got[i] == want[i] {
					same++
				}
			}
			agree := 100 * float64(same) / float64(len(got))
			t.Logf("%d layers, bits %v: top-1 agreement of ONNX Runtime (QDQ) with the simulation %.1f%% (%d of %d)", n, bits, agree, same, len(got))
			if agree < qdqAgreement {
				t.Errorf("top-1 agreement: got %.1f%%; want >= %d%%", agree, qdqAgreement)
			}
		})
	}
}
