package dataset

import (
	"archive/zip"
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"mpsearch/tensor"
)

// FuzzIDX checks that the IDX readers never panic, return ErrFormat-style
// errors or well-formed results, and keep pixel values in [0, 1].
func FuzzIDX(f *testing.F) {
	img := idxBytes([]int{2, 3, 2}, seq(12))
	f.Add(img)
	f.Add(gzipBytes(img))
	f.Add(idxBytes([]int{4}, []byte{1, 2, 3, 4}))
	f.Add(gzipBytes(idxBytes([]int{4}, []byte{1, 2, 3, 4})))
	f.Add(idxBytes([]int{1 << 30, 1 << 30, 1 << 30}, nil))
	f.Add([]byte{0, 0, 8, 255})
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, limit := range []int{0, 1} {
			x, n, err := readIDXImages(bytes.NewReader(data), "fuzz", limit)
			if err != nil {
				continue
			}
			if x.Rank() != 4 || x.Shape[1] != 1 || len(x.Data) != tensor.Size(x.Shape) || n < x.Shape[0] || x.Shape[0] < 1 {
				t.Fatalf("limit %d: shape %v with %d values, %d in file", limit, x.Shape, len(x.Data), n)
			}
			for _, v := range x.Data {
				if !(v >= 0 && v <= 1) {
					t.Fatalf("pixel %v outside [0, 1]", v)
				}
			}
		}
		if y, err := readIDXLabels(bytes.NewReader(data), "fuzz"); err == nil {
			for _, v := range y {
				if v < 0 || v > 255 {
					t.Fatalf("label %d outside [0, 255]", v)
				}
			}
		}
	})
}

// FuzzNPY checks that the NPY reader never panics and that what it accepts
// converts consistently.
func FuzzNPY(f *testing.F) {
	f.Add(npyBytes("<f4", false, []int{2, 2}, f32Bytes(lePut, 1, 2, 3, 4)))
	f.Add(npyBytes(">f8", true, []int{2, 1}, f64Bytes(bePut, 1, 2)))
	f.Add(npyBytes("|u1", false, []int{3}, []byte{0, 128, 255}))
	f.Add(npyBytes("<i8", false, []int{2}, i64Bytes(5, 7)))
	f.Add(npyBytes("<f4", false, []int{1 << 40, 1 << 40}, nil))
	if b, err := os.ReadFile("testdata/calib_labels.npy"); err == nil {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, limit := range []int{0, 1} {
			a, err := readNPY(bytes.NewReader(data), "fuzz", limit)
			if err != nil {
				continue
			}
			rowElems := tensor.Size(a.shape[1:])
			if a.rows < 1 || a.rows > a.shape[0] || len(a.raw) != a.rows*rowElems*a.size {
				t.Fatalf("limit %d: %d rows of shape %v, %d raw bytes of %d-byte elements", limit, a.rows, a.shape, len(a.raw), a.size)
			}
			if x, err := a.samples("fuzz"); err == nil {
				if x.Shape[0] != a.rows || len(x.Data) != tensor.Size(x.Shape) {
					t.Fatalf("samples: shape %v with %d values from %d rows", x.Shape, len(x.Data), a.rows)
				}
			}
			if y, err := a.labels("fuzz"); err == nil {
				if len(y) != a.rows {
					t.Fatalf("%d labels from %d rows", len(y), a.rows)
				}
				for _, v := range y {
					if v < 0 {
						t.Fatalf("negative label %d accepted", v)
					}
				}
			}
		}
	})
}

// FuzzStream checks that a stream read in batches of 2 (NPY rows, IDX
// records, NPZ members, the end-of-file check by size or by reading) gives
// Load's samples bit for bit, or Load's error, and never panics.
func FuzzStream(f *testing.F) {
	f.Add(npyBytes("<f4", false, []int{3, 2}, f32Bytes(lePut, 1, 2, 3, 4, 5, 6)), 0)
	f.Add(npyBytes("|u1", false, []int{3, 1, 1, 2}, seq(6)), 2)
	f.Add(npyBytes(">f8", true, []int{2, 2}, f64Bytes(bePut, 1, 2, 3, 4)), 1)
	f.Add(idxBytes([]int{3, 2, 2}, seq(12)), 0)
	f.Add(gzipBytes(idxBytes([]int{3, 2, 2}, seq(12))), 2)
	f.Add(zipBytesF(npyBytes("<f4", false, []int{3, 2}, f32Bytes(lePut, 1, 2, 3, 4, 5, 6)), npyBytes("|u1", false, []int{3}, []byte{1, 0, 2})), 0)
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte, limit int) {
		if limit < 0 || limit > 8 {
			return
		}
		path := filepath.Join(dir, "fuzz")
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		opt := Options{Limit: limit}
		want, lerr := Load(path, opt)
		s, err := Open(path, opt)
		if err != nil {
			if lerr == nil || err.Error() != lerr.Error() {
				t.Fatalf("Open: %v; Load: %v", err, lerr)
			}
			return
		}
		x, y, err := streamAll(s, 2)
		switch {
		case (err == nil) != (lerr == nil):
			t.Fatalf("stream error %v; Load error %v", err, lerr)
		case err != nil && err.Error() != lerr.Error():
			t.Fatalf("stream error %q; Load error %q", err, lerr)
		case err == nil && (!sameBits(x, want.X) || !slices.Equal(y, want.Y)):
			t.Fatalf("streamed %v %v; Load %v %v", x.Data, y, want.X.Data, want.Y)
		}
	})
}

// zipBytesF is an archive of x.npy and y.npy, deflated.
func zipBytesF(x, y []byte) []byte {
	var zb bytes.Buffer
	zw := zip.NewWriter(&zb)
	for _, e := range []struct {
		name string
		data []byte
	}{{"x.npy", x}, {"y.npy", y}} {
		w, _ := zw.CreateHeader(&zip.FileHeader{Name: e.name, Method: zip.Deflate})
		w.Write(e.data)
	}
	zw.Close()
	return zb.Bytes()
}
