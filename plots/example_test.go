package plots_test

import (
	"bytes"
	"fmt"
	"log"
	"math"
	"strings"

	"mpsearch/plots"
)

// Example writes a small report: two layers, a two-point Pareto front, the
// uniform baselines and one budget.
func Example() {
	nan := math.NaN()
	chosen := plots.Point{Label: "ilp", Bits: []int{8, 4}, Objective: 0.011, LatencyMs: 0.08, SizeBytes: 650, BOPs: 1.1e6, Accuracy: nan, MeasuredLoss: nan}
	r := &plots.Report{
		Title:     "example",
		Model:     "tiny.onnx",
		Generated: "documentation example",
		Method:    "ilp",
		Layers: []plots.Layer{
			{Name: "conv", Op: "Conv", Params: 200, Bits: 8, ABits: 8, Omega: map[int]float64{4: 0.02, 8: 1e-4}, Trace: 3.1, TraceStderr: 0.2, LatencyMs: 0.03, SizeBytes: 200},
			{Name: "fc", Op: "Gemm", Params: 900, Bits: 4, ABits: 8, Omega: map[int]float64{4: 0.011, 8: 5e-5}, Trace: 1.7, TraceStderr: 0.1, LatencyMs: 0.05, SizeBytes: 450},
		},
		Front: []plots.Point{chosen, {Label: "w8", Bits: []int{8, 8}, Objective: 1.5e-4, LatencyMs: 0.1, SizeBytes: 1100, BOPs: 1.8e6, Accuracy: nan, MeasuredLoss: nan}},
		Uniform: []plots.Point{
			{Label: "W8", Bits: []int{8, 8}, Objective: 1.5e-4, LatencyMs: 0.1, SizeBytes: 1100, BOPs: 1.8e6, Accuracy: nan, MeasuredLoss: nan},
			{Label: "W4", Bits: []int{4, 4}, Objective: 0.031, LatencyMs: 0.07, SizeBytes: 550, BOPs: 0.9e6, Accuracy: nan, MeasuredLoss: nan},
		},
		Chosen:  &chosen,
		Budgets: []plots.Budget{{Resource: "latency", Unit: "ms", Limit: 0.085, Used: 0.08}},
	}
	var buf bytes.Buffer // or plots.WriteFile("report.html", r)
	if err := plots.Write(&buf, r); err != nil {
		log.Fatal(err)
	}
	page := buf.String()
	fmt.Println("charts:", strings.Count(page, "echarts.init("))
	fmt.Println("external scripts:", strings.Count(page, "<script src="))
	// Output:
	// charts: 4
	// external scripts: 0
}
