package plots

import (
	_ "embed"
	"fmt"
	"html/template"
	"math"
	"slices"
	"strconv"
	"strings"

	"mpsearch/quant"
)

// echartsJS is Apache ECharts 5.4.3 (dist/echarts.min.js of the npm
// package), inlined into every report; see assets/README.md.
//
//go:embed assets/echarts.min.js
var echartsJS string

// page is the data of pageTemplate.
type page struct {
	Title, Model, Generated, Method string
	Lead                            []string // the text summary's sentences
	Summary                         []fact
	FloatNodes                      []string
	FloatNodesNote                  string
	Charts                          []chart
	Layers                          []layerRow
	Candidates                      []candidateRow
	Front                           []frontRow
	FrontResource                   string
	Latency                         []latencyRow
	LatencyBaseline                 string
	ECharts                         template.JS
}

type fact struct{ Name, Value string }

type layerRow struct {
	Index                                int
	Name, Op, Params, Bits, ABits, Omega string
	Trace, Latency, Size                 string
}

type frontRow struct {
	Budget, Label, Bits, Loss, Accuracy, Latency, Size, BOPs string
}

type latencyRow struct {
	Chosen, Baseline                         bool
	Label, Predicted, Measured, Error, Speed string
}

type candidateRow struct {
	Chosen                                          bool
	Label, Bits, Objective, Loss, Accuracy, Latency string
	Size, BOPs                                      string
}

// buildPage renders the charts that have data and formats the tables.
func buildPage(r *Report) (*page, error) {
	p := &page{Title: r.Title, Model: r.Model, Generated: r.Generated, Method: r.Method}
	if p.Title == "" {
		p.Title = "mpsearch report"
	}
	if c := r.Chosen; c != nil {
		p.Summary = []fact{
			{"chosen configuration", c.Label},
			{"objective (sum of Omega)", fmtNum(c.Objective)},
			{"predicted latency", fmtUnit(c.LatencyMs, "ms")},
			{"weight size", fmtBytes(c.SizeBytes)},
			{"BOPs", fmtSI(c.BOPs, "")},
			{"measured loss", fmtNum(c.MeasuredLoss)},
			{"accuracy", fmtPct(c.Accuracy)},
		}
	}

	p.Lead = leadText(r)
	p.FloatNodes, p.FloatNodesNote = r.FloatNodes, r.FloatNodesNote
	builders := tradeOffCharts(r)
	builders = append(builders,
		func() (chart, bool, error) { return lossChart(r) },
		func() (chart, bool, error) { return sensitivityChart(r) },
		func() (chart, bool, error) { return bitsChart(r) },
		func() (chart, bool, error) { return budgetChart(r) },
		func() (chart, bool, error) { return latencyChart(r) },
		func() (chart, bool, error) { return curveChart(r) },
		func() (chart, bool, error) { return kernelChart(r) },
	)
	for _, build := range builders {
		c, ok, err := build()
		if err != nil {
			return nil, err
		}
		if ok {
			p.Charts = append(p.Charts, c)
		}
	}
	if len(p.Charts) > 0 {
		p.ECharts = template.JS(echartsJS)
	}

	for i, l := range r.Layers {
		omega := "—"
		if v, ok := l.Omega[l.Bits]; ok {
			omega = fmtNum(v)
			if se, ok := l.OmegaStderr[l.Bits]; ok && finite(se) && finite(v) {
				omega += " ± " + fmtNum(se)
			}
		}
		trace := fmtNum(l.Trace)
		if finite(l.Trace) && finite(l.TraceStderr) {
			trace += " ± " + fmtNum(l.TraceStderr)
		}
		p.Layers = append(p.Layers, layerRow{
			Index: i, Name: l.Name, Op: l.Op, Params: strconv.FormatInt(l.Params, 10),
			Bits: fmtBits(l.Bits), ABits: fmtBits(l.ABits), Omega: omega, Trace: trace,
			Latency: fmtNum(l.LatencyMs), Size: fmtBytes(l.SizeBytes),
		})
	}
	p.FrontResource = r.frontResource()
	for i, c := range r.MeasuredFront {
		b := "—"
		if i < len(r.FrontBudgets) {
			b = fmtQuantity(r.FrontBudgets[i], map[string]string{"latency": "ms", "size": "bytes", "bops": "BOPs"}[p.FrontResource])
		}
		p.Front = append(p.Front, frontRow{Budget: b, Label: c.Label, Bits: bitHistogram(c.Bits), Loss: fmtNum(c.MeasuredLoss),
			Accuracy: fmtPct(c.Accuracy), Latency: fmtNum(c.LatencyMs), Size: fmtBytes(c.SizeBytes), BOPs: fmtSI(c.BOPs, "")})
	}
	for i := range r.Candidates {
		c := &r.Candidates[i]
		p.Candidates = append(p.Candidates, candidateRow{
			Chosen: r.Chosen != nil && c.Label == r.Chosen.Label && slices.Equal(c.Bits, r.Chosen.Bits),
			Label:  c.Label, Bits: bitHistogram(c.Bits), Objective: fmtNum(c.Objective),
			Loss: fmtNum(c.MeasuredLoss), Accuracy: fmtPct(c.Accuracy), Latency: fmtNum(c.LatencyMs),
			Size: fmtBytes(c.SizeBytes), BOPs: fmtSI(c.BOPs, ""),
		})
	}
	p.Latency, p.LatencyBaseline = latencyRows(r)
	return p, nil
}

// latencyRows formats the latency checks: predicted and measured side by
// side, the prediction's error, and each measured time's speed-up over
// the baseline check's (— without one).
func latencyRows(r *Report) ([]latencyRow, string) {
	base, baseLabel := math.NaN(), ""
	for _, l := range r.Latency {
		if l.Baseline {
			base, baseLabel = l.MeasuredMs, l.Label
		}
	}
	var rows []latencyRow
	for _, l := range r.Latency {
		row := latencyRow{Chosen: r.Chosen != nil && l.Label == r.Chosen.Label, Baseline: l.Baseline, Label: l.Label,
			Predicted: fmtNum(l.PredictedMs), Measured: fmtNum(l.MeasuredMs), Error: "—", Speed: "—"}
		if finite(l.PredictedMs) && finite(l.MeasuredMs) && l.MeasuredMs > 0 {
			row.Error = fmt.Sprintf("%+.1f%%", 100*(l.PredictedMs/l.MeasuredMs-1))
		}
		if finite(base) && finite(l.MeasuredMs) && l.MeasuredMs > 0 {
			row.Speed = fmt.Sprintf("%.2f×", base/l.MeasuredMs)
		}
		rows = append(rows, row)
	}
	return rows, baseLabel
}

// fmtNum formats v with 4 significant digits, in plain decimal notation
// from 0.001 to 999999 and in exponent notation outside, or as an em dash
// when unknown.
func fmtNum(v float64) string {
	if !finite(v) {
		return "—"
	}
	a := math.Abs(v)
	if a == 0 || a < 1e-3 || a >= 1e6 {
		return strconv.FormatFloat(v, 'g', 4, 64)
	}
	decimals := max(0, 3-int(math.Floor(math.Log10(a))))
	s := strconv.FormatFloat(v, 'f', decimals, 64)
	if strings.Contains(s, ".") {
		s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	}
	return s
}

// fmtQuantity formats v in unit, scaling byte counts to kB/MB/GB.
func fmtQuantity(v float64, unit string) string {
	switch strings.ToLower(unit) {
	case "b", "byte", "bytes":
		return fmtBytes(v)
	case "bops":
		return fmtSI(v, unit)
	case "":
		return fmtNum(v)
	}
	return fmtUnit(v, unit)
}

// fmtSI formats a large count with a decimal SI prefix: "3.2 GBOPs".
func fmtSI(v float64, unit string) string {
	if !finite(v) {
		return "—"
	}
	a := math.Abs(v)
	for _, p := range []struct {
		div    float64
		prefix string
	}{{1e12, "T"}, {1e9, "G"}, {1e6, "M"}, {1e3, "k"}} {
		if a >= p.div {
			return fmtNum(v/p.div) + " " + p.prefix + unit
		}
	}
	return fmtUnit(v, unit)
}

func fmtUnit(v float64, unit string) string {
	if !finite(v) {
		return "—"
	}
	return fmtNum(v) + " " + unit
}

func fmtBytes(v float64) string {
	if !finite(v) {
		return "—"
	}
	div, unit := unitScale(v)
	return fmtNum(v/div) + " " + unit
}

func fmtPct(v float64) string {
	if !finite(v) {
		return "—"
	}
	return strconv.FormatFloat(100*v, 'f', 2, 64) + " %"
}

func fmtBits(b int) string {
	if b <= 0 {
		return "—"
	}
	return quant.FormatOption(b) // "3", or "3g64" in groups of 64
}

// bitHistogram summarises per-layer bits as "2b×3 4b×10 8b×2".
func bitHistogram(bits []int) string {
	if len(bits) == 0 {
		return "—"
	}
	count := map[int]int{}
	var keys []int
	for _, b := range bits {
		if count[b] == 0 {
			keys = append(keys, b)
		}
		count[b]++
	}
	slices.SortFunc(keys, quant.CompareOptions)
	parts := make([]string, len(keys))
	for i, b := range keys {
		parts[i] = fmt.Sprintf("%sb×%d", quant.FormatOption(b), count[b])
	}
	return strings.Join(parts, " ")
}

var pageTemplate = template.Must(template.New("report").Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{{.Title}}</title>
<style>
body { font-family: system-ui, sans-serif; margin: 0 auto; max-width: 1200px; padding: 0 16px 40px; color: #222; }
h1 { font-size: 1.6em; margin: 24px 0 4px; }
h2 { font-size: 1.2em; margin: 28px 0 8px; border-bottom: 1px solid #ddd; }
.meta { color: #555; margin: 0 0 12px; }
.lead { font-size: 1.05em; margin: 8px 0 16px; }
.lead p { margin: 4px 0; }
.charts { display: grid; grid-template-columns: repeat(auto-fill, minmax(560px, 1fr)); gap: 16px; margin-top: 24px; }
.chart { border: 1px solid #eee; padding: 6px 0; min-width: 0; }
.chart.wide { grid-column: 1 / -1; }
table { border-collapse: collapse; font-size: 0.9em; }
th, td { border: 1px solid #ddd; padding: 3px 8px; text-align: right; }
th { background: #f4f4f4; }
td.text { text-align: left; }
tr.chosen td { background: #fdecea; font-weight: bold; }
</style>
{{- if .ECharts}}
<script type="text/javascript">{{.ECharts}}</script>
{{- end}}
</head>
<body>
<h1>{{.Title}}</h1>
<p class="meta">{{if .Model}}model: <code>{{.Model}}</code>{{end}}{{if .Method}} · search: {{.Method}}{{end}}{{if .Generated}} · {{.Generated}}{{end}}</p>
{{- if .Lead}}
<div class="lead">
{{- range .Lead}}
<p>{{.}}</p>
{{- end}}
</div>
{{- end}}
{{- if .Summary}}
<table class="summary">
{{- range .Summary}}
<tr><th>{{.Name}}</th><td>{{.Value}}</td></tr>
{{- end}}
</table>
{{- end}}
{{- if .Charts}}
<div class="charts">
{{- range .Charts}}
<div class="chart{{if .Wide}} wide{{end}}">
{{.Element}}
{{.Script}}
</div>
{{- end}}
</div>
<script type="text/javascript">
"use strict";
// Each chart measured its container while the page was still being laid
// out; size them all again now, and whenever the window changes.
(function () {
    function resizeAll() {
        document.querySelectorAll(".chart .item").forEach(function (el) {
            var c = echarts.getInstanceByDom(el);
            if (c) { c.resize(); }
        });
    }
    resizeAll();
    window.addEventListener("resize", resizeAll);
})();
</script>
{{- end}}
{{- if .Front}}
<h2 id="h-front">Front: what the search returns at each budget</h2>
<p class="meta">Each row is verified and refined on held-out data at its {{.FrontResource}} budget; the proxy's unverified optima are in the charts' legend.</p>
<table class="front">
<tr><th>{{.FrontResource}} budget</th><th>configuration</th><th>bits</th><th>measured loss</th><th>accuracy</th><th>latency (ms)</th><th>size</th><th>BOPs</th></tr>
{{- range .Front}}
<tr><td>{{.Budget}}</td><td class="text">{{.Label}}</td><td class="text">{{.Bits}}</td><td>{{.Loss}}</td><td>{{.Accuracy}}</td><td>{{.Latency}}</td><td>{{.Size}}</td><td>{{.BOPs}}</td></tr>
{{- end}}
</table>
{{- end}}
{{- if .Layers}}
<h2 id="h-layers">Layers</h2>
<table class="layers">
<tr><th>#</th><th>layer</th><th>op</th><th>params</th><th>W bits</th><th>A bits</th><th>Omega at chosen bits (± s.e.)</th><th>Tr(H) ± s.e.</th><th>latency (ms)</th><th>size</th></tr>
{{- range .Layers}}
<tr><td>{{.Index}}</td><td class="text">{{.Name}}</td><td class="text">{{.Op}}</td><td>{{.Params}}</td><td>{{.Bits}}</td><td>{{.ABits}}</td><td>{{.Omega}}</td><td>{{.Trace}}</td><td>{{.Latency}}</td><td>{{.Size}}</td></tr>
{{- end}}
</table>
{{- end}}
{{- if or .FloatNodes .FloatNodesNote}}
<h2 id="h-float-nodes">Nodes the integer engine runs in float</h2>
<p class="meta">These operators have no integer path: the integer-only engine dequantizes their inputs, runs them in float and quantizes their outputs again.{{if .FloatNodesNote}} {{.FloatNodesNote}}{{end}}</p>
{{- if .FloatNodes}}
<ul class="float-nodes">
{{- range .FloatNodes}}
<li><code>{{.}}</code></li>
{{- end}}
</ul>
{{- end}}
{{- end}}
{{- if .Latency}}
<h2 id="h-latency">Latency on the integer engine</h2>
<p class="meta">Predicted by the cost model and measured on the integer-only engine at batch 1, side by side{{if .LatencyBaseline}}; speed-up is the measured time of {{.LatencyBaseline}} over each one's{{end}}. The chosen row is highlighted.</p>
<table class="latency">
<tr><th>configuration</th><th>predicted (ms)</th><th>measured (ms)</th><th>prediction error</th><th>speed-up</th></tr>
{{- range .Latency}}
<tr{{if .Chosen}} class="chosen"{{end}}><td class="text">{{.Label}}</td><td>{{.Predicted}}</td><td>{{.Measured}}</td><td>{{.Error}}</td><td>{{.Speed}}</td></tr>
{{- end}}
</table>
{{- end}}
{{- if .Candidates}}
<h2 id="h-candidates">Verified candidates</h2>
<p class="meta">The proxy objective is the sum of per-layer sensitivities; the measured loss is that of the real quantized model on held-out data. The chosen row is highlighted.</p>
<table class="candidates">
<tr><th>configuration</th><th>bits</th><th>proxy objective</th><th>measured loss</th><th>accuracy</th><th>latency (ms)</th><th>size</th><th>BOPs</th></tr>
{{- range .Candidates}}
<tr{{if .Chosen}} class="chosen"{{end}}><td class="text">{{.Label}}</td><td class="text">{{.Bits}}</td><td>{{.Objective}}</td><td>{{.Loss}}</td><td>{{.Accuracy}}</td><td>{{.Latency}}</td><td>{{.Size}}</td><td>{{.BOPs}}</td></tr>
{{- end}}
</table>
{{- end}}
</body>
</html>
`))
