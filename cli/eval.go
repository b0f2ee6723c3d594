package cli

import (
	"cmp"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"

	"mpsearch/dataset"
	"mpsearch/network"
	"mpsearch/pipeline"
	"mpsearch/quant"
)

func init() {
	commands["eval"] = command{"top-1 accuracy, mean loss and throughput of a model on data", runEval}
}

func runEval(e *env, args []string) error {
	var mf modelFlags
	fs := newFlags(e, "eval", "eval [--model M --data D [--labels L] [--mean m --std s]] [--bits bits.yaml] [--json]")
	mf.register(fs, true)
	autoBatchUsage(fs)
	asJSON := fs.Bool("json", false, "print JSON instead of text")
	bitsFile := fs.String("bits", "", "also evaluate this bit configuration (bits.yaml from search): simulated quantization and the integer-only engine")
	calibN := fs.Int("calib-samples", 512, "with --bits: activation ranges (and GPTQ's Hessians) come from the first `N` samples of --data")
	quantizer := fs.String("quantizer", "", "with --bits: weight rounding, rtn or gptq (default: the one bits.yaml records, else rtn)")
	var bc optBool
	fs.Var(&bc, "bias-correction", "with --bits: correct the biases for the rounding (default: as bits.yaml records)")
	mf.registerEqualize(fs, true)
	actCalib := fs.String("act-calib", "", "with --bits: "+actCalibUsage+" (default: the one bits.yaml records, else minmax)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *actCalib != "" {
		if _, err := parseActCalib(*actCalib); err != nil {
			return err
		}
	}
	if *calibN < 1 {
		return usagef("--calib-samples: %d is below 1", *calibN)
	}
	if *quantizer != "" {
		if err := checkQuantizer(*quantizer); err != nil {
			return err
		}
	}
	ds, err := mf.openData(false, true)
	if err != nil {
		return err
	}
	net, err := mf.loadModel(ds)
	if err != nil {
		return err
	}
	mf.autoBatch(fs, net)
	if *bitsFile != "" {
		return evalBits(e, net, ds, *bitsFile, *quantizer, *actCalib, bc, *calibN, &mf, *asJSON)
	}
	pr := newProgress(e, "eval")
	res, err := pipeline.Evaluate(e.ctx, net, ds, pipeline.EvalOptions{
		Batch:    mf.batch,
		Progress: func(done, total int) { pr.update(done, total, "images") },
	})
	pr.done()
	if err != nil {
		return err
	}
	if *asJSON {
		out := map[string]any{"samples": res.Samples, "images_per_sec": res.ImagesPerSec, "seconds": res.Seconds}
		if !math.IsNaN(res.Accuracy) {
			out["accuracy"] = res.Accuracy
			out["loss"] = res.Loss
		}
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	if math.IsNaN(res.Accuracy) {
		fmt.Fprintf(e.stdout, "%d samples (no labels: accuracy not measured), %.0f images/s\n", res.Samples, res.ImagesPerSec)
		return nil
	}
	fmt.Fprintf(e.stdout, "accuracy %.2f%%  loss %.4f  %d samples  %.0f images/s\n", 100*res.Accuracy, res.Loss, res.Samples, res.ImagesPerSec)
	return nil
}

// evalBits evaluates a bit configuration: float, simulated and integer-only
// (simulated only when some layer is in groups, which the integer engine
// does not run). The weights are rounded by quantizer, else by the method
// bits.yaml records, else to nearest; biases corrected as bc says, else as
// bits.yaml records; activation ranges by actCalib, else as bits.yaml
// records (bitsActCalib).
func evalBits(e *env, net *network.Network, ds *dataset.Stream, path, quantizer, actCalib string, bc optBool, calibN int, mf *modelFlags, asJSON bool) error {
	batch := mf.batch
	f, err := pipeline.ReadBitsFile(path)
	if err != nil {
		return err
	}
	bits, err := pipeline.BitsFor(net, f)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if net, err = equalizeAsBits(net, mf, f); err != nil {
		return err
	}
	if quantizer == "" {
		quantizer = cmp.Or(f.Quantizer, quant.MethodRTN)
	}
	if err := checkQuantizer(quantizer); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	ac, err := bitsActCalib(actCalib, path, f)
	if err != nil {
		return err
	}
	pr := newProgress(e, "eval float")
	fl, err := pipeline.Evaluate(e.ctx, net, ds, pipeline.EvalOptions{Batch: batch, Progress: func(d, t int) { pr.update(d, t, "images") }})
	pr.done()
	if err != nil {
		return err
	}
	// The activation ranges (and GPTQ's Hessians) come from the first
	// calibN samples, held in memory; the evaluations stream ds.
	calib, err := dataset.Head(e.ctx, ds, calibN)
	if err != nil {
		return err
	}
	spec := pipeline.WeightSpec{Method: quantizer, BiasCorrection: bc.or(f.BiasCorrection)}
	codes, err := weightCodes(e, spec, net, calib, bits, mf)
	if err != nil {
		return err
	}
	pr = newProgress(e, "eval quantized")
	q, err := pipeline.EvaluateQuantizedCalib(e.ctx, net, calib, ds, bits, codes, batch, ac, func(d, t int) { pr.update(d, t, "images") })
	pr.done()
	if err != nil {
		return err
	}
	if q.Integer == nil {
		return printSimulatedOnly(e, bits, spec, mf.equalize.or(f.Equalize), ac, ds.Len(), fl, q, asJSON)
	}
	if asJSON {
		out := map[string]any{"samples": ds.Len(), "bits": bits, "quantizer": quantizer, "bias_correction": spec.BiasCorrection, "equalize": mf.equalize.or(f.Equalize), "act_calib": ac.String(), "latency_ms_batch1": q.LatencyMs,
			"integer_images_per_sec": q.Integer.ImagesPerSec, "integer_float_nodes": q.FloatNodes}
		if !math.IsNaN(fl.Accuracy) {
			out["accuracy"] = map[string]float64{"float": fl.Accuracy, "simulated": q.Simulated.Accuracy, "integer": q.Integer.Accuracy}
		}
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	fmt.Fprintf(e.stdout, "bits %v (weights rounded by %s%s%s) on %d samples\n", bits, quantizer, bcNote(spec.BiasCorrection), actCalibNote(ac), ds.Len())
	if !math.IsNaN(fl.Accuracy) {
		fmt.Fprintf(e.stdout, "accuracy: float %.2f%%, simulated quantization %.2f%%, integer-only %.2f%%\n", 100*fl.Accuracy, 100*q.Simulated.Accuracy, 100*q.Integer.Accuracy)
	}
	fmt.Fprintf(e.stdout, "integer-only engine: %.0f images/s (batch %d), %.4f ms per image at batch 1 (median, one thread)\n", q.Integer.ImagesPerSec, batch, q.LatencyMs)
	if len(q.FloatNodes) > 0 {
		// Counted by operator; --json lists the nodes.
		var ops []string
		count := map[string]int{}
		for _, f := range q.FloatNodes {
			op := f[strings.LastIndex(f, "(")+1 : len(f)-1]
			if count[op] == 0 {
				ops = append(ops, op)
			}
			count[op]++
		}
		for i, op := range ops {
			ops[i] = fmt.Sprintf("%d %s", count[op], op)
		}
		fmt.Fprintf(e.stdout, "integer-only engine runs %d nodes in float between quantized tensors (no integer path): %s (--json lists them)\n", len(q.FloatNodes), strings.Join(ops, ", "))
	}
	return nil
}

// printSimulatedOnly prints an evaluation the integer engine did not run
// (layers in groups: q.IntegerNote says why).
func printSimulatedOnly(e *env, bits []int, spec pipeline.WeightSpec, equalized bool, ac quant.ActCalib, n int, fl *pipeline.EvalResult, q *pipeline.QuantizedEval, asJSON bool) error {
	if asJSON {
		out := map[string]any{"samples": n, "bits": bits, "options": quant.FormatOptions(bits), "quantizer": spec.Method, "bias_correction": spec.BiasCorrection, "equalize": equalized, "act_calib": ac.String(), "integer_note": q.IntegerNote}
		if !math.IsNaN(fl.Accuracy) {
			out["accuracy"] = map[string]float64{"float": fl.Accuracy, "simulated": q.Simulated.Accuracy}
		}
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	fmt.Fprintf(e.stdout, "bits %s (weights rounded by %s%s%s) on %d samples\n", quant.FormatOptions(bits), spec.Method, bcNote(spec.BiasCorrection), actCalibNote(ac), n)
	if !math.IsNaN(fl.Accuracy) {
		fmt.Fprintf(e.stdout, "accuracy: float %.2f%%, simulated quantization %.2f%%\n", 100*fl.Accuracy, 100*q.Simulated.Accuracy)
	}
	fmt.Fprintf(e.stdout, "integer-only engine not run: %s\n", q.IntegerNote)
	return nil
}

// bcNote is ", biases corrected" when bc.
func bcNote(bc bool) string {
	if bc {
		return ", biases corrected"
	}
	return ""
}

// equalizeAsBits equalizes net (loaded as --equalize said) when bits.yaml
// records equalization and --equalize was not given.
func equalizeAsBits(net *network.Network, mf *modelFlags, f *pipeline.BitsFile) (*network.Network, error) {
	if mf.equalize.set || !f.Equalize {
		return net, nil
	}
	eq, _, err := pipeline.Equalize(net)
	return eq, err
}

// optBool is a boolean flag that remembers whether it was given (its
// default then comes from elsewhere, e.g. bits.yaml).
type optBool struct{ v, set bool }

func (o *optBool) String() string {
	if o == nil {
		return "false"
	}
	return strconv.FormatBool(o.v)
}

func (o *optBool) Set(s string) error {
	v, err := strconv.ParseBool(s)
	if err != nil {
		return fmt.Errorf("%q is not true or false", s)
	}
	o.v, o.set = v, true
	return nil
}

// IsBoolFlag lets the flag be given alone (--bias-correction).
func (o *optBool) IsBoolFlag() bool { return true }

// or returns the flag's value if given, else def.
func (o optBool) or(def bool) bool {
	if o.set {
		return o.v
	}
	return def
}
