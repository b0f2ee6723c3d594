package cli

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"runtime"
	"strings"

	"mpsearch/costmodel"
	"mpsearch/pipeline"
)

func init() {
	commands["profile"] = command{"benchmark the integer kernels on this CPU and write a hardware profile", runProfile}
}

func runProfile(e *env, args []string) error {
	fs := newFlags(e, "profile", "profile [--out profiles/NAME.yaml] [--name NAME] [--threads N] [--quick] [--clock auto|wall|thread-cpu] [--json]")
	out := fs.String("out", "", "write the profile to this YAML file (atomically); without it the YAML goes to stdout")
	name := fs.String("name", "", "profile name (default: the --out file name without .yaml, else \"measured\")")
	threads := fs.Int("threads", runtime.NumCPU(), "kernel threads (default: the number of CPUs); a latency budget needs a profile of the thread count the search runs with (--threads)")
	quick := fs.Bool("quick", false, "coarser sweep and fewer repeats (about 10 s instead of 30 s)")
	clock := fs.String("clock", "auto", "clock: thread-cpu (CPU time of the measuring thread, steady on a shared machine; one thread only), wall, or auto (thread-cpu with one thread)")
	asJSON := fs.Bool("json", false, `print the GEMM throughput as {"gemm": [{"bits", "m", "k", "n", "gops"}]} at 256^3, 512^3 and 1024^3 (tile kernels) and at m = 1, k = n = 1024, 4096 and 8192 (streaming small-M kernels); without --out only these are measured`)
	if err := parse(fs, args); err != nil {
		return err
	}
	if *threads < 1 || *threads > runtime.NumCPU() {
		return usagef("--threads %d: want 1..%d (the CPUs available; a profile measures real threads)", *threads, runtime.NumCPU())
	}
	if *out != "" {
		if err := pipeline.CheckOutFile(*out); err != nil {
			return err
		}
	}
	ck, err := costmodel.ParseClock(*clock)
	if err != nil {
		return usagef("--clock: %v", err)
	}
	if *asJSON && *out == "" {
		pr := newProgress(e, "profile")
		ref, err := costmodel.MeasureReference(e.ctx, costmodel.ReferenceSizes, costmodel.MeasureOptions{
			Threads: *threads, Clock: ck, Repeats: 7,
			Progress: func(done, total int) { pr.update(done, total, "GEMM sizes") },
		})
		if err != nil {
			pr.done()
			return err
		}
		m1, err := costmodel.MeasureStreamReference(e.ctx, costmodel.StreamSizes, costmodel.MeasureOptions{
			Threads: *threads, Clock: ck, Repeats: 7,
			Progress: func(done, total int) { pr.update(done, total, "one-row GEMM sizes") },
		})
		pr.done()
		if err != nil {
			return err
		}
		return printGEMMJSON(e, append(ref, m1...))
	}
	pname := *name
	if pname == "" && *out != "" {
		pname = strings.TrimSuffix(filepath.Base(*out), filepath.Ext(*out))
	}
	pr := newProgress(e, "profile")
	p, err := costmodel.BuildProfile(e.ctx, costmodel.ProfileOptions{
		Name: pname, Threads: *threads, Quick: *quick, Clock: ck,
		Progress: func(done, total int) { pr.update(done, total, "shapes") },
	})
	pr.done()
	if err != nil {
		return err
	}
	if *out == "" {
		b, err := p.Marshal()
		if err != nil {
			return err
		}
		_, err = e.stdout.Write(b)
		return err
	}
	if err := p.WriteFile(*out); err != nil {
		return err
	}
	if *asJSON {
		return printGEMMJSON(e, p.Reference)
	}
	fmt.Fprintf(e.stdout, "wrote %s: %s, %d thread(s), clock %s, copy %.1f GB/s\n", *out, p.CPU.Model, p.Threads, p.Clock, p.MemoryGBps)
	for _, g := range p.GEMM {
		fmt.Fprintf(e.stdout, "  %d-bit weights: peak %.0f GOPS (fit median error %.1f%%)\n", g.Bits, 2/g.NsPerMAC, 100*g.Fit.MedianErr)
	}
	return nil
}

func printGEMMJSON(e *env, pts []costmodel.GEMMPoint) error {
	enc := json.NewEncoder(e.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(map[string]any{"gemm": pts})
}
