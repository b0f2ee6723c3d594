package cli

import (
	"cmp"
	"encoding/json"
	"fmt"
	"math"
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
	if err := parse(fs, args); err != nil {
		return err
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
		return evalBits(e, net, ds, *bitsFile, *quantizer, *calibN, &mf, *asJSON)
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

// evalBits evaluates a bit configuration: float, simulated and integer-only.
// The weights are rounded by quantizer, else by the method bits.yaml
// records, else to nearest.
func evalBits(e *env, net *network.Network, ds *dataset.Stream, path, quantizer string, calibN int, mf *modelFlags, asJSON bool) error {
	batch := mf.batch
	f, err := pipeline.ReadBitsFile(path)
	if err != nil {
		return err
	}
	bits, err := pipeline.BitsFor(net, f)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if quantizer == "" {
		quantizer = cmp.Or(f.Quantizer, quant.MethodRTN)
	}
	if err := checkQuantizer(quantizer); err != nil {
		return fmt.Errorf("%s: %w", path, err)
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
	codes, err := weightCodes(e, quantizer, net, calib, bits, mf)
	if err != nil {
		return err
	}
	pr = newProgress(e, "eval quantized")
	q, err := pipeline.EvaluateQuantized(e.ctx, net, calib, ds, bits, codes, batch, func(d, t int) { pr.update(d, t, "images") })
	pr.done()
	if err != nil {
		return err
	}
	if asJSON {
		out := map[string]any{"samples": ds.Len(), "bits": bits, "quantizer": quantizer, "latency_ms_batch1": q.LatencyMs,
			"integer_images_per_sec": q.Integer.ImagesPerSec, "integer_float_nodes": q.FloatNodes}
		if !math.IsNaN(fl.Accuracy) {
			out["accuracy"] = map[string]float64{"float": fl.Accuracy, "simulated": q.Simulated.Accuracy, "integer": q.Integer.Accuracy}
		}
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	fmt.Fprintf(e.stdout, "bits %v (weights rounded by %s) on %d samples\n", bits, quantizer, ds.Len())
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
