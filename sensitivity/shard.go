package sensitivity

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
)

// Sharding. The work of Compute is split into cells, numbered in a fixed
// order that depends only on the model and the settings: cell 0 is the
// global cell (traces, top eigenvalues and the hessian metric, which need
// every layer at once); then, for each metric in Config.Metrics order, one
// cell per layer for quadratic and fisher and one per layer and bit width
// for direct. Shard K of N computes the cells c with c mod N = K. Every
// cell's values are computed exactly as in an unsharded run (each cell
// depends only on the model, the data and the settings), so Merge of all
// N shards gives the unsharded table byte for byte.

// ShardInfo marks a table as one shard of a sharded run.
type ShardInfo struct {
	Index int `yaml:"index"` // K, 0-based
	Count int `yaml:"count"` // N
	Cells int `yaml:"cells"` // cells of the whole run
	// Settings is a hash of every setting that changes the table; shards
	// merge only when it agrees.
	Settings string `yaml:"settings"`
}

// plan hands out cells in order and says which belong to this shard.
type plan struct {
	shard, shards int
	next          int
}

func newPlan(c *Config) *plan { return &plan{shard: c.Shard, shards: c.Shards} }

// take returns whether the next cell is this shard's.
func (p *plan) take() bool {
	c := p.next
	p.next++
	return p.shards <= 1 || c%p.shards == p.shard
}

// takeN takes n cells.
func (p *plan) takeN(n int) []bool {
	own := make([]bool, n)
	for i := range own {
		own[i] = p.take()
	}
	return own
}

func count(own []bool) int {
	n := 0
	for _, o := range own {
		if o {
			n++
		}
	}
	return n
}

// settingsHash identifies the settings that change the table's values
// (not the thread count, the progress callback or the shard).
func (c Config) settingsHash() string {
	c.Progress, c.Shard, c.Shards, c.Threads = nil, 0, 0, 0
	c.stage = ""
	b, _ := json.Marshal(struct {
		Config
		MetricAsked bool // a budget never skips an asked-for omega metric
	}{c, c.metricAsked})
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:8])
}

// Merge combines the N shard tables of one sharded run (in any order)
// into the table an unsharded run gives. It refuses tables of different
// models, data or settings, a missing or repeated shard, and a cell
// present in two shards.
func Merge(shards []*Table) (*Table, error) {
	if len(shards) == 0 {
		return nil, fmt.Errorf("merge: no tables: %w", ErrTable)
	}
	byIndex := make([]*Table, len(shards))
	first := shards[0]
	for i, t := range shards {
		if t.Shard == nil {
			return nil, fmt.Errorf("merge: table %d is not a shard (made without --shard K/N): %w", i+1, ErrTable)
		}
		if err := sameRun(first, t); err != nil {
			return nil, fmt.Errorf("merge: table %d (shard %d/%d) %v than table 1: %w", i+1, t.Shard.Index, t.Shard.Count, err, ErrTable)
		}
		if t.Shard.Count != len(shards) {
			return nil, fmt.Errorf("merge: the run has %d shards; got %d tables (give every shard once): %w", t.Shard.Count, len(shards), ErrTable)
		}
		if t.Shard.Index < 0 || t.Shard.Index >= t.Shard.Count || byIndex[t.Shard.Index] != nil {
			return nil, fmt.Errorf("merge: shard %d/%d given twice or out of range: %w", t.Shard.Index, t.Shard.Count, ErrTable)
		}
		byIndex[t.Shard.Index] = t
	}
	out, err := clone(byIndex[0])
	if err != nil {
		return nil, err
	}
	out.Shard = nil
	for _, t := range byIndex[1:] {
		for li := range t.Layers {
			src, dst := &t.Layers[li], &out.Layers[li]
			if dst.Omega == nil {
				dst.Omega = map[int]float64{}
			}
			if dst.Metrics == nil {
				dst.Metrics = map[string]map[int]float64{}
			}
			if err := mergeCells(dst.Omega, src.Omega, dst.Name, "omega"); err != nil {
				return nil, err
			}
			for _, m := range slices.Sorted(maps.Keys(src.Metrics)) {
				if dst.Metrics[m] == nil {
					dst.Metrics[m] = map[int]float64{}
				}
				if err := mergeCells(dst.Metrics[m], src.Metrics[m], dst.Name, m); err != nil {
					return nil, err
				}
			}
			for _, m := range slices.Sorted(maps.Keys(src.Stderr)) {
				if dst.Stderr == nil {
					dst.Stderr = map[string]map[int]float64{}
				}
				if dst.Stderr[m] == nil {
					dst.Stderr[m] = map[int]float64{}
				}
				if err := mergeCells(dst.Stderr[m], src.Stderr[m], dst.Name, "stderr of "+m); err != nil {
					return nil, err
				}
			}
		}
	}
	if err := out.Validate(); err != nil {
		return nil, fmt.Errorf("merge: %w", err)
	}
	return out, nil
}

// sameRun returns why b is not another shard of a's run, or nil.
func sameRun(a, b *Table) error {
	switch {
	case a.ModelSHA256 != b.ModelSHA256:
		return fmt.Errorf("is of another model (%s)", b.Model)
	case a.Quantizer != b.Quantizer:
		return fmt.Errorf("has another weight rounding (%s; recompute it with --quantizer %s to merge it)", orUnrecorded(b.Quantizer), cmp.Or(a.Quantizer, "of the others"))
	case a.BiasCorrection != b.BiasCorrection:
		return fmt.Errorf("was measured %s bias correction, the others %s (recompute it with --bias-correction=%t to merge it)", map[bool]string{true: "with", false: "without"}[b.BiasCorrection], map[bool]string{true: "with", false: "without"}[a.BiasCorrection], a.BiasCorrection)
	case a.Equalized != b.Equalized:
		return fmt.Errorf("was measured %s cross-layer equalization, the others %s (recompute it with --equalize=%t to merge it)", map[bool]string{true: "with", false: "without"}[b.Equalized], map[bool]string{true: "with", false: "without"}[a.Equalized], a.Equalized)
	case a.ActCalibOf() != b.ActCalibOf():
		return fmt.Errorf("was measured with activation ranges by %s, the others by %s (recompute it with --act-calib %s to merge it)", b.ActCalibName(), a.ActCalibName(), a.ActCalibName())
	case a.DataSHA256 != b.DataSHA256 || a.Samples != b.Samples:
		return fmt.Errorf("has other calibration data (%s, %d samples)", b.Data, b.Samples)
	case a.Shard.Settings != b.Shard.Settings || a.Shard.Count != b.Shard.Count || a.Shard.Cells != b.Shard.Cells ||
		a.Loss != b.Loss || a.Metric != b.Metric || a.Seed != b.Seed || a.Tol != b.Tol || !slices.Equal(a.Bits, b.Bits):
		return fmt.Errorf("has other settings (--metric, --metrics, --bits, --trace, --seed, --tol, --probes, --batch or the shard count)")
	case len(a.Layers) != len(b.Layers):
		return fmt.Errorf("has %d layers, not %d", len(b.Layers), len(a.Layers))
	}
	for i := range a.Layers {
		if a.Layers[i].Name != b.Layers[i].Name {
			return fmt.Errorf("has layer %q where %q is", b.Layers[i].Name, a.Layers[i].Name)
		}
	}
	return nil
}

// orUnrecorded names a table's weight rounding for messages.
func orUnrecorded(q string) string {
	if q == "" {
		return "not recorded"
	}
	return "--quantizer " + q
}

func mergeCells(dst, src map[int]float64, layer, what string) error {
	for _, b := range slices.Sorted(maps.Keys(src)) {
		if _, dup := dst[b]; dup {
			return fmt.Errorf("merge: layer %q: %s at %d bits is in two shards: %w", layer, what, b, ErrTable)
		}
		dst[b] = src[b]
	}
	return nil
}

// clone deep-copies a table through its YAML form.
func clone(t *Table) (*Table, error) {
	b, err := t.Marshal()
	if err != nil {
		return nil, err
	}
	var c Table
	if err := yamlUnmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("merge: %v: %w", err, ErrTable)
	}
	return &c, nil
}
