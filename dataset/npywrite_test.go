package dataset

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"mpsearch/tensor"
)

// TestNPYHeaderMatchesNumPy compares the headers NPYFloat32 writes with the
// bytes numpy.save (NumPy 1.24, Debian 12) writes for float32 arrays of the
// same shapes: the dictionary, then spaces up to 128 bytes in all, then a
// newline.
func TestNPYHeaderMatchesNumPy(t *testing.T) {
	for _, tc := range []struct {
		shape []int
		dict  string
	}{
		{[]int{2, 3}, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }"},
		{[]int{5}, "{'descr': '<f4', 'fortran_order': False, 'shape': (5,), }"},
		{[]int{1, 1000}, "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 1000), }"},
		{[]int{2, 3, 4, 5}, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3, 4, 5), }"},
		{[]int{12345678901234, 1}, "{'descr': '<f4', 'fortran_order': False, 'shape': (12345678901234, 1), }"},
	} {
		got := string(npyHeader("<f4", tc.shape))
		want := "\x93NUMPY\x01\x00\x76\x00" + tc.dict + strings.Repeat(" ", 128-11-len(tc.dict)) + "\n"
		if got != want {
			t.Errorf("shape %v: got header %q; want %q", tc.shape, got, want)
		}
	}
}

func TestNPYRoundTrip(t *testing.T) {
	dir := t.TempDir()
	vals := []float32{0, -1.5, 3.25, 1e-8, 7, 65504}
	b, err := NPYFloat32([]int{2, 3}, vals)
	if err != nil {
		t.Fatal(err)
	}
	p32 := filepath.Join(dir, "x32.npy")
	if err := os.WriteFile(p32, b, 0o644); err != nil {
		t.Fatal(err)
	}
	x := tensor.FromData([]float64{1, 2.5, -3, 1e300, 0.1, 6}, 3, 2)
	p64 := filepath.Join(dir, "x64.npy")
	if err := os.WriteFile(p64, NPYFloat64(x), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		path  string
		shape []int
		want  []float64
	}{
		{p32, []int{2, 3}, []float64{0, -1.5, 3.25, float64(float32(1e-8)), 7, 65504}},
		{p64, []int{3, 2}, x.Data},
	} {
		got, err := ReadNPY(tc.path)
		if err != nil {
			t.Fatal(err)
		}
		ds, err := Load(tc.path, Options{})
		if err != nil {
			t.Fatal(err)
		}
		for _, y := range []*tensor.Tensor{got, ds.X} {
			if !tensor.SameShape(y.Shape, tc.shape) {
				t.Fatalf("%s: got shape %v; want %v", tc.path, y.Shape, tc.shape)
			}
			for i := range tc.want {
				if y.Data[i] != tc.want[i] {
					t.Errorf("%s[%d]: got %v; want %v", filepath.Base(tc.path), i, y.Data[i], tc.want[i])
				}
			}
		}
	}
	if _, err := NPYFloat32([]int{2, 2}, vals); err == nil {
		t.Error("NPYFloat32 with 6 values for shape [2 2]: got no error")
	}
}

// TestReadNPYIntegers checks that ReadNPY keeps integers as they are
// (Load scales uint8 pixels by 1/255).
func TestReadNPYIntegers(t *testing.T) {
	p := filepath.Join(t.TempDir(), "u8.npy")
	b := append(npyHeader("|u1", []int{3}), 0, 7, 255)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := ReadNPY(p)
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []float64{0, 7, 255} {
		if got.Data[i] != want {
			t.Errorf("value %d: got %v; want %v", i, got.Data[i], want)
		}
	}
}

// TestNPYFloat32Writer checks that the piecewise writer gives NPYFloat32's
// bytes, and refuses too many or too few values.
func TestNPYFloat32Writer(t *testing.T) {
	vals := []float64{0, -1.5, 3.25, 1e-8, 7, 65504, 1e300, -0.1}
	f32 := make([]float32, len(vals))
	for i, v := range vals {
		f32[i] = float32(v)
	}
	want, err := NPYFloat32([]int{4, 2}, f32)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	w, err := NewNPYFloat32Writer(&buf, []int{4, 2})
	if err != nil {
		t.Fatal(err)
	}
	for _, part := range [][]float64{vals[:3], vals[3:3], vals[3:]} {
		if err := w.Write(part); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), want) {
		t.Errorf("piecewise bytes differ from NPYFloat32's:\n got %q\nwant %q", buf.Bytes(), want)
	}
	if err := w.Write([]float64{1}); err == nil {
		t.Error("a value beyond the shape: got no error")
	}
	short, _ := NewNPYFloat32Writer(io.Discard, []int{3})
	short.Write([]float64{1, 2})
	if err := short.Close(); err == nil {
		t.Error("Close with a value missing: got no error")
	}
}
