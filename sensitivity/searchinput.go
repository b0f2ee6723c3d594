package sensitivity

import (
	"fmt"
	"slices"

	"mpsearch/quant"
)

// NoiseK is the number of standard errors within which a measured change
// counts as noise (see SearchInput). Two standard errors: a change that
// small is what the calibration sample's spread produces about one time in
// twenty when the true change is zero.
const NoiseK = 2.0

// SearchInput is what the search optimises for one metric: per layer and
// candidate width, the value the ILP takes as the layer's sensitivity (and
// with it the RL agent, which gets the ILP's problem, and the refinement's
// order of measurement). It is the one place where a table's signed values
// and standard errors become search input:
//
//  1. v(b) is the metric's signed value at width b (the omega column for
//     metric ""), s(b) its standard error (Layer.Stderr; 0 where none is
//     recorded: closed-form metrics, hand-written or older tables).
//  2. Noise: when s(b) > 0 and |v(b)| <= NoiseK·s(b), the change cannot be
//     told from zero, and it is priced at the noise bound NoiseK·s(b) (the
//     largest change the measurement could be hiding), not at 0 nor at its
//     sign: "0 cost for 2 bits" measured on a layer whose quantization
//     moves each sample's loss a lot in both directions is no evidence
//     that 2 bits are free. Outside that band v(b) is kept, signed.
//  3. Monotone in bits, enforced: ω(b) = max over the candidate widths
//     b' >= b of the value after step 2. A layer at fewer bits has the
//     coarser grid and the larger weight error (Delta grows as b falls); a
//     measured value that is lower at 2 bits than at 4 is noise or an
//     interaction the joint configuration will not keep (issue 14: conv1
//     1.86 at 4 bits, 0.36 at 3), and an ILP given it would buy the
//     narrower width at a discount. Enforcing (instead of only reporting)
//     keeps the ILP from exploiting it; Noise and Repaired report how many
//     cells each step changed.
//
// Values can stay negative (a significant decrease at every width from b
// up); the ILP shifts each layer's options by their minimum, which moves
// no optimum.
type SearchInput struct {
	Metric string // "" for the omega column
	Bits   []int  // the candidate widths, ascending
	// Omega[li][j] is layer li's value at Bits[j].
	Omega [][]float64
	// Noise counts the cells priced at the noise bound (step 2), Repaired
	// those raised by the monotone repair (step 3).
	Noise, Repaired int
}

// At returns layer li's search value at width b, and false when b is not
// one of Bits.
func (s *SearchInput) At(li, b int) (float64, bool) {
	j := slices.Index(s.Bits, b)
	if j < 0 {
		return 0, false
	}
	return s.Omega[li][j], true
}

// SearchInput returns the search input of a metric ("" for the omega
// column, with the standard errors of the table's Metric) at the widths
// bits; see the type for the rule. Every layer needs a value at every
// width.
func (t *Table) SearchInput(metric string, bits []int) (*SearchInput, error) {
	bits = quant.SortOptions(bits)
	in := &SearchInput{Metric: metric, Bits: bits, Omega: make([][]float64, len(t.Layers))}
	seName := metric
	if metric == "" {
		seName = t.Metric
	}
	for li := range t.Layers {
		l := &t.Layers[li]
		v := make([]float64, len(bits))
		se := make([]float64, len(bits))
		for j, b := range bits {
			var ok bool
			if metric == "" {
				v[j], ok = l.OmegaAt(b)
			} else {
				v[j], ok = l.Metrics[metric][b]
			}
			if !ok {
				what := "omega"
				if metric != "" {
					what = "the " + metric + " metric"
				}
				return nil, fmt.Errorf("layer %q has no value of %s at %s; recompute the table with --bits (and --group-size) including it: %w", l.Name, what, quant.FormatOption(b), ErrTable)
			}
			se[j] = l.Stderr[seName][b]
		}
		var noise, repaired int
		in.Omega[li], noise, repaired = searchValues(bits, v, se, NoiseK)
		in.Noise += noise
		in.Repaired += repaired
	}
	return in, nil
}

// searchValues applies steps 2 and 3 of SearchInput's rule to one layer's
// values v and standard errors se at the option codes bits (ascending by
// quant.CompareOptions), with k standard errors for the noise band, and
// counts the cells each step changed. The monotone repair runs within each
// granularity: per channel over the widths, and for each group size over
// its widths (a width in groups and a wider one per channel are not
// ordered by their error).
func searchValues(bits []int, v, se []float64, k float64) (out []float64, noise, repaired int) {
	out = make([]float64, len(v))
	for j := range v {
		out[j] = v[j]
		if bound := k * se[j]; se[j] > 0 && v[j] <= bound && v[j] >= -bound {
			if out[j] != bound {
				noise++
			}
			out[j] = bound
		}
	}
	// The widths ascend: a running maximum from the widest down, per
	// group size.
	top := map[int]float64{} // group size -> maximum over the wider options
	for j := len(out) - 1; j >= 0; j-- {
		_, g := quant.SplitOption(bits[j])
		if m, ok := top[g]; ok && out[j] < m {
			out[j] = m
			repaired++
		}
		top[g] = out[j]
	}
	return out, noise, repaired
}
