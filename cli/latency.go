package cli

import (
	"context"

	"mpsearch/costmodel"
	"mpsearch/pipeline"
	"mpsearch/tensor"
)

// latencyFor returns the latency model of a search: from a hardware
// profile (--profile, or the shipped one for this CPU) and the network's
// layer shapes. A table-only search has no shapes: its latency comes from
// the table's latency_ms columns, if any. The engine's float fallback
// steps, which no profile describes, are timed on this machine when the
// profile was measured on it (its CPU model and kernels).
func latencyFor(ctx context.Context, s *searchFlags, j *job) (pipeline.LatencyModel, string, error) {
	if j.in == nil {
		if s.profile != "" {
			return nil, "", usagef("--profile needs --model: a table alone has no layer shapes (give latency_ms in the table)")
		}
		return nil, "", nil
	}
	prof, name, err := pipeline.LoadProfile(s.profile)
	if err != nil {
		return nil, "", err
	}
	// A latency budget holds for the thread count the profile was
	// measured with (issue 13).
	if s.latency != "" {
		if err := prof.CheckThreads(s.mf.threads); err != nil {
			return nil, "", err
		}
	}
	shapes, err := pipeline.LayerShapes(j.in.Net)
	if err != nil {
		return nil, "", err
	}
	// Work between the layers is predicted when the integer engine runs
	// the model's other operators; otherwise latencies cover the layers.
	ops, err := pipeline.OpShapes(j.in.Net)
	if err != nil {
		ops = nil
	}
	pl := &pipeline.ProfileLatency{Profile: prof, Shapes: shapes, Ops: ops}
	cpu := costmodel.DetectCPU()
	if c := j.in.Calib; ops != nil && c != nil && c.X.Shape[0] > 0 && prof.Source == "measured" && prof.CPU.Model == cpu.Model && prof.CheckISA(cpu.KernelISA) == nil {
		k := min(4, c.X.Shape[0])
		x := tensor.FromData(c.X.Data[:k*(c.X.Size()/c.X.Shape[0])], append([]int{k}, c.X.Shape[1:]...)...)
		if pl.FloatMs, err = pipeline.FloatStepsMs(ctx, j.in.Net, x); err != nil {
			return nil, "", err
		}
	}
	return pl, name, nil
}
