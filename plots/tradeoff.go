package plots

import (
	"slices"

	"github.com/go-echarts/go-echarts/v2/charts"
	"github.com/go-echarts/go-echarts/v2/opts"
)

// Series names of the trade-off charts.
const (
	seriesFront     = "front: returned at each budget"
	seriesProxy     = "proxy optimum, unverified"
	seriesUniform   = "uniform, every layer"
	seriesUniformKe = "uniform, fixed layers kept"
	seriesCands     = "verified candidates"
	seriesRL        = "RL search"
	seriesChosen    = "chosen"
)

const colorProxy = "#aab4d4"

// hiddenSeries start unselected in the legend (a click shows them).
var hiddenSeries = map[string]bool{seriesProxy: false}

func (r *Report) pointGroups() []pointGroup {
	var plain, kept []*Point
	for i := range r.Uniform {
		if r.Uniform[i].ReferenceOnly {
			plain = append(plain, &r.Uniform[i])
		} else {
			kept = append(kept, &r.Uniform[i])
		}
	}
	groups := []pointGroup{
		{name: seriesFront, points: ptrs(r.MeasuredFront), color: colorFront, symbol: "circle", size: 9, line: true},
		{name: seriesProxy, points: ptrs(r.Front), color: colorProxy, symbol: "emptyCircle", size: 7, line: true},
		{name: seriesRL, points: ptrs(r.RL), color: colorRL, symbol: "triangle", size: 9},
		{name: seriesUniform, points: plain, color: colorUniform, symbol: "emptyDiamond", size: 13, labels: true},
		{name: seriesUniformKe, points: kept, color: colorUniform, symbol: "diamond", size: 13, labels: true},
		{name: seriesCands, points: ptrs(r.Candidates), color: colorCandidate, symbol: "rect", size: 8},
	}
	if r.Chosen != nil {
		groups = append(groups, chosenGroup(r.Chosen, true))
	}
	return groups
}

// chosenGroup marks the chosen configuration with a ring around the point,
// leaving the point of its own series visible inside.
func chosenGroup(p *Point, labels bool) pointGroup {
	return pointGroup{name: seriesChosen, points: []*Point{p}, color: colorChosen, symbol: "circle", size: 20, labels: labels, ring: true}
}

func allPoints(groups []pointGroup) []*Point {
	var all []*Point
	for _, g := range groups {
		all = append(all, g.points...)
	}
	return all
}

// frontResource is the resource the trade-off charts use: the report's
// FrontResource, else the first budget's, else size.
func (r *Report) frontResource() string {
	if r.FrontResource != "" {
		return r.FrontResource
	}
	if len(r.Budgets) > 0 {
		return r.Budgets[0].Resource
	}
	return "size"
}

// resourceAxis is the chart axis of a resource.
func resourceAxis(resource string, points []*Point) (axis, string) {
	switch resource {
	case "latency":
		return latencyAxis(), "predicted latency"
	case "bops":
		return axis{"BOPs (G)", func(p *Point) float64 { return p.BOPs / 1e9 }, false}, "BOPs"
	}
	return sizeAxis(points), "weight size"
}

// tradeOffCharts draws accuracy, measured loss and the proxy objective
// against the swept resource alone.
func tradeOffCharts(r *Report) []func() (chart, bool, error) {
	groups := r.pointGroups()
	res := r.frontResource()
	x, xname := resourceAxis(res, allPoints(groups))
	note := "one resource per axis"
	if r.FrontNote != "" {
		note = r.FrontNote
	}
	loss := axis{"measured held-out loss", func(p *Point) float64 { return p.MeasuredLoss }, true}
	return []func() (chart, bool, error){
		func() (chart, bool, error) {
			return tradeOff("accuracy_"+res, "Accuracy vs "+xname, "upper left is better; "+note, groups, x, accuracyAxis())
		},
		func() (chart, bool, error) {
			return tradeOff("loss_"+res, "Measured loss vs "+xname, "lower left is better; "+note, groups, x, loss)
		},
		func() (chart, bool, error) {
			return tradeOff("objective_"+res, "Proxy objective vs "+xname, "the search input's sum, unverified; "+note, groups, x, objectiveAxis())
		},
	}
}

// xy is one drawn point.
type xy struct {
	name string
	x, y float64
}

// keptPoints returns each group's points with both values known (sorted by
// x for lines) and whether any y is not positive.
func keptPoints(groups []pointGroup, x, y axis) (kept [][]xy, any, positive bool) {
	positive = true
	for _, g := range groups {
		var pts []xy
		for _, p := range g.points {
			px, py := x.value(p), y.value(p)
			if !finite(px) || !finite(py) {
				continue
			}
			pts = append(pts, xy{p.Label, px, py})
			positive = positive && py > 0
		}
		if g.line {
			slices.SortStableFunc(pts, func(a, b xy) int {
				switch {
				case a.x < b.x:
					return -1
				case a.x > b.x:
					return 1
				}
				return 0
			})
		}
		kept = append(kept, pts)
		any = any || len(pts) > 0
	}
	return kept, any, positive
}

// tradeOff draws y against x for every group that has points with both
// values known; it returns false when no group has any. Labels that would
// overlap another are hidden (every point's name is in its tooltip).
func tradeOff(id, title, subtitle string, groups []pointGroup, x, y axis) (chart, bool, error) {
	kept, any, positive := keptPoints(groups, x, y)
	if !any {
		return chart{}, false, nil
	}
	yType := "value"
	if positive && y.logIfPositive {
		yType = "log"
	}
	sc := charts.NewScatter()
	sc.SetGlobalOptions(common(id, title, subtitle)...)
	sc.SetGlobalOptions(
		charts.WithLegendOpts(opts.Legend{Show: opts.Bool(true), Bottom: "0", Selected: hiddenSeries}),
		charts.WithXAxisOpts(opts.XAxis{Type: "value", Name: x.name, NameLocation: "middle", NameGap: 30, Scale: opts.Bool(true)}),
		charts.WithYAxisOpts(opts.YAxis{Type: yType, Name: y.name, Scale: opts.Bool(true)}),
	)
	var overlays []charts.Overlaper
	noOverlap := charts.WithLabelLayoutOpts(opts.LabelLayout{HideOverlap: opts.Bool(true)})
	for i, g := range groups {
		pts := kept[i]
		if len(pts) == 0 {
			continue
		}
		label := charts.WithLabelOpts(opts.Label{Show: opts.Bool(g.labels), Formatter: "{b}", Position: "right"})
		if g.line {
			data := make([]opts.LineData, len(pts))
			for j, p := range pts {
				data[j] = opts.LineData{Name: p.name, Value: []float64{p.x, p.y}}
			}
			ln := charts.NewLine()
			ln.AddSeries(g.name, data,
				charts.WithLineChartOpts(opts.LineChart{Symbol: g.symbol, SymbolSize: g.size, ShowSymbol: opts.Bool(true)}),
				charts.WithItemStyleOpts(opts.ItemStyle{Color: g.color}),
				charts.WithLineStyleOpts(opts.LineStyle{Color: g.color, Width: 2}),
				label, noOverlap,
			)
			overlays = append(overlays, ln)
			continue
		}
		data := make([]opts.ScatterData, len(pts))
		for j, p := range pts {
			data[j] = opts.ScatterData{Name: p.name, Value: []float64{p.x, p.y}}
		}
		style := opts.ItemStyle{Color: g.color}
		if g.ring {
			style = opts.ItemStyle{Color: "rgba(0,0,0,0)", BorderColor: g.color, BorderWidth: 3}
		}
		sc.AddSeries(g.name, data,
			charts.WithScatterChartOpts(opts.ScatterChart{Symbol: g.symbol, SymbolSize: g.size}),
			charts.WithItemStyleOpts(style), label, noOverlap,
		)
	}
	sc.Overlap(overlays...)
	// Overlap appends the line series; restore the group order so that the
	// legend reads as the groups do and the chosen point is drawn on top.
	order := map[string]int{}
	for i, g := range groups {
		order[g.name] = i
	}
	slices.SortStableFunc(sc.MultiSeries, func(a, b charts.SingleSeries) int { return order[a.Name] - order[b.Name] })
	c, err := finish(id, sc)
	return c, true, err
}
