package plots

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/report.golden.html")

// echartsSHA256 is the digest of the vendored echarts.min.js recorded in
// assets/README.md.
const echartsSHA256 = "1156429a16a38cb8604dcc6518c19406d4226142d908f8edd2e3531443c54d19"

// libPlaceholder replaces the inlined library in golden files and checks.
const libPlaceholder = "/* echarts.min.js inlined here */"

var nan = math.NaN()

// fixture is a LeNet-sized report with every section filled and a few
// unknown (NaN) values, as the pipeline would produce it.
func fixture() *Report {
	bits := []int{8, 4, 3, 4, 8}
	layers := []Layer{
		{Name: "conv1", Op: "Conv", Params: 150, Bits: 8, ABits: 8, Omega: map[int]float64{2: 0.074, 3: 0.021, 4: 0.009, 8: -3e-5}, OmegaStderr: map[int]float64{2: 0.004, 3: 0.003, 4: 0.002, 8: 1e-5}, Trace: 12.3, TraceStderr: 0.4, LatencyMs: 0.021, SizeBytes: 150},
		{Name: "conv2", Op: "Conv", Params: 2400, Bits: 4, ABits: 8, Omega: map[int]float64{2: 0.21, 3: 0.048, 4: 0.011, 8: 4.1e-5}, OmegaStderr: map[int]float64{2: 0.02, 3: nan}, Trace: 40.1, TraceStderr: 1.2, LatencyMs: 0.052, SizeBytes: 1200},
		{Name: "fc1", Op: "Gemm", Params: 30720, Bits: 3, ABits: 8, Omega: map[int]float64{2: 0.33, 3: 0.052, 4: 0.013, 8: 5e-5}, Trace: 61.0, TraceStderr: 2.0, LatencyMs: 0.034, SizeBytes: 11520},
		{Name: "fc2", Op: "Gemm", Params: 10080, Bits: 4, ABits: 8, Omega: map[int]float64{2: 0.12, 3: 0.03, 4: 0.0071, 8: 0}, Trace: 22.5, TraceStderr: nan, LatencyMs: 0.012, SizeBytes: 5040},
		{Name: "fc3", Op: "Gemm", Params: 840, Bits: 8, ABits: 8, Omega: map[int]float64{2: 0.5, 4: 0.02, 8: 8e-5}, Trace: nan, TraceStderr: nan, LatencyMs: nan, SizeBytes: 840},
	}
	chosen := Point{Label: "ilp@0.6x", Bits: bits, Objective: 0.06508, LatencyMs: 0.119, SizeBytes: 18750, BOPs: 2.4e7, Accuracy: 0.8871, MeasuredLoss: 0.331}
	return &Report{
		Title:     "mpsearch: lenet",
		Model:     "testdata/lenet.onnx",
		Generated: "fixed fixture",
		Method:    "ilp",
		Layers:    layers,
		MeasuredFront: []Point{
			{Label: "front point 1: uniform W2A8, ends at 8", Bits: []int{8, 2, 2, 2, 8}, Objective: 0.66, LatencyMs: 0.101, SizeBytes: 11610, BOPs: 2.1e7, Accuracy: 0.71, MeasuredLoss: 0.9},
			{Label: "front point 2: refined", Bits: bits, Objective: 0.06508, LatencyMs: 0.119, SizeBytes: 18750, BOPs: 2.4e7, Accuracy: 0.8871, MeasuredLoss: 0.331},
			{Label: "front point 3: ILP optimum", Bits: []int{8, 4, 4, 4, 8}, Objective: 0.0311, LatencyMs: 0.131, SizeBytes: 23910, BOPs: 2.6e7, Accuracy: 0.8990, MeasuredLoss: 0.29},
			{Label: "front point 4: uniform W8A8", Bits: []int{8, 8, 8, 8, 8}, Objective: 2.2e-4, LatencyMs: 0.158, SizeBytes: 44190, BOPs: 3.5e7, Accuracy: nan, MeasuredLoss: 0.27},
		},
		FrontBudgets:  []float64{11610, 19000, 25000, 44190},
		FrontResource: "size",
		FrontNote:     "latency budget held at 0.12 ms",
		FloatAccuracy: 0.9046,
		FloatNodes:    []string{"/head/Softmax (Softmax)", "/se/Sigmoid (Sigmoid)"},
		Front: []Point{
			{Label: "p3", Bits: []int{8, 4, 4, 4, 8}, Objective: 0.0311, LatencyMs: 0.131, SizeBytes: 23910, BOPs: 2.6e7, Accuracy: nan, MeasuredLoss: nan},
			{Label: "p1", Bits: []int{8, 2, 2, 2, 8}, Objective: 0.66, LatencyMs: 0.101, SizeBytes: 11610, BOPs: 2.1e7, Accuracy: 0.62, MeasuredLoss: nan},
			chosen,
			{Label: "p4", Bits: []int{8, 8, 8, 8, 8}, Objective: 2.2e-4, LatencyMs: 0.158, SizeBytes: 44190, BOPs: 3.5e7, Accuracy: 0.9041, MeasuredLoss: nan},
		},
		RL: []Point{
			{Label: "rl-best", Bits: []int{8, 4, 3, 3, 8}, Objective: 0.0892, LatencyMs: 0.117, SizeBytes: 17490, BOPs: 2.3e7, Accuracy: nan, MeasuredLoss: nan},
			{Label: "rl-2", Bits: []int{8, 3, 3, 4, 8}, Objective: 0.1071, LatencyMs: 0.116, SizeBytes: 19050, BOPs: 2.3e7, Accuracy: nan, MeasuredLoss: nan},
		},
		LearningCurve: []CurvePoint{{1, 0.9, 12.8}, {10, 0.31, 3.76}, {50, 0.12, 0.84}, {100, 0.0892, 0.371}, {150, 0.0892, nan}},
		Uniform: []Point{
			{Label: "W8", Bits: []int{8, 8, 8, 8, 8}, Objective: 2.2e-4, LatencyMs: 0.158, SizeBytes: 44190, BOPs: 3.5e7, Accuracy: 0.9041, MeasuredLoss: 0.27},
			{Label: "W4", Bits: []int{4, 4, 4, 4, 4}, Objective: 0.0621, LatencyMs: 0.128, SizeBytes: 22095, BOPs: 1.8e7, Accuracy: 0.8802, MeasuredLoss: 0.35, ReferenceOnly: true},
			{Label: "W3", Bits: []int{3, 3, 3, 3, 3}, Objective: 0.151, LatencyMs: nan, SizeBytes: 16571, BOPs: 1.3e7, Accuracy: 0.8664, MeasuredLoss: 0.39, ReferenceOnly: true},
			{Label: "W2", Bits: []int{2, 2, 2, 2, 2}, Objective: 1.234, LatencyMs: 0.092, SizeBytes: 11048, BOPs: 0.9e7, Accuracy: 0.41, MeasuredLoss: 1.9, ReferenceOnly: true},
			{Label: "W3, ends at 8", Bits: []int{8, 3, 3, 3, 8}, Objective: 0.12, LatencyMs: 0.110, SizeBytes: 17310, BOPs: 1.9e7, Accuracy: 0.8710, MeasuredLoss: 0.37},
		},
		Candidates: []Point{
			chosen,
			{Label: "next-best", Bits: []int{8, 4, 4, 3, 8}, Objective: 0.0712, LatencyMs: 0.118, SizeBytes: 19010, BOPs: 2.4e7, Accuracy: 0.8850, MeasuredLoss: 0.336},
			{Label: "W3", Bits: []int{3, 3, 3, 3, 3}, Objective: 0.151, LatencyMs: nan, SizeBytes: 16571, BOPs: 1.3e7, Accuracy: 0.8664, MeasuredLoss: 0.39},
		},
		Chosen: &chosen,
		Budgets: []Budget{
			{Resource: "latency", Unit: "ms", Limit: 0.12, Used: 0.119},
			{Resource: "size", Unit: "bytes", Limit: 20000, Used: 18750},
		},
		Latency: []LatencyCheck{
			{Label: "W8", PredictedMs: 0.158, MeasuredMs: 0.171, Baseline: true},
			{Label: "chosen", PredictedMs: 0.119, MeasuredMs: 0.125},
			{Label: "W2", PredictedMs: 0.092, MeasuredMs: nan},
		},
		Kernels: []KernelRate{
			{Bits: 8, M: 64, K: 800, N: 500, GOPS: 41.5},
			{Bits: 4, M: 64, K: 800, N: 500, GOPS: 48.2},
			{Bits: 2, M: 64, K: 800, N: 500, GOPS: 55.0},
			{Bits: 8, M: 6, K: 25, N: 576, GOPS: 9.1},
			{Bits: 4, M: 6, K: 25, N: 576, GOPS: math.Inf(1)},
		},
	}
}

func renderHTML(t *testing.T, r *Report) string {
	t.Helper()
	var buf bytes.Buffer
	if err := Write(&buf, r); err != nil {
		t.Fatalf("Write: %v", err)
	}
	return buf.String()
}

// stripLibrary replaces the one inlined copy of the library by
// libPlaceholder; it fails the test if the library is not inlined verbatim
// exactly once.
func stripLibrary(t *testing.T, html string) string {
	t.Helper()
	if n := strings.Count(html, echartsJS); n != 1 {
		t.Fatalf("page holds %d verbatim copies of echarts.min.js; want 1", n)
	}
	return strings.Replace(html, echartsJS, libPlaceholder, 1)
}

func TestGolden(t *testing.T) {
	got := stripLibrary(t, renderHTML(t, fixture()))
	golden := filepath.Join("testdata", "report.golden.html")
	if *update {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test ./plots/ -run TestGolden -update to create it)", err)
	}
	if got != string(want) {
		gl, wl := strings.Split(got, "\n"), strings.Split(string(want), "\n")
		for i := range min(len(gl), len(wl)) {
			if gl[i] != wl[i] {
				t.Fatalf("output differs from %s at line %d:\ngot  %.300s\nwant %.300s", golden, i+1, gl[i], wl[i])
			}
		}
		t.Fatalf("output differs from %s: got %d lines; want %d", golden, len(gl), len(wl))
	}
}

func TestDeterministic(t *testing.T) {
	first := renderHTML(t, fixture())
	for i := range 5 {
		if got := renderHTML(t, fixture()); got != first {
			t.Fatalf("render %d differs from the first render of an equal Report", i+2)
		}
	}
}

func TestEmbeddedLibrary(t *testing.T) {
	sum := sha256.Sum256([]byte(echartsJS))
	if got := hex.EncodeToString(sum[:]); got != echartsSHA256 {
		t.Errorf("sha256(assets/echarts.min.js) = %s; want %s (assets/README.md)", got, echartsSHA256)
	}
	if !strings.Contains(echartsJS[:2000], "Apache License") {
		t.Errorf("echarts.min.js lost its Apache license header")
	}
	for _, s := range []string{"</script", "<!--"} {
		if strings.Contains(echartsJS, s) {
			t.Errorf("echarts.min.js contains %q, which would break inlining in <script>", s)
		}
	}
}

// libraryURLs are the only http strings in echarts.min.js: license URLs in
// comments and XML namespace identifiers of the SVG renderer. None is fetched.
var libraryURLs = []string{
	"http://www.apache.org/licenses/LICENSE-2.0",
	"http://www.w3.org/1999/xlink",
	"http://www.w3.org/2000/svg",
	"http://www.w3.org/2000/xmlns/",
	"http://www.w3.org/XML/1998/namespace",
	"https://github.com/ecomfe/zrender/blob/master/LICENSE.txt",
}

var urlPattern = regexp.MustCompile(`https?://[^"'\s)]*`)

func TestNoExternalReferences(t *testing.T) {
	html := renderHTML(t, fixture())
	rest := stripLibrary(t, html)
	for _, bad := range []string{"http", "src=", "<link", "url(", "@import"} {
		if i := strings.Index(rest, bad); i >= 0 {
			t.Errorf("page outside the inlined library contains %q: ...%s...", bad, rest[max(0, i-80):min(len(rest), i+80)])
		}
	}
	seen := urlPattern.FindAllString(echartsJS, -1)
	slices.Sort(seen)
	seen = slices.Compact(seen)
	if !slices.Equal(seen, libraryURLs) {
		t.Errorf("URLs in echarts.min.js = %q; want only %q", seen, libraryURLs)
	}
}

var (
	optionPattern   = regexp.MustCompile(`(?s)let option_(\w+) = (\{.*?\})\s*;?\s*goecharts_`)
	functionPattern = regexp.MustCompile(`function \(v\) \{[^{}]*\}`)
	// renderPattern is the error bars' renderItem (errorBarJS), which ends
	// with the group it returns.
	renderPattern = regexp.MustCompile(`function \(params, api\) \{.*?\]\};\}`)
)

// options extracts each chart's option object, parsed as strict JSON (which
// has no NaN or Infinity) after replacing the JavaScript formatter functions
// by the string "<function>".
func options(t *testing.T, html string) map[string]map[string]any {
	t.Helper()
	out := map[string]map[string]any{}
	for _, m := range optionPattern.FindAllStringSubmatch(html, -1) {
		var opt map[string]any
		js := functionPattern.ReplaceAllString(renderPattern.ReplaceAllString(m[2], `"<function>"`), `"<function>"`)
		if err := json.Unmarshal([]byte(js), &opt); err != nil {
			t.Fatalf("chart %s: option is not valid JSON: %v", m[1], err)
		}
		out[m[1]] = opt
	}
	return out
}

func seriesNames(opt map[string]any) []string {
	var names []string
	series, _ := opt["series"].([]any)
	for _, s := range series {
		m, _ := s.(map[string]any)
		name, _ := m["name"].(string)
		names = append(names, name)
	}
	return names
}

func TestCharts(t *testing.T) {
	html := renderHTML(t, fixture())
	opts := options(t, html)
	want := map[string][]string{
		"objective_size": {seriesFront, seriesProxy, seriesRL, seriesUniform, seriesUniformKe, seriesCands, seriesChosen},
		"loss_size":      {seriesFront, seriesProxy, seriesUniform, seriesUniformKe, seriesCands, seriesChosen},
		"accuracy_size":  {seriesFront, seriesProxy, seriesUniform, seriesUniformKe, seriesCands, seriesChosen},
		"proxy_vs_loss":  {"verified candidates", "chosen"},
		"sensitivity":    {"2-bit Omega", "3-bit Omega", "4-bit Omega", "8-bit Omega", "±1 standard error"},
		"chosen_bits":    {"chosen bits"},
		"budgets":        {"used"},
		"latency":        {"configurations", "y = x"},
		"rl_curve":       {"best objective", "gap to ILP optimum (%)"},
		"kernels":        {"2-bit weights", "4-bit weights", "8-bit weights"},
	}
	if len(opts) != len(want) {
		t.Errorf("got %d charts; want %d", len(opts), len(want))
	}
	for id, names := range want {
		opt, ok := opts[id]
		if !ok {
			t.Errorf("chart %s missing", id)
			continue
		}
		if got := seriesNames(opt); !slices.Equal(got, names) {
			t.Errorf("chart %s series = %q; want %q", id, got, names)
		}
	}
	// The sensitivity chart's value axis is linear and its bars signed.
	y, _ := opts["sensitivity"]["yAxis"].([]any)
	if len(y) == 0 || y[0].(map[string]any)["type"] != "value" {
		t.Errorf("sensitivity yAxis = %v; want a linear (value) axis", opts["sensitivity"]["yAxis"])
	}
	d := seriesData(t, opts["sensitivity"], "8-bit Omega")
	if v := d[0].(map[string]any)["value"]; v != -3e-5 {
		t.Errorf("conv1 8-bit bar = %v; want -3e-05 (signed)", v)
	}
	// Error bars: conv1 at every width, conv2 at 2 bits (its 3-bit s.e. is NaN).
	eb := seriesData(t, opts["sensitivity"], "±1 standard error")
	if len(eb) != 5 {
		t.Errorf("error bars = %d; want 5", len(eb))
	}
	if v := eb[0].(map[string]any)["value"]; !slices.Equal(toFloats(v), []float64{0, 0.07, 0.078, 0}) {
		t.Errorf("conv1 2-bit error bar = %v; want [0 0.07 0.078 0] (layer, Omega−s.e., Omega+s.e., width index)", v)
	}
	if v := seriesData(t, opts["chosen_bits"], "chosen bits")[2]; v.(map[string]any)["value"] != 3.0 {
		t.Errorf("fc1 chosen bits = %v; want 3", v)
	}
	// The proxy's optima are off until their legend entry is clicked.
	leg, _ := opts["accuracy_size"]["legend"].(map[string]any)
	if sel, _ := leg["selected"].(map[string]any); sel == nil || sel[seriesProxy] != false {
		t.Errorf("accuracy_size legend = %v; want %q unselected", opts["accuracy_size"]["legend"], seriesProxy)
	}
}

func toFloats(v any) []float64 {
	var out []float64
	for _, x := range v.([]any) {
		out = append(out, x.(float64))
	}
	return out
}

// seriesData returns the data of the named series of chart id.
func seriesData(t *testing.T, opt map[string]any, name string) []any {
	t.Helper()
	for _, s := range opt["series"].([]any) {
		m := s.(map[string]any)
		if m["name"] == name {
			d, _ := m["data"].([]any)
			return d
		}
	}
	t.Fatalf("series %q not found", name)
	return nil
}

func TestUnknownValues(t *testing.T) {
	html := renderHTML(t, fixture())
	opts := options(t, html) // strict JSON: no NaN or Infinity anywhere

	// W3 has no latency: it is left out of latency charts, kept on size charts.
	lat := fixture()
	lat.FrontResource = "latency"
	lopts := options(t, renderHTML(t, lat))
	if got := len(seriesData(t, lopts["objective_latency"], seriesUniform)); got != 2 {
		t.Errorf("objective_latency plain uniform points = %d; want 2 (W3 has no latency)", got)
	}
	if got := len(seriesData(t, opts["objective_size"], seriesUniform)); got != 3 {
		t.Errorf("objective_size plain uniform points = %d; want 3", got)
	}
	// Front points without accuracy are left out of accuracy charts.
	if got := len(seriesData(t, opts["accuracy_size"], seriesFront)); got != 3 {
		t.Errorf("accuracy_size front points = %d; want 3", got)
	}
	// On the linear axis a zero Omega is a zero, an absent width "-".
	d := seriesData(t, opts["sensitivity"], "8-bit Omega")
	if v := d[3].(map[string]any)["value"]; v != 0.0 {
		t.Errorf("fc2 8-bit Omega (0) = %v; want 0", v)
	}
	d = seriesData(t, opts["sensitivity"], "3-bit Omega")
	if v := d[4].(map[string]any)["value"]; v != "-" {
		t.Errorf("fc3 3-bit Omega (absent) = %v; want \"-\"", v)
	}
	// An infinite kernel rate is "-"; the missing 2-bit 6×25×576 kernel too.
	d = seriesData(t, opts["kernels"], "4-bit weights")
	if v := d[0].(map[string]any)["value"]; v != "-" {
		t.Errorf("4-bit 6×25×576 GOPS (+Inf) = %v; want \"-\"", v)
	}
	// The measured-latency NaN drops that point.
	if got := len(seriesData(t, opts["latency"], "configurations")); got != 2 {
		t.Errorf("latency points = %d; want 2", got)
	}
	if got := len(seriesData(t, opts["rl_curve"], "gap to ILP optimum (%)")); got != 4 {
		t.Errorf("gap points = %d; want 4", got)
	}
	rest := stripLibrary(t, html)
	for _, bad := range []string{"NaN", "Infinity", "Inf"} {
		if strings.Contains(rest, bad) {
			t.Errorf("page outside the library contains %q", bad)
		}
	}
}

func TestAllUnknown(t *testing.T) {
	r := &Report{
		Layers:        []Layer{{Name: "a", Omega: map[int]float64{4: nan, 8: math.Inf(1)}, Trace: nan, TraceStderr: nan, LatencyMs: nan, SizeBytes: nan}},
		Front:         []Point{{Objective: nan, LatencyMs: nan, SizeBytes: nan, BOPs: nan, Accuracy: nan, MeasuredLoss: nan}},
		LearningCurve: []CurvePoint{{Episode: 1, Best: nan, Gap: nan}},
		Latency:       []LatencyCheck{{PredictedMs: nan, MeasuredMs: nan}},
	}
	html := renderHTML(t, r)
	opts := options(t, html)
	if len(opts) != 1 || opts["sensitivity"] == nil {
		t.Errorf("charts = %d (%v); want only the sensitivity chart", len(opts), keys(opts))
	}
	if strings.Contains(stripLibrary(t, html), "NaN") {
		t.Errorf("page contains NaN")
	}
}

func keys(m map[string]map[string]any) []string {
	var k []string
	for s := range m {
		k = append(k, s)
	}
	slices.Sort(k)
	return k
}

func TestEmptyReport(t *testing.T) {
	html := renderHTML(t, &Report{Title: "empty"})
	if strings.Contains(html, "<script") {
		t.Errorf("a report without charts still carries a script")
	}
	if !strings.Contains(html, "<h1>empty</h1>") {
		t.Errorf("title missing from empty report")
	}
}

func TestScriptInjection(t *testing.T) {
	r := fixture()
	evil := `</script><script>alert(1)</script><!--`
	r.Layers[0].Name = evil
	r.Uniform[0].Label = evil
	r.Title = evil
	html := stripLibrary(t, renderHTML(t, r))
	opts := options(t, html)
	// One script element for the library, one per chart and one to resize
	// them: no string closed a script element early.
	if got := strings.Count(html, "</script>"); got != len(opts)+2 {
		t.Errorf("page has %d </script> tags; want %d", got, len(opts)+2)
	}
	if strings.Contains(html, "<!--") {
		t.Errorf("page contains a raw <!-- that would change how scripts are parsed")
	}
	// The strings survive intact for the reader.
	if got := seriesData(t, opts["objective_size"], seriesUniformKe)[0].(map[string]any)["name"]; got != evil {
		t.Errorf("uniform label round trip = %q; want %q", got, evil)
	}
	if got := opts["sensitivity"]["xAxis"].([]any)[0].(map[string]any)["data"].([]any)[0]; got != evil {
		t.Errorf("layer name round trip = %q; want %q", got, evil)
	}
}

// TestFrontTable: the measured front is listed with its budgets.
func TestFrontTable(t *testing.T) {
	html := renderHTML(t, fixture())
	for _, want := range []string{`<h2 id="h-front">`, "<th>size budget</th>", "<tr><td>19 kB</td><td class=\"text\">front point 2: refined</td>", "<td>0.331</td><td>88.71 %</td>"} {
		if !strings.Contains(html, want) {
			t.Errorf("front table lacks %q", want)
		}
	}
	table := html[strings.Index(html, `<table class="front">`):]
	table = table[:strings.Index(table, "</table>")]
	if got := strings.Count(table, "<tr><td>"); got != 4 {
		t.Errorf("front table has %d rows; want 4 (one per front point)", got)
	}
}

func TestChosenRow(t *testing.T) {
	html := renderHTML(t, fixture())
	if got := strings.Count(html, `<tr class="chosen">`); got != 1 {
		t.Fatalf("chosen candidate rows = %d; want 1", got)
	}
	i := strings.Index(html, `<tr class="chosen">`)
	row := html[i : i+strings.Index(html[i:], "</tr>")]
	for _, want := range []string{"ilp@0.6x", "3b×1 4b×2 8b×2", "0.06508", "0.331", "88.71 %"} {
		if !strings.Contains(row, want) {
			t.Errorf("chosen row %q lacks %q", row, want)
		}
	}
}

func TestInvalidReport(t *testing.T) {
	for _, tc := range []struct {
		name string
		r    *Report
	}{
		{"nil", nil},
		{"zero limit", &Report{Budgets: []Budget{{Resource: "size", Limit: 0, Used: 1}}}},
		{"NaN limit", &Report{Budgets: []Budget{{Resource: "size", Limit: nan, Used: 1}}}},
		{"infinite limit", &Report{Budgets: []Budget{{Resource: "size", Limit: math.Inf(1), Used: 1}}}},
		{"negative use", &Report{Budgets: []Budget{{Resource: "size", Limit: 1, Used: -1}}}},
		{"NaN use", &Report{Budgets: []Budget{{Resource: "size", Limit: 1, Used: nan}}}},
		{"negative params", &Report{Layers: []Layer{{Name: "a", Params: -1}}}},
	} {
		var buf bytes.Buffer
		err := Write(&buf, tc.r)
		if !errors.Is(err, ErrInvalidReport) {
			t.Errorf("%s: Write error = %v; want ErrInvalidReport", tc.name, err)
		}
		if buf.Len() != 0 {
			t.Errorf("%s: Write wrote %d bytes on error; want 0", tc.name, buf.Len())
		}
	}
}

func TestWriteFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "report.html")
	if err := WriteFile(path, fixture()); err != nil {
		t.Fatalf("WriteFile: %v", err)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != renderHTML(t, fixture()) {
		t.Errorf("WriteFile content differs from Write")
	}
	// A failed write leaves the previous report intact and no temporary file.
	if err := WriteFile(path, &Report{Budgets: []Budget{{Limit: -1}}}); !errors.Is(err, ErrInvalidReport) {
		t.Errorf("WriteFile(invalid) error = %v; want ErrInvalidReport", err)
	}
	again, _ := os.ReadFile(path)
	if !bytes.Equal(again, got) {
		t.Errorf("failed WriteFile changed the existing report")
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries after WriteFile; want 1 (no temporary files)", len(entries))
	}
	if err := WriteFile(filepath.Join(dir, "missing", "report.html"), fixture()); err == nil {
		t.Errorf("WriteFile into a missing directory succeeded; want an error")
	}
}

func TestFormat(t *testing.T) {
	for _, tc := range []struct {
		got, want string
	}{
		{fmtNum(0.06508), "0.06508"},
		{fmtNum(18750), "18750"},
		{fmtNum(0.119), "0.119"},
		{fmtNum(12.3), "12.3"},
		{fmtNum(2.4e7), "2.4e+07"},
		{fmtNum(3e-5), "3e-05"},
		{fmtNum(0), "0"},
		{fmtNum(-1.5), "-1.5"},
		{fmtNum(nan), "—"},
		{fmtNum(math.Inf(-1)), "—"},
		{fmtQuantity(18750, "bytes"), "18.75 kB"},
		{fmtQuantity(2.5e6, "B"), "2.5 MB"},
		{fmtQuantity(0.12, "ms"), "0.12 ms"},
		{fmtQuantity(3.2e9, "BOPs"), "3.2 GBOPs"},
		{fmtSI(2.4e7, ""), "24 M"},
		{fmtSI(950, "BOPs"), "950 BOPs"},
		{fmtPct(0.8871), "88.71 %"},
		{fmtBits(0), "—"},
		{bitHistogram([]int{8, 4, 3, 4, 8}), "3b×1 4b×2 8b×2"},
		{bitHistogram(nil), "—"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q; want %q", tc.got, tc.want)
		}
	}
}

// TestManyLayers checks that a 1,000-layer report renders, lets ECharts
// choose which layer names to print, and zooms.
func TestManyLayers(t *testing.T) {
	r := &Report{}
	for i := range 1000 {
		r.Layers = append(r.Layers, Layer{Name: "l" + strings.Repeat("x", i%7), Bits: 4, Omega: map[int]float64{2: 1, 4: 0.1, 8: 0.001}})
	}
	opt := options(t, renderHTML(t, r))["sensitivity"]
	if opt == nil {
		t.Fatal("sensitivity chart missing")
	}
	if _, ok := opt["dataZoom"]; !ok {
		t.Errorf("1000-layer sensitivity chart has no dataZoom")
	}
	if got := len(seriesData(t, opt, "4-bit Omega")); got != 1000 {
		t.Errorf("4-bit bars = %d; want 1000", got)
	}
}

// TestLatencyTable: the report's latency table puts predicted and measured
// times side by side with the prediction's error and the speed-up over the
// baseline check (uniform 8 bits), highlights the chosen configuration,
// and shows an em dash where a time is unknown or there is no baseline.
func TestLatencyTable(t *testing.T) {
	nan := math.NaN()
	r := &Report{
		Chosen: &Point{Label: "mixed", Bits: []int{8, 4, 8}},
		Latency: []LatencyCheck{
			{Label: "mixed", PredictedMs: 0.1, MeasuredMs: 0.125},
			{Label: "uniform W8A8", PredictedMs: 0.21, MeasuredMs: 0.2, Baseline: true},
			{Label: "uniform W2A8", PredictedMs: 0.05, MeasuredMs: nan},
		},
	}
	rows, base := latencyRows(r)
	if base != "uniform W8A8" {
		t.Errorf("baseline %q; want uniform W8A8", base)
	}
	want := []latencyRow{
		{Chosen: true, Label: "mixed", Predicted: "0.1", Measured: "0.125", Error: "-20.0%", Speed: "1.60×"},
		{Baseline: true, Label: "uniform W8A8", Predicted: "0.21", Measured: "0.2", Error: "+5.0%", Speed: "1.00×"},
		{Label: "uniform W2A8", Predicted: "0.05", Measured: "—", Error: "—", Speed: "—"},
	}
	if !reflect.DeepEqual(rows, want) {
		t.Errorf("got rows %+v; want %+v", rows, want)
	}
	r.Latency[1].Baseline = false
	if rows, base = latencyRows(r); base != "" || rows[0].Speed != "—" {
		t.Errorf("without a baseline: baseline %q, speed-up %q; want none", base, rows[0].Speed)
	}
	r.Latency[1].Baseline = true
	html := renderHTML(t, r)
	for _, s := range []string{`<h2 id="h-latency">`, `<tr class="chosen"><td class="text">mixed</td><td>0.1</td><td>0.125</td><td>-20.0%</td><td>1.60×</td></tr>`} {
		if !strings.Contains(html, s) {
			t.Errorf("report lacks %s", s)
		}
	}
}
