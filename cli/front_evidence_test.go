package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"mpsearch/internal/fixture"
	"mpsearch/pipeline"
)

// frontEvidencePoints is issue 15's tolerance: every front point's test
// accuracy at least the best uniform configuration's that fits the same
// budget, minus 0.1 point.
const frontEvidencePoints = 0.1

// TestFrontEvidence runs `mpsearch pareto --points 8 --eval-data` on the
// VGG-style Fashion-MNIST model (the first 1024 training images, the last
// quarter held out, bits 2,3,4,8, ends at 8, default quantizer and
// refinement budgets, accuracy on the 10,000 test images) and checks
// summary.json's front: budgets rising, measured loss never rising, and
// every point's test accuracy at least that of the best uniform
// configuration fitting the same budget minus 0.1 point: the best with the
// ends at 8 (those search may return) and the best plain one (ends at the
// same width, which --keep-ends excludes) alike. It
// logs the front as a Markdown table (the README quotes it). Opt-in (about
// half an hour here): MPSEARCH_FRONT_EVIDENCE=1.
func TestFrontEvidence(t *testing.T) {
	if os.Getenv("MPSEARCH_FRONT_EVIDENCE") == "" {
		t.Skip("opt-in: MPSEARCH_FRONT_EVIDENCE=1 (about half an hour)")
	}
	imgs := fixture.FashionMNIST + "train-images-idx3-ubyte.gz"
	if _, err := os.Stat(imgs); err != nil {
		t.Skip("Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)")
	}
	out := filepath.Join(t.TempDir(), "vgg-front")
	args := []string{"pareto", "--model", "../testdata/vgg-fmnist/model.onnx", "--data", imgs, "--labels", fixture.FashionMNIST + "train-labels-idx1-ubyte.gz",
		"--limit", "1024", "--mean", "0.2860", "--std", "0.3530", "--size-budget", "0.375x", "--points", "8",
		"--eval-data", fixture.FashionMNIST + "t10k-images-idx3-ubyte.gz", "--eval-labels", fixture.FashionMNIST + "t10k-labels-idx1-ubyte.gz", "--out", out}
	code, stdout, stderr := run(t, args...)
	if code != 0 {
		t.Fatalf("mpsearch %s: exit %d\n%s\n%s", strings.Join(args, " "), code, stdout, stderr)
	}
	t.Logf("stdout:\n%s", stdout)
	data, err := os.ReadFile(filepath.Join(out, "summary.json"))
	if err != nil {
		t.Fatal(err)
	}
	var sum pipeline.Summary
	if err := json.Unmarshal(data, &sum); err != nil {
		t.Fatal(err)
	}
	if len(sum.Front) < 2 {
		t.Fatalf("summary.json front has %d points; want the sweep", len(sum.Front))
	}
	bestUniform := func(budget float64, plain bool) (string, float64) {
		label, acc := "", -1.0
		for _, u := range sum.Uniform {
			if u.ReferenceOnly == plain && u.Accuracy != nil && u.Costs[pipeline.Size] <= budget*(1+1e-9) && *u.Accuracy > acc {
				label, acc = u.Label, *u.Accuracy
			}
		}
		return label, acc
	}
	t.Log("| budget (B) | size (B) | bits | held-out loss | test accuracy | best uniform that fits, ends at 8 | plain uniform that fits |")
	prevBudget, prevLoss := -1.0, 1e300
	for i, p := range sum.Front {
		if p.Budget <= prevBudget || p.MeasuredLoss == nil || *p.MeasuredLoss > prevLoss || p.Accuracy == nil {
			t.Fatalf("point %d: budget %g after %g, loss %v after %g, accuracy %v; want budgets rising, loss not rising, an accuracy", i+1, p.Budget, prevBudget, p.MeasuredLoss, prevLoss, p.Accuracy)
		}
		prevBudget, prevLoss = p.Budget, *p.MeasuredLoss
		ul, ua := bestUniform(p.Budget, false)
		pl, pa := bestUniform(p.Budget, true)
		t.Logf("| %.0f | %.0f | %v | %.4g | %.2f%% | %s %.2f%% | %s %.2f%% |", p.Budget, p.Costs[pipeline.Size], p.Bits, *p.MeasuredLoss, 100**p.Accuracy, ul, 100*ua, pl, 100*pa)
		for _, u := range []struct {
			label string
			acc   float64
		}{{ul, ua}, {pl, pa}} {
			if u.acc >= 0 && 100**p.Accuracy < 100*u.acc-frontEvidencePoints {
				t.Errorf("point %d (budget %.0f B): accuracy %.2f%% below %s's %.2f%% by more than %.1f point", i+1, p.Budget, 100**p.Accuracy, u.label, 100*u.acc, frontEvidencePoints)
			}
		}
	}
}
