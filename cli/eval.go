package cli

import (
	"encoding/json"
	"fmt"
	"math"

	"mpsearch/pipeline"
)

func init() {
	commands["eval"] = command{"top-1 accuracy, mean loss and throughput of a model on data", runEval}
}

func runEval(e *env, args []string) error {
	var mf modelFlags
	fs := newFlags(e, "eval", "eval [--model M --data D [--labels L] [--mean m --std s]] [--json]")
	mf.register(fs, true)
	asJSON := fs.Bool("json", false, "print JSON instead of text")
	if err := parse(fs, args); err != nil {
		return err
	}
	net, err := mf.loadModel()
	if err != nil {
		return err
	}
	ds, err := mf.loadData(false)
	if err != nil {
		return err
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
