package cli

import (
	"fmt"
	"time"

	"mpsearch/pipeline"
)

func init() {
	commands["run"] = command{"run the float model on data and write its first output for every sample (float32 NPY)", runRun}
}

func runRun(e *env, args []string) error {
	var mf modelFlags
	fs := newFlags(e, "run", "run --model M --data D --out outputs.npy [--input-shape NAME=1x3x224x224] [--batch N] [--threads N]")
	mf.register(fs, true)
	autoBatchUsage(fs)
	out := fs.String("out", "", "write the outputs to this `file` (float32 NPY, batch first); required")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *out == "" {
		return usagef("--out is required")
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
	pr := newProgress(e, "run")
	res, err := pipeline.WriteOutputs(e.ctx, net, ds, *out, pipeline.RunOptions{
		Batch:    mf.batch,
		Progress: func(done, total int) { pr.update(done, total, "samples"+eta(pr.start, done, total)) },
	})
	pr.done()
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stderr, "run: wrote %s: output %q, shape %v, float32\n", *out, res.Name, res.Shape)
	return nil
}

// eta returns ", ETA 12s" from the pace so far, or "" when done.
func eta(start time.Time, done, total int) string {
	if done <= 0 || done >= total {
		return ""
	}
	left := time.Duration(float64(time.Since(start)) * float64(total-done) / float64(done))
	return fmt.Sprintf(", ETA %s", left.Round(time.Second))
}
