package pipeline

import (
	"context"
	"fmt"
	"math"
	"slices"
	"time"

	"mpsearch/costmodel"
	"mpsearch/dataset"
	"mpsearch/export"
	"mpsearch/intengine"
	"mpsearch/network"
	"mpsearch/onnx"
	"mpsearch/plots"
	"mpsearch/quant"
	"mpsearch/tensor"
)

// Outputs renders the files of a search: bits.yaml, summary.json and, when
// the network is known, model.qdq.onnx and the accuracies; report.html.
type Outputs struct {
	Result    *SearchResult
	Method    string
	ModelName string
	Profile   string // name of the hardware profile used for latency
	Net       *network.Network
	Verifier  *NetVerifier
	EvalData  *dataset.Dataset
	// Calib, when set with Net, is used to measure the integer engine's
	// latency of a few configurations against the prediction.
	Calib *dataset.Dataset
	// Quantizer names the weight rounding (quant.MethodRTN when empty),
	// recorded in summary.json and bits.yaml; the weights themselves come
	// from Verifier.Weights.
	Quantizer string
	// BiasCorrection says the weight source corrects biases
	// (--bias-correction), recorded in summary.json and bits.yaml.
	BiasCorrection bool
	// Equalize says the network was equalized across layers (--equalize),
	// recorded in summary.json and bits.yaml.
	Equalize bool
	// ActCalib is the activation calibration (--act-calib) of the
	// verifier's ranges (NewNetVerifierCalib), recorded in summary.json
	// and bits.yaml.
	ActCalib quant.ActCalib
	// Export describes model.qdq.onnx (filled by Render when the network
	// is known): its size next to the predicted weight size, its opset.
	Export *SummaryExport
	// LayerLatency is the chosen configuration's predicted latency per
	// layer (filled by Render when latency costs are known).
	LayerLatency []float64
	// Accuracy maps "float" and candidate labels to top-1 accuracy on
	// EvalData (filled by Render).
	Accuracy map[string]float64
	// LatencyChecks compare predicted and measured latency; Kernels are
	// measured kernel throughputs (both optional, for the report).
	LatencyChecks []plots.LatencyCheck
	Kernels       []plots.KernelRate
	// FloatNodes lists the nodes the integer engine runs in float for the
	// chosen configuration ("name (Op)"; filled by Render when Net and
	// Verifier are set), FloatNodesNote why the list is unknown.
	FloatNodes     []string
	FloatNodesNote string
}

// Render computes the accuracies (with EvalData) and returns every output
// file's content by name, in writing order.
func (o *Outputs) Render(ctx context.Context, progress func(done, total int, detail string)) (map[string][]byte, []string, error) {
	res := o.Result
	o.Accuracy = map[string]float64{}
	if lat, ok := res.chosenLayerCosts(Latency); ok {
		o.LayerLatency = lat
	}
	if o.EvalData != nil && o.Verifier != nil && o.EvalData.Y != nil {
		if err := o.accuracies(ctx, progress); err != nil {
			return nil, nil, err
		}
	}
	if o.Net != nil && o.Calib != nil {
		if _, ok := res.costs[Latency]; ok {
			if err := o.measureLatency(ctx, progress); err != nil {
				return nil, nil, err
			}
		}
	}
	if o.Net != nil && o.Verifier != nil {
		if err := o.floatNodes(ctx); err != nil {
			return nil, nil, err
		}
	}
	files := map[string][]byte{}
	var order []string
	if o.Net != nil && o.Verifier != nil {
		m, note, err := export.Compact(o.Net, export.Config{Bits: res.Chosen.Bits, Act: o.Verifier.Acts, Weights: o.Verifier.Weights})
		if err != nil {
			return nil, nil, err
		}
		b, err := onnx.Marshal(m, onnx.SaveOptions{})
		if err != nil {
			return nil, nil, err
		}
		files["model.qdq.onnx"] = b
		order = append(order, "model.qdq.onnx")
		o.Export = &SummaryExport{File: "model.qdq.onnx", Bytes: int64(len(b)), Opset: m.Opset, Note: note}
	}
	sum := NewSummary(res, o.Method)
	sum.Quantizer = o.quantizer()
	sum.BiasCorrection = o.BiasCorrection
	sum.Equalize = o.Equalize
	sum.ActCalib = o.ActCalib.String()
	sum.Export = o.Export
	sum.SetLayerLatency(o.LayerLatency)
	for _, l := range o.LatencyChecks {
		sum.Latency = append(sum.Latency, SummaryLatency{Label: l.Label, PredictedMs: l.PredictedMs, MeasuredMs: l.MeasuredMs})
	}
	if a, ok := o.Accuracy["float"]; ok {
		sum.Accuracy = map[string]float64{"float": a, "quantized": o.Accuracy[res.Chosen.Label]}
		attach := func(cs []SummaryCandidate) {
			for i := range cs {
				if v, ok := o.Accuracy[cs[i].Label]; ok {
					cs[i].Accuracy = finitePtr(v)
				}
			}
		}
		attach(sum.Uniform)
		attach(sum.Verified)
		for i := range sum.Front {
			if v, ok := o.Accuracy[sum.Front[i].Label]; ok {
				sum.Front[i].Accuracy = finitePtr(v)
			}
			if v, ok := o.Accuracy[sum.Front[i].Proxy.Label]; ok {
				sum.Front[i].Proxy.Accuracy = finitePtr(v)
			}
		}
		if sum.Refinement != nil {
			st := []SummaryCandidate{sum.Refinement.Start}
			attach(st)
			sum.Refinement.Start = st[0]
		}
		if sum.Plain != nil {
			if v, ok := o.Accuracy[sum.Plain.Label]; ok {
				sum.Plain.Accuracy = finitePtr(v)
			}
		}
	}
	bf := NewBitsFile(res, o.ModelName, o.Method)
	bf.Quantizer = o.quantizer()
	bf.BiasCorrection = o.BiasCorrection
	bf.Equalize = o.Equalize
	bf.ActCalib = o.ActCalib.String()
	b, err := bf.Marshal()
	if err != nil {
		return nil, nil, err
	}
	files["bits.yaml"] = b
	order = append(order, "bits.yaml")
	if b, err = sum.Marshal(); err != nil {
		return nil, nil, err
	}
	files["summary.json"] = b
	order = append(order, "summary.json")
	if b, err = o.report(); err != nil {
		return nil, nil, err
	}
	files["report.html"] = b
	order = append(order, "report.html")
	return files, order, nil
}

// floatNodes lists the nodes the integer engine runs in float for the
// chosen configuration. The list depends on the graph alone, so the
// engine is compiled with the verifier's calibration ranges; a model the
// engine refuses gets the reason instead.
func (o *Outputs) floatNodes(ctx context.Context) error {
	err := CheckPerChannel(o.Net, o.Result.Chosen.Bits, "the integer engine")
	var ranges intengine.Ranges
	if err == nil {
		ranges, err = o.Verifier.intRanges(ctx)
	}
	if err == nil {
		var m *intengine.Model
		if m, err = intengine.Compile(o.Net, intengine.Config{Bits: slices.Clone(o.Result.Chosen.Bits), Ranges: ranges, Weights: o.weights()}); err == nil {
			for _, f := range m.FloatNodes() {
				o.FloatNodes = append(o.FloatNodes, f.Node+" ("+f.Op+")")
			}
			return nil
		}
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	o.FloatNodesNote = "The integer engine does not run this configuration: " + err.Error()
	return nil
}

// quantizer is the weight rounding's name for the outputs.
func (o *Outputs) quantizer() string {
	if o.Quantizer == "" {
		return quant.MethodRTN
	}
	return o.Quantizer
}

// weights is the verifier's weight source (nil: round to nearest).
func (o *Outputs) weights() quant.WeightCodes {
	if o.Verifier == nil {
		return nil
	}
	return o.Verifier.Weights
}

// chosenLayerCosts returns the chosen configuration's per-layer cost of a
// resource, if known.
func (res *SearchResult) chosenLayerCosts(r string) ([]float64, bool) {
	layers, ok := res.costs[r]
	if !ok {
		return nil, false
	}
	out := make([]float64, len(layers))
	for i, m := range layers {
		out[i] = m[res.Chosen.Bits[i]]
	}
	return out, true
}

// accuracies evaluates the float model and the configurations worth
// showing on the evaluation data.
func (o *Outputs) accuracies(ctx context.Context, progress func(int, int, string)) error {
	res := o.Result
	type job struct {
		label string
		bits  []int
		float bool
	}
	jobs := []job{{label: "float", float: true}, {label: res.Chosen.Label, bits: res.Chosen.Bits}}
	add := func(c *Candidate) {
		for _, j := range jobs {
			if j.label == c.Label {
				return
			}
		}
		jobs = append(jobs, job{label: c.Label, bits: c.Bits})
	}
	add(res.Plain)
	for _, c := range res.Uniform {
		add(c)
	}
	for _, c := range res.Measured {
		add(c)
	}
	for _, p := range res.MeasuredFront {
		add(p.Chosen)
	}
	for _, c := range res.Front {
		add(c)
	}
	if res.RL != nil {
		for _, c := range res.RL.Front {
			add(c)
		}
	}
	// A configuration listed under several labels is evaluated once.
	byBits := map[string]float64{}
	for i, j := range jobs {
		if progress != nil {
			progress(i, len(jobs), "accuracy of "+j.label)
		}
		key := fmt.Sprint(j.bits)
		if a, ok := byBits[key]; ok && !j.float {
			o.Accuracy[j.label] = a
			continue
		}
		var r *EvalResult
		var err error
		if j.float {
			r, err = Evaluate(ctx, o.Net, o.EvalData, EvalOptions{})
		} else {
			r, err = o.Verifier.SimulatedAccuracy(ctx, o.EvalData, j.bits)
		}
		if err != nil {
			return err
		}
		if !math.IsNaN(r.Accuracy) {
			o.Accuracy[j.label] = r.Accuracy
			if !j.float {
				byBits[key] = r.Accuracy
			}
		}
	}
	if progress != nil {
		progress(len(jobs), len(jobs), "")
	}
	return nil
}

// latencyRounds and latencySample are how measureLatency times the
// candidates: latencyRounds interleaved rounds of one sample each of at
// least latencySample of thread CPU time per candidate, after one untimed
// round. Timed one candidate after another (a median of 31 wall-clock
// runs each), a Fashion-MNIST MLP's uniform W8 measured 0.041 to 0.053 ms
// in three searches and the same [8,4,4,8] 0.030 and 0.043 ms in one:
// interleaving moves every candidate alike with the load, and thread CPU
// time leaves out the time the thread was not running.
const (
	latencyRounds = 5
	latencySample = 20 * time.Millisecond
)

// measureLatency runs the integer-only engine at batch 1 on the chosen
// configuration, the proposal and the uniform ones, and records measured
// against predicted latency: the median over latencyRounds interleaved
// rounds.
func (o *Outputs) measureLatency(ctx context.Context, progress func(int, int, string)) error {
	res := o.Result
	cands := []*Candidate{res.Chosen}
	if fmt.Sprint(res.Plain.Bits) != fmt.Sprint(res.Chosen.Bits) {
		cands = append(cands, res.Plain)
	}
	cands = append(cands, res.Uniform...)
	ranges, err := intengine.ObserveRanges(ctx, o.Net, splitBatches(o.Calib.X, 256))
	if err != nil {
		return err
	}
	x1 := tensor.FromData(append([]float64(nil), o.Calib.X.Data[:o.Calib.X.Size()/o.Calib.Len()]...), append([]int{1}, o.Calib.SampleShape()...)...)
	runs := make([]func() error, len(cands))
	for i, c := range cands {
		bits := make([]int, len(c.Bits))
		copy(bits, c.Bits)
		m, err := intengine.Compile(o.Net, intengine.Config{Bits: bits, Ranges: ranges, Weights: o.weights()})
		if err != nil {
			return err
		}
		out := tensor.New(m.OutputShape(1)...)
		runs[i] = func() error { return m.RunInto(ctx, out, x1) }
	}
	meas := make([][]float64, len(cands))
	opt := costmodel.MeasureOptions{Clock: costmodel.ClockThreadCPU, Repeats: 1, MinSample: latencySample}
	for r := -1; r < latencyRounds; r++ {
		if progress != nil {
			progress(r+1, latencyRounds+1, fmt.Sprintf("latency of %d configurations, round %d of %d", len(cands), r+2, latencyRounds+1))
		}
		for i, run := range runs {
			t, err := costmodel.Time(ctx, run, opt)
			if err != nil {
				return err
			}
			if r >= 0 { // round -1 settles caches and clocks
				meas[i] = append(meas[i], float64(t[0].Median.Nanoseconds())/1e6)
			}
		}
	}
	if progress != nil {
		progress(latencyRounds+1, latencyRounds+1, "")
	}
	// The report's baseline: uniform 8 bits, preferably the uniform
	// candidate of that name over a chosen configuration of 8 bits.
	base := -1
	for i, c := range cands {
		if !slices.ContainsFunc(c.Bits, func(b int) bool { return b != 8 }) && base <= 0 {
			base = i
		}
	}
	for i, c := range cands {
		slices.Sort(meas[i])
		o.LatencyChecks = append(o.LatencyChecks, plots.LatencyCheck{Label: c.Label, PredictedMs: c.Costs[Latency], MeasuredMs: meas[i][len(meas[i])/2],
			Baseline: i == base})
	}
	return nil
}
