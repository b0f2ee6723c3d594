// Package pipeline is mpsearch's end-to-end job as a library: it loads a
// model and data, evaluates, computes sensitivities and costs, searches bit
// widths, quantizes, exports and reports. The command-line package and the
// tests both drive it; it never prints (progress goes through callbacks).
//
// LoadModel and ParseModel build the float network with the input shapes
// of ModelOptions: the user's (--input-shape), else the data's sample shape
// when the first input declares dynamic dimensions, else as declared.
// WriteOutputs writes the first graph output of every sample (mpsearch
// run) to an NPY file, batch by batch into a temporary file renamed over
// the destination only when every batch was written. Evaluate,
// EvaluateQuantized and WriteOutputs take a dataset.Source and read it one
// batch at a time (a dataset.Stream is never held whole; EvaluateQuantized
// holds its calibration samples), and they are forward-only: they run
// network.Infer batch by batch, so they hold one batch's data and live
// activations, never a whole pass or the whole data set's.
//
// Search solves the ILP (or runs the RL agent) on the table's search input
// (sensitivity.Table.SearchInput: signed values, changes within NoiseK
// standard errors of zero priced at that bound, monotone in bits; the
// optima under the other metrics and the refinement's order of measurement
// use the same rule, and summary.json's "search_input" counts the cells it
// changed), verifies a few candidates
// on held-out data (verify.go's NetVerifier: KL divergence from the float
// model; NewNetVerifierCalib reports its setup, the calibration ranges
// and the held-out float outputs, in samples; NewNetVerifierThreads runs
// the setup, Loss and Accuracy with up to --threads held-out batches in
// flight, one per worker, and adds the per-batch results in batch order,
// so the loss is the same bits for any thread count) and, with SearchConfig.Refine > 0, refines the verified result by
// greedy moves measured jointly on the same data (refine.go): exchanges
// (a layer or tie group one width up, another down by the fewest widths
// that restore every budget), a raise alone when it fits, a lower alone,
// measured in a fixed order and accepted at the first that
// lowers the measured loss, within Refine measurements. The path goes to
// SearchResult.Refinement and summary.json's "refinement".
//
// The Pareto front (front.go): with a verifier and SearchConfig.ParetoPoints
// > 1, Search sweeps the first budgeted resource's budget over that many
// points equally spaced from the cheapest to the dearest cost the fixed
// layers allow (other budgets held at their limits) and runs at each what
// it runs at the user's budget: the ILP optimum (kept as the proxy's point,
// SearchResult.Front, "proxy optimum, unverified"), verification and
// refinement with SearchConfig.FrontRefine measurements. A point also
// considers the previous (smaller) budget's configuration, so measured loss
// never rises along the front; each distinct configuration is measured once
// over the sweep, and SearchResult.FrontCost counts the measurements.
// summary.json's "front" and "front_cost" record it. Without a verifier,
// or with SearchConfig.ProxyFront (cli's search on models whose held-out
// measurements are costly), the front is the ILP's own sweep (ilp.Pareto),
// proxy optima only.
// Accuracies (Outputs.Render) are evaluated once per configuration however
// many labels it has.
//
// Weights: NewWeightSource makes the job's one weight source from a
// WeightSpec (--quantizer: round to nearest, or GPTQ with Hessians from
// the calibration data; --bias-correction, whose input means come from
// GPTQ's Hessian pass when there is one, else from a means-only pass that
// reports progress) at the candidate options
// (quant.OptionCode: per-channel widths from quant.NewCodes, widths in
// groups of G from quant.NewBlockCodes; --group-size); NewWeightCodes is
// the per-channel source without correction. The sensitivity table measures it
// (sensitivity.Config.Weights, part of the cache key), the verifier
// (NetVerifier.Weights), the accuracies, the latency check and the export
// use it, and EvaluateQuantized takes it for both the simulation and the
// integer engine. summary.json and bits.yaml record its name
// ("quantizer"), "bias_correction", and each layer's "group_size".
//
// Equalization (--equalize): Equalize rewrites the loaded float network by
// cross-layer equalization (package equalize) and rebuilds it with the
// same input shape and precision; the job then uses only that network, so
// ranges, Hessians, sensitivities, the integer engine and the export (its
// Model) all see the equalized weights. Inputs.Equalized puts it in the
// cache key and the table (sensitivity.Table.Equalized); summary.json and
// bits.yaml record it ("equalize").
// Activation ranges (--act-calib): NewNetVerifierCalib and
// EvaluateQuantizedCalib observe them with a quant.ActCalib (the
// verifier's Acts then serve the metrics' peers: verification, the
// accuracies and the export); sensitivity.Config.ActCalib is in the cache
// key (omitted for minmax, so earlier keys stay valid), and summary.json
// and bits.yaml record it ("act_calib"; Outputs.ActCalib).
//
// Options in groups (--group-size): configurations are option codes
// throughout (Candidate.Bits); Search orders the options by storage
// (quant.SortOptions: "one width up" in refinement is the next option),
// prices them at the table's size_bytes (the scales included; an option in
// groups without it is an error), and has no latency for them: a latency
// budget is refused (ErrBudget) when the options include groups. The
// integer engine takes one scale per output channel, so CheckPerChannel
// refuses configurations with layers in groups where it would run (run
// --bits, latency measurements; the floatNodes list and EvaluateQuantized's
// integer-only accuracy say so instead).
//
// Invariants: a search whose context ends returns an error and no result;
// an ILP solution not proven optimal is labelled "best found, proven gap
// X%", never "optimum"; every candidate measured or returned keeps the
// layers fixed by the table or KeepEnds, and the layers tied to them
// (plain uniform configurations that override them are ReferenceOnly);
// refinement never changes a fixed layer, never breaks a tie, never
// leaves the budgets at any step, never returns a configuration measured
// worse than the verified one, and returns the verified result itself when
// Refine is 0; it uses no random numbers; every front point's returned
// configuration meets that point's budgets and keeps the fixed layers; WriteFiles replaces all outputs or
// none, and CheckOutDir/CheckOutFile let callers refuse a bad --out before
// the job runs.
package pipeline
