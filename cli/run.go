package cli

import (
	"cmp"
	"fmt"
	"time"

	"mpsearch/dataset"
	"mpsearch/intengine"
	"mpsearch/network"
	"mpsearch/pipeline"
	"mpsearch/quant"
	"mpsearch/tensor"
)

func init() {
	commands["run"] = command{"run the float model, or with --bits the integer-only engine, on data and write its first output for every sample (float32 NPY)", runRun}
}

func runRun(e *env, args []string) error {
	var mf modelFlags
	fs := newFlags(e, "run", "run --model M --data D --out outputs.npy [--bits bits.yaml [--calib-samples N] [--quantizer rtn|gptq]] [--input-shape NAME=1x3x224x224] [--batch N] [--threads N]")
	mf.register(fs, true)
	autoBatchUsage(fs)
	out := fs.String("out", "", "write the outputs to this `file` (float32 NPY, batch first); required")
	bitsFile := fs.String("bits", "", "run the integer-only engine at this bit configuration (bits.yaml from search) instead of the float model; activation ranges come from the first --calib-samples samples of --data")
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
	if *out == "" {
		return usagef("--out is required")
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
	opt := pipeline.RunOptions{Batch: mf.batch}
	engine := "float model"
	if *bitsFile != "" {
		m, err := compileBits(e, net, ds, *bitsFile, *quantizer, *actCalib, bc, *calibN, &mf)
		if err != nil {
			return err
		}
		opt.Infer = m.Run
		engine = "integer-only engine"
		if fn := m.FloatNodes(); len(fn) > 0 {
			engine += fmt.Sprintf(" (%d nodes in float between quantized tensors)", len(fn))
		}
	}
	pr := newProgress(e, "run")
	opt.Progress = func(done, total int) { pr.update(done, total, "samples"+eta(pr.start, done, total)) }
	res, err := pipeline.WriteOutputs(e.ctx, net, ds, *out, opt)
	pr.done()
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stderr, "run: wrote %s: output %q, shape %v, float32, %s\n", *out, res.Name, res.Shape, engine)
	return nil
}

// compileBits compiles the integer engine for the bit configuration in
// path: weights rounded by quantizer (else the method bits.yaml records,
// else to nearest), activation ranges observed on the first calibN samples
// of ds, GEMMs on --threads goroutines, biases corrected as bc says (else
// as bits.yaml records), ranges chosen by actCalib (else as bits.yaml
// records: bitsActCalib). A configuration with layers in groups is refused
// (the integer engine takes one scale per output channel).
func compileBits(e *env, net *network.Network, ds *dataset.Stream, path, quantizer, actCalib string, bc optBool, calibN int, mf *modelFlags) (*intengine.Model, error) {
	f, err := pipeline.ReadBitsFile(path)
	if err != nil {
		return nil, err
	}
	bits, err := pipeline.BitsFor(net, f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if err := pipeline.CheckPerChannel(net, bits, "mpsearch run --bits"); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if net, err = equalizeAsBits(net, mf, f); err != nil {
		return nil, err
	}
	quantizer = cmp.Or(quantizer, f.Quantizer, quant.MethodRTN)
	if err := checkQuantizer(quantizer); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	ac, err := bitsActCalib(actCalib, path, f)
	if err != nil {
		return nil, err
	}
	calib, err := dataset.Head(e.ctx, ds, calibN)
	if err != nil {
		return nil, err
	}
	codes, err := weightCodes(e, pipeline.WeightSpec{Method: quantizer, BiasCorrection: bc.or(f.BiasCorrection)}, net, calib, bits, mf)
	if err != nil {
		return nil, err
	}
	var batches []*tensor.Tensor
	bs := cmp.Or(max(mf.batch, 0), 256)
	for i := 0; i*bs < calib.Len(); i++ {
		x, _ := calib.Batch(i, bs)
		batches = append(batches, x)
	}
	ranges, err := intengine.ObserveRangesCalib(e.ctx, net, batches, mf.threads, ac)
	if err != nil {
		return nil, err
	}
	return intengine.Compile(net, intengine.Config{Bits: bits, Ranges: ranges, Weights: codes, Threads: mf.threads})
}

// eta returns ", ETA 12s" from the pace so far, or "" when done.
func eta(start time.Time, done, total int) string {
	if done <= 0 || done >= total {
		return ""
	}
	left := time.Duration(float64(time.Since(start)) * float64(total-done) / float64(done))
	return fmt.Sprintf(", ETA %s", left.Round(time.Second))
}
