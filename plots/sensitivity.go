package plots

import (
	"math"
	"strconv"
	"strings"

	"github.com/go-echarts/go-echarts/v2/charts"
	"github.com/go-echarts/go-echarts/v2/opts"

	"mpsearch/quant"
)

// Bar layout of the sensitivity chart, shared by the bars and the error
// bars drawn over them (api.barLayout must see the same gaps).
const (
	barGap         = "20%"
	barCategoryGap = "25%"
)

// errorBarJS draws one error bar per data item [category, low, high,
// series index] at the centre of that series' bar: ECharts' barLayout
// gives each series' offset within the category for count bar series.
const errorBarJS = `function (params, api) {
var x = api.value(0), lo = api.coord([x, api.value(1)]), hi = api.coord([x, api.value(2)]);
var bars = api.barLayout({barGap: '` + barGap + `', barCategoryGap: '` + barCategoryGap + `', count: COUNT});
var b = bars[api.value(3)], cx = lo[0] + b.offsetCenter, w = Math.max(2, b.width / 3);
var st = {stroke: '#333', lineWidth: 1.2, fill: null};
return {type: 'group', children: [
{type: 'line', shape: {x1: cx - w, y1: hi[1], x2: cx + w, y2: hi[1]}, style: st},
{type: 'line', shape: {x1: cx, y1: hi[1], x2: cx, y2: lo[1]}, style: st},
{type: 'line', shape: {x1: cx - w, y1: lo[1], x2: cx + w, y2: lo[1]}, style: st}]};
}`

// sensitivityChart draws Omega per layer and bit width as signed bars on a
// linear axis (a loss decrease is negative, a zero is a visible zero), with
// ±1 standard error bars where the table has them.
func sensitivityChart(r *Report) (chart, bool, error) {
	bits := sortedBits(r.Layers)
	if len(bits) == 0 {
		return chart{}, false, nil
	}
	const id, title = "sensitivity", "Per-layer sensitivity"
	names := make([]string, len(r.Layers))
	for i, l := range r.Layers {
		names[i] = l.Name
	}
	subtitle := "bars: Omega_i(b), signed, linear axis; whiskers: ±1 standard error"
	interval := "0"
	if len(r.Layers) > maxNamedLayers {
		interval = ""
		subtitle += "; scroll to zoom"
	}
	fmtV := opts.FuncOpts("function (v) { return Number(v).toPrecision(3); }")
	bar := charts.NewBar()
	bar.SetGlobalOptions(common(id, title, subtitle)...)
	bar.SetGlobalOptions(
		charts.WithTooltipOpts(opts.Tooltip{Show: opts.Bool(true), Trigger: "axis"}),
		charts.WithXAxisOpts(opts.XAxis{Type: "category", AxisLabel: &opts.AxisLabel{Rotate: 30, Interval: interval}}),
		charts.WithYAxisOpts(opts.YAxis{Type: "value", Name: "Omega", AxisLabel: &opts.AxisLabel{Formatter: fmtV}}),
	)
	if len(r.Layers) > maxNamedLayers {
		bar.SetGlobalOptions(charts.WithDataZoomOpts(opts.DataZoom{Type: "inside", XAxisIndex: 0}))
	}
	bar.SetXAxis(names)
	var whiskers []opts.CustomData
	for k, b := range bits {
		data := make([]opts.BarData, len(r.Layers))
		for i, l := range r.Layers {
			v, ok := l.Omega[b]
			if !ok {
				v = math.NaN()
			}
			data[i] = opts.BarData{Value: barValue(round4(v), false)}
			if se, ok := l.OmegaStderr[b]; ok && finite(se) && se > 0 && finite(v) {
				whiskers = append(whiskers, opts.CustomData{Value: []float64{float64(i), round4(v - se), round4(v + se), float64(k)}})
			}
		}
		bar.AddSeries(quant.FormatOption(b)+"-bit Omega", data,
			charts.WithBarChartOpts(opts.BarChart{BarGap: barGap, BarCategoryGap: barCategoryGap}),
			charts.WithSeriesTooltipOpts(opts.SeriesTooltip{ValueFormatter: fmtV}))
	}
	if len(whiskers) > 0 {
		cu := charts.NewCustom()
		cu.AddSeries("±1 standard error", whiskers,
			charts.WithCustomChartOpts(opts.CustomChart{RenderItem: opts.FuncOpts(strings.Replace(errorBarJS, "COUNT", strconv.Itoa(len(bits)), 1))}),
			charts.WithItemStyleOpts(opts.ItemStyle{Color: "#333333"}),
			charts.WithSeriesTooltipOpts(opts.SeriesTooltip{ValueFormatter: fmtV}))
		bar.Overlap(cu)
	}
	c, err := finish(id, bar)
	c.Wide = true
	return c, true, err
}

// bitsChart draws the chosen weight bits per layer as their own row of
// labelled bars.
func bitsChart(r *Report) (chart, bool, error) {
	data := make([]opts.BarData, len(r.Layers))
	names := make([]string, len(r.Layers))
	any, maxBits := false, 0
	for i, l := range r.Layers {
		names[i] = l.Name
		data[i] = opts.BarData{Value: "-"}
		if l.Bits > 0 {
			data[i] = opts.BarData{Value: l.Bits}
			any, maxBits = true, max(maxBits, l.Bits)
		}
	}
	if !any {
		return chart{}, false, nil
	}
	const id = "chosen_bits"
	interval := "0"
	if len(r.Layers) > maxNamedLayers {
		interval = ""
	}
	bar := charts.NewBar()
	bar.SetGlobalOptions(common(id, "Chosen weight bits per layer", "the returned configuration")...)
	bar.SetGlobalOptions(
		charts.WithXAxisOpts(opts.XAxis{Type: "category", AxisLabel: &opts.AxisLabel{Rotate: 30, Interval: interval}}),
		charts.WithYAxisOpts(opts.YAxis{Type: "value", Name: "weight bits", Min: 0, Max: maxBits}),
	)
	bar.SetXAxis(names)
	bar.AddSeries("chosen bits", data,
		charts.WithItemStyleOpts(opts.ItemStyle{Color: colorChosen}),
		charts.WithLabelOpts(opts.Label{Show: opts.Bool(true), Position: "top", Formatter: "{c}"}),
		charts.WithLabelLayoutOpts(opts.LabelLayout{HideOverlap: opts.Bool(true)}),
	)
	c, err := finish(id, bar)
	c.Wide = true
	return c, true, err
}
