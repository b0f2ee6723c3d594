// Package cli implements the mpsearch command line: subcommands, flag
// parsing, progress on stderr and results on stdout. It stays thin: the
// work is done by package pipeline and the packages below it.
//
// Exit status: 0 on success, 1 on errors in the input or the job, 2 on
// usage errors (unknown subcommand or flag, missing or malformed flag
// values).
//
// Every command that loads a model opens its data first: the data's sample
// shape resolves the dimensions a model leaves dynamic, unless
// --input-shape NAME=DxDx...xD (repeatable, strictly parsed) fixes them.
// eval and run stream --data batch by batch (dataset.Open), so their
// memory does not grow with the number of samples (eval --bits holds the
// first --calib-samples for the activation ranges); sensitivity, search
// and pareto load their calibration data whole. run writes the float
// model's first output for every sample as a float32 NPY, batch by batch
// into a temporary file renamed at the end; an interrupt exits 1 with one
// line and writes nothing.
//
// --quantizer (search, pareto, sensitivity, eval --bits) chooses the one
// weight source of the job (pipeline.NewWeightCodes); eval --bits defaults
// to the rounding its bits.yaml records, and search/pareto --table to the
// one the table records (a table measured with another rounding than an
// explicit --quantizer is refused: sensitivity.Table.CheckQuantizer).
// --bias-correction (same commands, and run --bits; on by default) is
// handled the same way (bits.yaml's and the table's value by default,
// sensitivity.Table.CheckBiasCorrection). --group-size 0,G (sensitivity,
// search, pareto) adds every width below the widest in groups of G to the
// candidates (quant.Options); then the default budget is on size, and
// --measure-latency is a usage error (the integer engine is per channel);
// run --bits refuses a bits.yaml with a layer in groups and eval --bits
// reports its simulated accuracy only (pipeline.CheckPerChannel).
// --equalize (sensitivity, search, pareto, eval and run --bits; off by
// default) equalizes the model across layers once, right after loading
// (modelFlags.loadModel, pipeline.Equalize), so every later stage sees the
// equalized weights; it is part of the cache key and recorded in the
// table, bits.yaml and summary.json, and search --table and eval/run
// --bits follow the recorded value unless the flag is given
// (sensitivity.Table.CheckEqualized refuses a table measured the other way).
// --act-calib minmax|percentile[:P]|mse|kl (sensitivity, search, pareto,
// eval --bits, run --bits; default quant.DefaultCalib) chooses the
// activation ranges (quant.ActCalib) of the metrics, the verifier, the
// accuracies, the integer engine and the export; it is handled like
// --bias-correction (bits.yaml's act_calib and the table's by default,
// minmax when they record none; sensitivity.Table.CheckActCalib), and a
// value quant.ParseActCalib refuses is a usage error (cli/actcalib.go).
//
// Usage errors are one line with exit status 2 (unknown flags, bad
// values, repeated budget flags, duplicate --bits, size-like flags beyond
// their bounds: --points, --probes, --batch, --limit, --resize; --threads is capped
// at the CPUs available). An interrupted job (SIGINT, SIGTERM) writes
// nothing and exits 1 saying so.
package cli
