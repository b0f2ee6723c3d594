package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"mpsearch/internal/citest"
	"mpsearch/internal/fixture"
)

// TestSearchMeasureLatency runs `mpsearch search --measure-latency` on the
// fixture LeNet at a latency budget: summary.json's latency_check gives a
// positive measured time for the returned configuration and each uniform
// one, and the report's latency table puts them side by side with the
// speed-ups measured against the uniform W8A8 row (1.00× there), whatever
// the returned configuration.
func TestSearchMeasureLatency(t *testing.T) {
	imgs := fixture.FashionMNIST + "train-images-idx3-ubyte.gz"
	if _, err := os.Stat(imgs); err != nil {
		citest.Missing(t, "Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist)")
	}
	t.Setenv("MPSEARCH_CACHE", "off")
	out := filepath.Join(t.TempDir(), "out")
	code, _, errs := run(t, "search", "--model", "../testdata/fmnist-lenet/lenet.onnx", "--data", imgs,
		"--labels", fixture.FashionMNIST+"train-labels-idx1-ubyte.gz", "--limit", "256", "--mean", "0.2860", "--std", "0.3530",
		"--threads", "1", "--latency-budget", "1.0x", "--refine", "0", "--measure-latency", "--out", out)
	if code != 0 {
		t.Fatalf("search: exit %d: %s", code, errs)
	}
	b, err := os.ReadFile(filepath.Join(out, "summary.json"))
	if err != nil {
		t.Fatal(err)
	}
	var sum struct {
		Measured struct{ Label string } `json:"measured"`
		Latency  []struct {
			Label      string  `json:"label"`
			MeasuredMs float64 `json:"measured_ms"`
		} `json:"latency_check"`
	}
	if err := json.Unmarshal(b, &sum); err != nil {
		t.Fatal(err)
	}
	labels := map[string]bool{}
	for _, l := range sum.Latency {
		labels[l.Label] = true
		if !(l.MeasuredMs > 0) {
			t.Errorf("latency_check %q: measured %v ms; want a positive time", l.Label, l.MeasuredMs)
		}
	}
	for _, want := range []string{sum.Measured.Label, "uniform W8A8", "uniform W4A8"} {
		if !labels[want] {
			t.Errorf("latency_check has no %q row; got %v", want, labels)
		}
	}
	html, err := os.ReadFile(filepath.Join(out, "report.html"))
	if err != nil {
		t.Fatal(err)
	}
	base := regexp.MustCompile(`<tr[^>]*><td class="text">uniform W8A8</td>(<td>[^<]*</td>){3}<td>1\.00×</td></tr>`)
	if !regexp.MustCompile(`<h2 id="h-latency">`).Match(html) || !base.Match(html) {
		t.Errorf("report.html lacks the latency table with speed-ups against its uniform W8A8 row")
	}
	if n := len(regexp.MustCompile(`<td>[0-9.]+×</td></tr>`).FindAll(html, -1)); n != len(sum.Latency) {
		t.Errorf("report.html has %d speed-ups; want one per latency_check row (%d)", n, len(sum.Latency))
	}
}
