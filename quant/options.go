package quant

import (
	"cmp"
	"fmt"
	"slices"
	"sort"
)

// Weight options. A layer's weights are quantized at an option: a bit
// width with one scale per output channel, or a bit width with one scale
// per output channel and group of G inputs (blocked codes, NewBlockCodes).
// Everything that takes a layer's "bits" as an int (WeightCodes.Codes,
// WeightSetter, sensitivity tables, the search, bits.yaml) takes an option
// code: the width itself for per-channel options (1..8, and 0 or 32 for
// float, unchanged), G·OptionGroupUnit + bits for groups of G (6403: 3 bits
// in groups of 64). Per-channel codes are therefore exactly the widths
// they always were, and tables without groups do not change.

// OptionGroupUnit separates the group size from the width in an option
// code.
const OptionGroupUnit = 100

// OptionCode returns the code of bits-bit weights in groups of group
// inputs (group 0: per channel, the code is bits).
func OptionCode(bits, group int) int {
	if group <= 0 {
		return bits
	}
	return group*OptionGroupUnit + bits
}

// SplitOption returns an option code's width and group size (0: per
// channel).
func SplitOption(code int) (bits, group int) {
	if code < OptionGroupUnit {
		return code, 0
	}
	return code % OptionGroupUnit, code / OptionGroupUnit
}

// OptionBits is an option code's bit width.
func OptionBits(code int) int {
	b, _ := SplitOption(code)
	return b
}

// Grouped reports whether an option code has per-group scales.
func Grouped(code int) bool { return code >= OptionGroupUnit }

// AnyGrouped reports whether some code has per-group scales.
func AnyGrouped(codes []int) bool { return slices.ContainsFunc(codes, Grouped) }

// ValidOption checks an option code: a width in 1..8 (or 0/32, float)
// per channel, or a width in 1..8 in groups of 1 or more inputs.
func ValidOption(code int) error {
	b, g := SplitOption(code)
	if g == 0 && (b == 0 || b == 32 || b >= 1 && b <= 8) || g > 0 && b >= 1 && b <= 8 {
		return nil
	}
	return fmt.Errorf("option %d is not a weight width in 1..8, per channel or in groups (group·%d + width)", code, OptionGroupUnit)
}

// FormatOption writes an option code for people: "3" per channel, "3g64"
// in groups of 64.
func FormatOption(code int) string {
	b, g := SplitOption(code)
	if g == 0 {
		return fmt.Sprint(b)
	}
	return fmt.Sprintf("%dg%d", b, g)
}

// FormatOptions writes a configuration of option codes: [8 4g64 3 8].
func FormatOptions(codes []int) string {
	s := "["
	for i, c := range codes {
		if i > 0 {
			s += " "
		}
		s += FormatOption(c)
	}
	return s + "]"
}

// CompareOptions orders option codes by storage per weight: by width,
// and at one width per channel first, then groups from the largest to the
// smallest (more scales). It is the order of "one option up" in the
// search.
func CompareOptions(a, b int) int {
	ba, ga := SplitOption(a)
	bb, gb := SplitOption(b)
	if c := cmp.Compare(ba, bb); c != 0 {
		return c
	}
	if ga == 0 || gb == 0 {
		return cmp.Compare(min(ga, 1), min(gb, 1)) // per channel (0) first
	}
	return cmp.Compare(gb, ga)
}

// SortOptions sorts option codes by CompareOptions and removes repeats.
func SortOptions(codes []int) []int {
	out := slices.Clone(codes)
	sort.SliceStable(out, func(i, j int) bool { return CompareOptions(out[i], out[j]) < 0 })
	return slices.Compact(out)
}

// Options returns the option codes of widths and group sizes: every width
// per channel, and every width below the widest in groups of each nonzero
// group size (the widest width in groups would buy nothing the widest
// per channel does not already give), sorted by CompareOptions.
func Options(widths, groups []int) []int {
	var out []int
	hi := slices.Max(widths)
	for _, b := range widths {
		out = append(out, b)
		for _, g := range groups {
			if g > 0 && b < hi {
				out = append(out, OptionCode(b, g))
			}
		}
	}
	return SortOptions(out)
}

// ScaleBytes is the storage of one per-channel scale as the export writes
// it: a float32 (FLOAT).
const ScaleBytes = 4

// GroupScaleBytes is the storage of one scale of an option in groups: a
// float16 (FLOAT16, RoundFP16), as the export writes it.
const GroupScaleBytes = 2

// OptionSizeBytes is the stored size of a weight (shape, channel axis
// axis) at option code: the weights packed at their width,
// ceil(params·bits/8) bytes, plus ScaleBytes per scale per output channel,
// or GroupScaleBytes per scale per output channel and group
// (BlockScaleShape).
func OptionSizeBytes(shape []int, axis, code int) float64 {
	b, g := SplitOption(code)
	n := tensorSize(shape)
	if g > 0 {
		return float64((n*b+7)/8 + GroupScaleBytes*tensorSize(BlockScaleShape(shape, axis, g)))
	}
	return float64((n*b+7)/8 + ScaleBytes*shape[axis])
}

// grouped is a source whose per-channel options come from one source and
// each group size's from another.
type grouped struct {
	perChannel WeightCodes // nil: no per-channel options
	method     string
	groups     map[int]WeightCodes
}

// WithGroups returns the source of option codes whose per-channel codes
// are perChannel's and whose codes in groups of G are groups[G]'s (at the
// code's width). perChannel may be nil when only options in groups are
// asked for. Method is perChannel's, else the groups' (they must agree).
func WithGroups(perChannel WeightCodes, groups map[int]WeightCodes) WeightCodes {
	if len(groups) == 0 {
		return perChannel
	}
	g := &grouped{perChannel: perChannel, groups: groups}
	if perChannel != nil {
		g.method = perChannel.Method()
	}
	for _, src := range groups {
		g.method = cmp.Or(g.method, src.Method())
	}
	return g
}

func (g *grouped) Method() string { return g.method }

func (g *grouped) Codes(li, code int) (*WeightQuant, error) {
	b, gs := SplitOption(code)
	if gs == 0 {
		if g.perChannel == nil {
			return nil, fmt.Errorf("quant: layer %d: no per-channel codes were prepared (%d bits): %w", li, b, ErrCodes)
		}
		return g.perChannel.Codes(li, b)
	}
	src, ok := g.groups[gs]
	if !ok {
		return nil, fmt.Errorf("quant: layer %d: no codes in groups of %d were prepared: %w", li, gs, ErrCodes)
	}
	return src.Codes(li, b)
}
