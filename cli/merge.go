package cli

import (
	"fmt"
	"strings"

	"mpsearch/sensitivity"
)

func init() {
	commands["merge"] = command{"combine the shard tables of 'sensitivity --shard K/N' into one table", runMerge}
}

// runMerge: mpsearch merge shard0.yaml ... --out merged.yaml. Table files
// and flags may come in any order.
func runMerge(e *env, args []string) error {
	fs := newFlags(e, "merge", "merge shard0.yaml shard1.yaml ... --out merged.yaml")
	out := fs.String("out", "", "write the merged table to this YAML `file` (required)")
	var flags, files []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case !strings.HasPrefix(a, "-") || a == "-":
			files = append(files, a)
		case (a == "--out" || a == "-out") && i+1 < len(args):
			flags = append(flags, a, args[i+1])
			i++
		default:
			flags = append(flags, a)
		}
	}
	if err := parse(fs, flags); err != nil {
		return err
	}
	if *out == "" {
		return usagef("--out: give the merged table's file")
	}
	if len(files) == 0 {
		return usagef("give the shard tables to merge")
	}
	tables := make([]*sensitivity.Table, len(files))
	for i, f := range files {
		t, err := sensitivity.ReadShardFile(f)
		if err != nil {
			return err
		}
		tables[i] = t
	}
	t, err := sensitivity.Merge(tables)
	if err != nil {
		return err
	}
	if err := t.WriteFile(*out); err != nil {
		return err
	}
	fmt.Fprintf(e.stderr, "merge: wrote %s from %d shards\n", *out, len(files))
	return nil
}
