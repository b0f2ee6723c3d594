package plots

import (
	"encoding/json"
	"fmt"
	"html/template"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/go-echarts/go-echarts/v2/charts"
	"github.com/go-echarts/go-echarts/v2/opts"
	"github.com/go-echarts/go-echarts/v2/render"

	"mpsearch/quant"
)

// Series colours, fixed so that the same kind of point looks the same on
// every chart.
const (
	colorFront     = "#5470c6"
	colorRL        = "#91cc75"
	colorUniform   = "#fc8452"
	colorCandidate = "#9a60b4"
	colorChosen    = "#d62728"
	colorGuide     = "#888888"
)

const chartHeight = "420px"

// maxNamedLayers is the most layers whose names the sensitivity chart
// prints all at once.
const maxNamedLayers = 40

// chart is one rendered chart: its container element and its script.
type chart struct {
	ID      string
	Element template.HTML
	Script  template.HTML
	Wide    bool // spans the full page width
}

// renderable is what go-echarts' chart types share.
type renderable interface {
	RenderSnippet() render.ChartSnippet
	JSON() map[string]interface{}
}

// finish renders c. It re-encodes the option object with encoding/json to
// catch values JSON cannot carry (go-echarts drops the encoder error and would
// emit an empty option), and escapes "</" as "<\/" and "<!--" as "<\u0021--"
// inside the script (both valid in JSON and JavaScript strings, the only
// place they can occur) so that no user-supplied string such as a layer name
// can end the script element early or switch the HTML parser's script state.
func finish(id string, c renderable) (chart, error) {
	snip := c.RenderSnippet()
	if _, err := json.Marshal(c.JSON()); err != nil {
		return chart{}, fmt.Errorf("plots: chart %s: encode options: %w", id, err)
	}
	const open, end = `<script type="text/javascript">`, `</script>`
	s := strings.TrimSpace(snip.Script)
	if !strings.HasPrefix(s, open) || !strings.HasSuffix(s, end) {
		return chart{}, fmt.Errorf("plots: chart %s: unexpected go-echarts script snippet", id)
	}
	body := s[len(open) : len(s)-len(end)]
	body = strings.ReplaceAll(body, "</", `<\/`)
	body = strings.ReplaceAll(body, "<!--", `<\u0021--`)
	return chart{
		ID:      id,
		Element: template.HTML(strings.TrimSpace(snip.Element)),
		Script:  template.HTML(open + body + end),
	}, nil
}

// common returns the global options every chart shares: an explicit chart
// ID (go-echarts would otherwise draw a random one), a fixed size, no
// animation (static report; screenshots are then final at load).
func common(id, title, subtitle string) []charts.GlobalOpts {
	return []charts.GlobalOpts{
		charts.WithInitializationOpts(opts.Initialization{ChartID: id, Width: "100%", Height: chartHeight}),
		charts.WithTitleOpts(opts.Title{Title: title, Subtitle: subtitle, Left: "center"}),
		charts.WithAnimation(false),
		charts.WithTooltipOpts(opts.Tooltip{Show: opts.Bool(true), Trigger: "item"}),
		charts.WithLegendOpts(opts.Legend{Show: opts.Bool(true), Bottom: "0"}),
		charts.WithGridOpts(opts.Grid{Left: "80", Right: "80", Top: "70", Bottom: "70", ContainLabel: opts.Bool(true)}),
	}
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

// barValue is v, or ECharts' missing-value marker "-" when v is not finite
// or, on a logarithmic axis, not positive.
func barValue(v float64, logAxis bool) interface{} {
	if !finite(v) || (logAxis && v <= 0) {
		return "-"
	}
	return v
}

// unitScale picks a decimal unit for byte counts up to max.
func unitScale(max float64) (div float64, unit string) {
	switch {
	case max >= 1e9:
		return 1e9, "GB"
	case max >= 1e6:
		return 1e6, "MB"
	case max >= 1e3:
		return 1e3, "kB"
	}
	return 1, "B"
}

// axis describes one quantity of a Point that can go on a chart axis.
type axis struct {
	name  string
	value func(p *Point) float64
	// logIfPositive asks for a logarithmic axis when every value is positive.
	logIfPositive bool
}

func latencyAxis() axis {
	return axis{"predicted latency (ms)", func(p *Point) float64 { return p.LatencyMs }, false}
}

func sizeAxis(points []*Point) axis {
	max := 0.0
	for _, p := range points {
		if finite(p.SizeBytes) && p.SizeBytes > max {
			max = p.SizeBytes
		}
	}
	div, unit := unitScale(max)
	return axis{"weight size (" + unit + ")", func(p *Point) float64 { return p.SizeBytes / div }, false}
}

func objectiveAxis() axis {
	// Objectives span orders of magnitude between 2-bit and 8-bit models.
	return axis{"objective (sum of Omega)", func(p *Point) float64 { return p.Objective }, true}
}

func accuracyAxis() axis {
	return axis{"top-1 accuracy (%)", func(p *Point) float64 { return 100 * p.Accuracy }, false}
}

// pointGroup is one series of a trade-off chart.
type pointGroup struct {
	name   string
	points []*Point
	color  string
	symbol string
	size   int
	line   bool // join the points, sorted by x (the Pareto front)
	labels bool // print each point's label
	ring   bool // hollow symbol with a thick border
}

func ptrs(ps []Point) []*Point {
	out := make([]*Point, len(ps))
	for i := range ps {
		out[i] = &ps[i]
	}
	return out
}

// sortedBits returns the bit widths present in any layer's Omega, ascending.
func sortedBits(layers []Layer) []int {
	seen := map[int]bool{}
	var bits []int
	for _, l := range layers {
		for b := range l.Omega {
			if !seen[b] {
				seen[b] = true
				bits = append(bits, b)
			}
		}
	}
	slices.SortFunc(bits, quant.CompareOptions) // options in groups after their width
	return bits
}

// budgetChart draws each budget's use as a percentage of its limit, with the
// absolute figures as labels and the limit as a line at 100 %.
func budgetChart(r *Report) (chart, bool, error) {
	if len(r.Budgets) == 0 {
		return chart{}, false, nil
	}
	const id, title = "budgets", "Budget use"
	names := make([]string, len(r.Budgets))
	data := make([]opts.BarData, len(r.Budgets))
	for i, b := range r.Budgets {
		names[i] = fmt.Sprintf("%s: %s of %s", b.Resource, fmtQuantity(b.Used, b.Unit), fmtQuantity(b.Limit, b.Unit))
		pct := 100 * b.Used / b.Limit
		color := colorFront
		if b.Used > b.Limit {
			color = colorChosen
		}
		data[i] = opts.BarData{
			Value:     round4(pct),
			ItemStyle: &opts.ItemStyle{Color: color},
			Label: &opts.Label{Show: opts.Bool(true), Position: "inside", Color: "#ffffff", FontWeight: "bold",
				Formatter: strconv.FormatFloat(pct, 'f', 1, 64) + " %"},
		}
	}
	bar := charts.NewBar()
	bar.SetGlobalOptions(common(id, title, "used, as % of each limit")...)
	bar.SetGlobalOptions(
		charts.WithXAxisOpts(opts.XAxis{Type: "category"}),
		charts.WithYAxisOpts(opts.YAxis{Type: "value", Name: "% of limit", Min: 0}),
	)
	bar.SetXAxis(names)
	bar.AddSeries("used", data,
		charts.WithBarChartOpts(opts.BarChart{BarWidth: "40%"}),
		charts.WithMarkLineNameYAxisItemOpts(opts.MarkLineNameYAxisItem{Name: "limit", YAxis: 100}),
		charts.WithMarkLineStyleOpts(opts.MarkLineStyle{Symbol: []string{"none", "none"},
			LineStyle: &opts.LineStyle{Color: colorChosen, Type: "dashed", Width: 2},
			Label:     &opts.Label{Show: opts.Bool(true), Formatter: "limit"}}),
	)
	c, err := finish(id, bar)
	return c, true, err
}

// latencyChart draws measured against predicted latency with the line y = x.
func latencyChart(r *Report) (chart, bool, error) {
	const id, title = "latency", "Predicted vs measured latency"
	var data []opts.ScatterData
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, l := range r.Latency {
		if !finite(l.PredictedMs) || !finite(l.MeasuredMs) {
			continue
		}
		data = append(data, opts.ScatterData{Name: l.Label, Value: []float64{l.PredictedMs, l.MeasuredMs}})
		lo = min(lo, l.PredictedMs, l.MeasuredMs)
		hi = max(hi, l.PredictedMs, l.MeasuredMs)
	}
	if len(data) == 0 {
		return chart{}, false, nil
	}
	lo = min(lo, 0)
	sc := charts.NewScatter()
	sc.SetGlobalOptions(common(id, title, "points on the dashed line y = x are predicted exactly")...)
	sc.SetGlobalOptions(
		charts.WithXAxisOpts(opts.XAxis{Type: "value", Name: "predicted (ms)", NameLocation: "middle", NameGap: 30}),
		charts.WithYAxisOpts(opts.YAxis{Type: "value", Name: "measured (ms)"}),
	)
	sc.AddSeries("configurations", data,
		charts.WithScatterChartOpts(opts.ScatterChart{SymbolSize: 10}),
		charts.WithItemStyleOpts(opts.ItemStyle{Color: colorFront}),
		charts.WithLabelOpts(opts.Label{Show: opts.Bool(true), Formatter: "{b}", Position: "right"}),
		charts.WithLabelLayoutOpts(opts.LabelLayout{HideOverlap: opts.Bool(true)}),
	)
	ln := charts.NewLine()
	ln.AddSeries("y = x", []opts.LineData{{Value: []float64{lo, lo}}, {Value: []float64{hi, hi}}},
		charts.WithLineChartOpts(opts.LineChart{ShowSymbol: opts.Bool(false)}),
		charts.WithItemStyleOpts(opts.ItemStyle{Color: colorGuide}),
		charts.WithLineStyleOpts(opts.LineStyle{Color: colorGuide, Type: "dashed"}),
	)
	sc.Overlap(ln)
	c, err := finish(id, sc)
	return c, true, err
}

// curveChart draws the RL search's best objective per episode and, when
// known, its relative gap to the ILP optimum on a second axis.
func curveChart(r *Report) (chart, bool, error) {
	const id, title = "rl_curve", "RL learning curve"
	var best, gap []opts.LineData
	for _, p := range r.LearningCurve {
		if finite(p.Best) {
			best = append(best, opts.LineData{Value: []float64{float64(p.Episode), p.Best}})
		}
		if pct := 100 * p.Gap; finite(pct) {
			gap = append(gap, opts.LineData{Value: []float64{float64(p.Episode), round4(pct)}})
		}
	}
	if len(best) == 0 && len(gap) == 0 {
		return chart{}, false, nil
	}
	ln := charts.NewLine()
	ln.SetGlobalOptions(common(id, title, "best objective so far per episode")...)
	ln.SetGlobalOptions(
		charts.WithTooltipOpts(opts.Tooltip{Show: opts.Bool(true), Trigger: "axis"}),
		charts.WithXAxisOpts(opts.XAxis{Type: "value", Name: "episode", NameLocation: "middle", NameGap: 30}),
		charts.WithYAxisOpts(opts.YAxis{Type: "value", Name: "best objective", Scale: opts.Bool(true)}),
	)
	ln.AddSeries("best objective", best,
		charts.WithLineChartOpts(opts.LineChart{ShowSymbol: opts.Bool(false)}),
		charts.WithItemStyleOpts(opts.ItemStyle{Color: colorFront}),
	)
	if len(gap) > 0 {
		ln.ExtendYAxis(opts.YAxis{Type: "value", Name: "gap to ILP optimum (%)", Position: "right", Min: 0,
			SplitLine: &opts.SplitLine{Show: opts.Bool(false)}})
		ln.AddSeries("gap to ILP optimum (%)", gap,
			charts.WithLineChartOpts(opts.LineChart{YAxisIndex: 1, ShowSymbol: opts.Bool(false)}),
			charts.WithItemStyleOpts(opts.ItemStyle{Color: colorChosen}),
			charts.WithLineStyleOpts(opts.LineStyle{Color: colorChosen, Type: "dashed"}),
		)
	}
	c, err := finish(id, ln)
	return c, true, err
}

// kernelChart draws kernel throughput per shape (categories) and weight bit
// width (series).
func kernelChart(r *Report) (chart, bool, error) {
	if len(r.Kernels) == 0 {
		return chart{}, false, nil
	}
	const id, title = "kernels", "Integer kernel throughput"
	type shape struct{ m, k, n int }
	var shapes []shape
	var bits []int
	rate := map[shape]map[int]float64{}
	for _, k := range r.Kernels {
		s := shape{k.M, k.K, k.N}
		if rate[s] == nil {
			rate[s] = map[int]float64{}
			shapes = append(shapes, s)
		}
		if !slices.Contains(bits, k.Bits) {
			bits = append(bits, k.Bits)
		}
		rate[s][k.Bits] = k.GOPS
	}
	slices.SortFunc(shapes, func(a, b shape) int {
		if a.m != b.m {
			return a.m - b.m
		}
		if a.k != b.k {
			return a.k - b.k
		}
		return a.n - b.n
	})
	slices.Sort(bits)
	names := make([]string, len(shapes))
	for i, s := range shapes {
		names[i] = fmt.Sprintf("%d×%d×%d", s.m, s.k, s.n)
	}
	bar := charts.NewBar()
	bar.SetGlobalOptions(common(id, title, "M×K×N GEMM, u8 activations × signed weights")...)
	bar.SetGlobalOptions(
		charts.WithTooltipOpts(opts.Tooltip{Show: opts.Bool(true), Trigger: "axis"}),
		charts.WithXAxisOpts(opts.XAxis{Type: "category", AxisLabel: &opts.AxisLabel{Rotate: 20, Interval: "0"}}),
		charts.WithYAxisOpts(opts.YAxis{Type: "value", Name: "GOPS"}),
	)
	bar.SetXAxis(names)
	for _, b := range bits {
		data := make([]opts.BarData, len(shapes))
		for i, s := range shapes {
			v, ok := rate[s][b]
			if !ok {
				v = math.NaN()
			}
			data[i] = opts.BarData{Value: barValue(v, false)}
		}
		bar.AddSeries(strconv.Itoa(b)+"-bit weights", data)
	}
	c, err := finish(id, bar)
	return c, true, err
}

// lossChart draws the verifier's measured loss against the proxy objective,
// showing how far the proxy can be trusted.
func lossChart(r *Report) (chart, bool, error) {
	groups := []pointGroup{{name: "verified candidates", points: ptrs(r.Candidates), color: colorCandidate, symbol: "rect", size: 10, labels: true}}
	if r.Chosen != nil {
		groups = append(groups, chosenGroup(r.Chosen, false))
	}
	// Losses span orders of magnitude (a 2-bit configuration's beside the
	// returned one's): logarithmic when every loss is positive.
	loss := axis{"measured loss", func(p *Point) float64 { return p.MeasuredLoss }, true}
	obj := axis{"proxy objective (sum of Omega)", func(p *Point) float64 { return p.Objective }, false}
	return tradeOff("proxy_vs_loss", "Proxy objective vs measured loss", "configurations measured by the verifier", groups, obj, loss)
}

// round4 rounds to 4 significant digits to keep the page small.
func round4(v float64) float64 {
	f, _ := strconv.ParseFloat(strconv.FormatFloat(v, 'g', 4, 64), 64)
	return f
}
