package cli

import (
	"context"
	"errors"
	"strings"
	"testing"

	"mpsearch/costmodel"
	"mpsearch/pipeline"
)

// TestLatencyThreads: a latency budget refuses a profile measured with
// another kernel thread count than the search's --threads, in one line
// naming the flag; with the profile's own count, or without a latency
// budget, the profile is used (issue 13).
func TestLatencyThreads(t *testing.T) {
	net, err := pipeline.LoadModel("../testdata/fmnist-lenet/lenet.onnx", pipeline.ModelOptions{})
	if err != nil {
		t.Fatal(err)
	}
	const prof = "../profiles/avx2-analytic.yaml" // measured ("model") with 1 thread
	j := &job{in: &pipeline.Inputs{Net: net}}
	s := &searchFlags{profile: prof, latency: "1ms"}
	s.mf.threads = 2
	_, _, err = latencyFor(context.Background(), s, j)
	if !errors.Is(err, costmodel.ErrThreads) || !strings.Contains(err.Error(), "--threads 1") || strings.Contains(err.Error(), "\n") {
		t.Errorf("latency budget, --threads 2, 1-thread profile: %v; want one line wrapping ErrThreads that names --threads 1", err)
	}
	s.mf.threads = 1
	if lat, _, err := latencyFor(context.Background(), s, j); err != nil || lat == nil {
		t.Errorf("--threads 1: %v, %v; want the profile's latency model", lat, err)
	}
	s.mf.threads, s.latency = 2, ""
	if lat, _, err := latencyFor(context.Background(), s, j); err != nil || lat == nil {
		t.Errorf("no latency budget, --threads 2: %v, %v; want the profile's latency model", lat, err)
	}
}
