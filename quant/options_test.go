package quant

import (
	"context"
	"slices"
	"testing"

	"mpsearch/internal/fixture"
	"mpsearch/tensor"
)

func TestOptionCodes(t *testing.T) {
	for _, c := range []struct {
		bits, group, code int
		text              string
	}{
		{3, 0, 3, "3"}, {8, 0, 8, "8"}, {3, 64, 6403, "3g64"}, {2, 1, 102, "2g1"}, {4, 128, 12804, "4g128"},
	} {
		code := OptionCode(c.bits, c.group)
		b, g := SplitOption(code)
		if code != c.code || b != c.bits || g != c.group || FormatOption(code) != c.text || Grouped(code) != (c.group > 0) {
			t.Errorf("(%d bits, groups of %d): got code %d → (%d, %d) %q grouped %t; want %d, %q", c.bits, c.group, code, b, g, FormatOption(code), Grouped(code), c.code, c.text)
		}
		if err := ValidOption(code); err != nil {
			t.Errorf("%q: %v", c.text, err)
		}
	}
	for _, bad := range []int{9, 31, 33, 6400, 6409, -1} {
		if ValidOption(bad) == nil {
			t.Errorf("option %d: valid; want an error", bad)
		}
	}
}

func TestOptionsOrder(t *testing.T) {
	got := Options([]int{8, 2, 4, 3}, []int{0, 64, 32})
	want := []int{2, 6402, 3202, 3, 6403, 3203, 4, 6404, 3204, 8}
	if !slices.Equal(got, want) {
		t.Errorf("Options(2,3,4,8; 0,64,32): got %s; want %s (per width: per channel, then groups from the largest)", FormatOptions(got), FormatOptions(want))
	}
	if got := Options([]int{2, 4, 8}, []int{0}); !slices.Equal(got, []int{2, 4, 8}) {
		t.Errorf("Options without groups: got %v; want the widths", got)
	}
}

// TestOptionSizeBytes checks the packed weights plus 4-byte per-channel
// scales or 2-byte (float16) group scales against counts by hand: LeNet's conv2 [16, 6, 5, 5] (2400 weights) and
// fc1 stored [120, 400] (transB, channels on axis 0).
func TestOptionSizeBytes(t *testing.T) {
	for _, c := range []struct {
		shape      []int
		axis, code int
		want       float64
	}{
		{[]int{16, 6, 5, 5}, 0, 3, 2400*3/8 + 4*16},
		{[]int{16, 6, 5, 5}, 0, OptionCode(3, 64), 2400*3/8 + 2*16*1*25}, // 6 channels < 64: one block per tap
		{[]int{16, 6, 5, 5}, 0, OptionCode(2, 2), 2400*2/8 + 2*16*3*25},
		{[]int{120, 400}, 0, OptionCode(4, 64), 48000*4/8 + 2*120*7}, // ceil(400/64) = 7
		{[]int{400, 120}, 1, OptionCode(3, 64), 48000*3/8 + 2*7*120},
		{[]int{10, 3}, 0, 3, 12 + 40}, // 90 bits: 12 bytes
	} {
		if got := OptionSizeBytes(c.shape, c.axis, c.code); got != c.want {
			t.Errorf("%v axis %d at %s: got %.0f B; want %.0f", c.shape, c.axis, FormatOption(c.code), got, c.want)
		}
	}
}

// TestWithGroups checks that a grouped source gives the per-channel
// source's codes at per-channel options and the blocked source's at
// options in groups, and refuses a group size it was not given.
func TestWithGroups(t *testing.T) {
	net := fixture.LeNet(t)
	ds := fixture.LeNetCalib(t)
	pc := NewRoundToNearest(net)
	g64, err := NewBlockCodes(context.Background(), MethodRTN, net, []*tensor.Tensor{ds.X}, BlockCodesOptions{CodesOptions: CodesOptions{Widths: []int{3}}, Block: 64})
	if err != nil {
		t.Fatal(err)
	}
	src := WithGroups(pc, map[int]WeightCodes{64: g64})
	for li := range net.Layers() {
		a, err1 := src.Codes(li, 3)
		b, err2 := pc.Codes(li, 3)
		c, err3 := src.Codes(li, OptionCode(3, 64))
		d, err4 := g64.Codes(li, 3)
		if err := errorsJoin(err1, err2, err3, err4); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(a.Q, b.Q) || !slices.Equal(a.Scales, b.Scales) || a.Block != 0 {
			t.Errorf("layer %d at 3: not the per-channel codes", li)
		}
		if !slices.Equal(c.Q, d.Q) || !slices.Equal(c.Scales, d.Scales) || c.Block != d.Block || c.Block == 0 {
			t.Errorf("layer %d at 3g64: not the blocked codes (block %d)", li, c.Block)
		}
	}
	if _, err := src.Codes(0, OptionCode(3, 32)); err == nil {
		t.Error("3g32 from a source with groups of 64 only: no error")
	}
}

func errorsJoin(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
