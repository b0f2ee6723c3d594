package pipeline

import (
	"bytes"
	"fmt"
	"math"
	"strings"

	"mpsearch/plots"
	"mpsearch/quant"
)

// point converts a candidate for the report.
func (o *Outputs) point(c *Candidate) plots.Point {
	p := plots.Point{Label: c.Label, Bits: c.Bits, Objective: c.Objective, MeasuredLoss: c.MeasuredLoss,
		LatencyMs: math.NaN(), SizeBytes: math.NaN(), BOPs: math.NaN(), Accuracy: math.NaN(), ReferenceOnly: c.ReferenceOnly}
	if v, ok := c.Costs[Latency]; ok {
		p.LatencyMs = v
	}
	if v, ok := c.Costs[Size]; ok {
		p.SizeBytes = v
	}
	if v, ok := c.Costs[BOPs]; ok {
		p.BOPs = v
	}
	if v, ok := o.Accuracy[c.Label]; ok {
		p.Accuracy = v
	}
	return p
}

// report builds the HTML report.
func (o *Outputs) report() ([]byte, error) {
	res := o.Result
	r := &plots.Report{Title: "mpsearch: mixed-precision search", Model: o.ModelName, Method: o.Method}
	r.Generated = "bits " + fmtInts(res.Bits) + "; metric " + metricName(res.Table)
	if o.Profile != "" {
		r.Generated += "; latency from " + o.Profile
	}
	for i, l := range res.Table.Layers {
		b := res.Chosen.Bits[i]
		pl := plots.Layer{Name: l.Name, Op: l.Op, Params: l.Params, Bits: b, ABits: l.ActBits(), Omega: map[int]float64{},
			Trace: l.Trace, TraceStderr: l.TraceStderr, LatencyMs: math.NaN(), SizeBytes: float64(l.Params) * float64(b) / 8}
		if v, ok := res.LayerCost(Size, i, b); ok { // the scales included where the table gives them
			pl.SizeBytes = v
		}
		if l.Trace == 0 && l.TraceStderr == 0 {
			pl.Trace, pl.TraceStderr = math.NaN(), math.NaN()
		}
		for _, bb := range res.Bits {
			pl.Omega[bb], _ = l.OmegaAt(bb)
			if se, ok := l.Stderr[res.Table.Metric][bb]; ok {
				if pl.OmegaStderr == nil {
					pl.OmegaStderr = map[int]float64{}
				}
				pl.OmegaStderr[bb] = se
			}
		}
		if i < len(o.LayerLatency) {
			pl.LatencyMs = o.LayerLatency[i]
		}
		r.Layers = append(r.Layers, pl)
	}
	for _, c := range res.Front {
		r.Front = append(r.Front, o.point(c))
	}
	for _, p := range res.MeasuredFront {
		r.MeasuredFront = append(r.MeasuredFront, o.point(p.Chosen))
		r.FrontBudgets = append(r.FrontBudgets, p.Budget)
		r.FrontResource = p.Resource
	}
	r.FrontNote = o.frontNote()
	r.FloatAccuracy = math.NaN()
	if a, ok := o.Accuracy["float"]; ok {
		r.FloatAccuracy = a
	}
	r.FloatNodes, r.FloatNodesNote = o.FloatNodes, o.FloatNodesNote
	for _, c := range res.Uniform {
		r.Uniform = append(r.Uniform, o.point(c))
	}
	for _, c := range res.Measured {
		r.Candidates = append(r.Candidates, o.point(c))
	}
	if rf := res.Refinement; rf != nil && len(rf.Steps) > 1 {
		// The path of the refinement (its last step is Chosen, listed above).
		for _, c := range rf.Steps[:len(rf.Steps)-1] {
			r.Candidates = append(r.Candidates, o.point(c))
		}
	}
	if res.RL != nil {
		r.RL = append(r.RL, o.point(res.RL.Best))
		if fmt.Sprint(res.RL.Agent.Bits) != fmt.Sprint(res.RL.Best.Bits) {
			r.RL = append(r.RL, o.point(res.RL.Agent))
		}
		for _, c := range res.RL.Front {
			r.RL = append(r.RL, o.point(c))
		}
		for _, c := range res.RL.Curve {
			r.LearningCurve = append(r.LearningCurve, plots.CurvePoint{Episode: c.Episode, Best: c.Best, Gap: math.NaN()})
		}
	}
	ch := o.point(res.Chosen)
	r.Chosen = &ch
	for _, name := range Resources {
		if lim, ok := res.Limits[name]; ok {
			r.Budgets = append(r.Budgets, plots.Budget{Resource: name, Unit: Units[name], Limit: lim, Used: res.Chosen.Costs[name]})
		}
	}
	r.Latency = o.LatencyChecks
	r.Kernels = o.Kernels
	var buf bytes.Buffer
	if err := plots.Write(&buf, r); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// frontNote says which budgets the front held fixed while it swept its
// resource ("" with one budget or no front).
func (o *Outputs) frontNote() string {
	res := o.Result
	if len(res.MeasuredFront) == 0 {
		return ""
	}
	swept := res.MeasuredFront[0].Resource
	var held []string
	for _, r := range Resources {
		if lim, ok := res.Limits[r]; ok && r != swept {
			held = append(held, fmt.Sprintf("%s budget held at %.4g %s", r, lim, Units[r]))
		}
	}
	if len(held) == 0 {
		return swept + " swept"
	}
	return swept + " swept; " + strings.Join(held, ", ")
}

func fmtInts(v []int) string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = quant.FormatOption(x)
	}
	return strings.Join(s, ",")
}
