package dataset

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"errors"
	"path/filepath"
	"runtime"
	"testing"

	"codeberg.org/sbinet/npyio/npy"
	"codeberg.org/sbinet/npyio/npz"
)

// TestNPYForms reads hand-made NPY files of every supported element type,
// byte order and layout.
func TestNPYForms(t *testing.T) {
	dir := t.TempDir()
	// The 2x3 matrix [[0 1 2] [3 4 5]] / 8 (exact in float32), row-major and
	// column-major.
	rowMajor := []float32{0, 1, 2, 3, 4, 5}
	colMajor := []float32{0, 3, 1, 4, 2, 5}
	scale := func(v []float32) []float64 {
		out := make([]float64, len(v))
		for i, x := range v {
			out[i] = float64(x) / 8
		}
		return out
	}
	div8 := func(v []float32) []float32 {
		out := make([]float32, len(v))
		for i, x := range v {
			out[i] = x / 8
		}
		return out
	}
	want := scale(rowMajor)
	v2 := npyBytes("<f4", false, []int{2, 3}, f32Bytes(lePut, div8(rowMajor)...))
	// Turn the 1.0 file into a 2.0 one: 4-byte header length.
	v2 = append(append([]byte("\x93NUMPY\x02\x00"), binary.LittleEndian.AppendUint32(nil, uint32(binary.LittleEndian.Uint16(v2[8:10])))...), v2[10:]...)

	for _, c := range []struct {
		name  string
		file  []byte
		shape []int
		want  []float64
	}{
		{"<f4", npyBytes("<f4", false, []int{2, 3}, f32Bytes(lePut, div8(rowMajor)...)), []int{2, 3}, want},
		{">f4", npyBytes(">f4", false, []int{2, 3}, f32Bytes(bePut, div8(rowMajor)...)), []int{2, 3}, want},
		{"<f8", npyBytes("<f8", false, []int{2, 3}, f64Bytes(lePut, want...)), []int{2, 3}, want},
		{">f8 fortran", npyBytes(">f8", true, []int{2, 3}, f64Bytes(bePut, scale(colMajor)...)), []int{2, 3}, want},
		{"<f4 fortran", npyBytes("<f4", true, []int{2, 3}, f32Bytes(lePut, div8(colMajor)...)), []int{2, 3}, want},
		{"|u1", npyBytes("|u1", false, []int{2, 3}, []byte{0, 51, 102, 153, 204, 255}), []int{2, 3}, []float64{0, 0.2, 0.4, 0.6, 0.8, 1}},
		{"1-D fortran", npyBytes("<f4", true, []int{3}, f32Bytes(lePut, 1, 2, 3)), []int{3}, []float64{1, 2, 3}},
		{"version 2.0", v2, []int{2, 3}, want},
	} {
		p := writeFile(t, dir, "a.npy", c.file)
		d, err := Load(p, Options{})
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if !equalInts(d.X.Shape, c.shape) {
			t.Errorf("%s: shape %v; want %v", c.name, d.X.Shape, c.shape)
			continue
		}
		for i := range c.want {
			if d.X.Data[i] != c.want[i] {
				t.Errorf("%s: x = %v; want %v", c.name, d.X.Data, c.want)
				break
			}
		}
	}

	// Fortran order with a limit: the first rows of the transposed array.
	// [3,2] column-major [[0 1] [2 3] [4 5]] is stored 0 2 4 1 3 5.
	p := writeFile(t, dir, "f.npy", npyBytes("<f8", true, []int{3, 2}, f64Bytes(lePut, 0, 2, 4, 1, 3, 5)))
	d, err := Load(p, Options{Limit: 2})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := d.X.Data, []float64{0, 1, 2, 3}; maxAbsDiff(got, want) != 0 || d.Len() != 2 {
		t.Errorf("fortran [3,2] limit 2 = %v; want %v", got, want)
	}
}

// TestNPYLabels reads labels of every integer type written by npyio.
func TestNPYLabels(t *testing.T) {
	dir := t.TempDir()
	x := writeFile(t, dir, "x.npy", npyBytes("|u1", false, []int{4, 1}, []byte{1, 2, 3, 4}))
	want := []int{3, 0, 255, 7}
	for _, c := range []struct {
		name string
		v    any
	}{
		{"int64", []int64{3, 0, 255, 7}},
		{"int32", []int32{3, 0, 255, 7}},
		{"int16", []int16{3, 0, 255, 7}},
		{"int8", []int8{3, 0, 127, 7}},
		{"uint8", []uint8{3, 0, 255, 7}},
		{"uint16", []uint16{3, 0, 255, 7}},
		{"uint32", []uint32{3, 0, 255, 7}},
		{"uint64", []uint64{3, 0, 255, 7}},
	} {
		var b bytes.Buffer
		if err := npy.Write(&b, c.v); err != nil {
			t.Fatal(err)
		}
		y := writeFile(t, dir, "y.npy", b.Bytes())
		d, err := Load(x, Options{Labels: y, Limit: 3})
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		w := append([]int(nil), want[:3]...)
		if c.name == "int8" {
			w[2] = 127
		}
		if !equalInts(d.Y, w) {
			t.Errorf("%s: labels %v; want %v", c.name, d.Y, w)
		}
	}

	// uint64 beyond int64 and int32 beyond the class-index bound.
	for _, v := range []any{[]uint64{0, 1 << 63, 0, 0}, []int64{0, 1 << 40, 0, 0}} {
		var b bytes.Buffer
		npy.Write(&b, v)
		y := writeFile(t, dir, "big.npy", b.Bytes())
		if _, err := Load(x, Options{Labels: y}); !errors.Is(err, ErrFormat) {
			t.Errorf("labels %v: error %v; want ErrFormat", v, err)
		}
	}
}

// TestNPZ reads archives written by npyio (stored) and by archive/zip with
// deflate, as np.savez_compressed writes them.
func TestNPZ(t *testing.T) {
	dir := t.TempDir()
	xv := []float32{0.5, -1, 2, 4, 8, 16}
	yv := []int64{2, 0, 1, 1, 0, 2}

	stored := filepath.Join(dir, "stored.npz")
	if err := npz.Write(stored, map[string]any{"x": xv, "y": yv}); err != nil {
		t.Fatal(err)
	}
	onlyX := filepath.Join(dir, "onlyx.npz")
	if err := npz.Write(onlyX, map[string]any{"x": xv}); err != nil {
		t.Fatal(err)
	}
	noX := filepath.Join(dir, "nox.npz")
	if err := npz.Write(noX, map[string]any{"data": xv}); err != nil {
		t.Fatal(err)
	}
	badY := filepath.Join(dir, "bady.npz")
	if err := npz.Write(badY, map[string]any{"x": xv, "y": yv[:5]}); err != nil {
		t.Fatal(err)
	}

	// Deflated archive with a [3,2] x, made by hand.
	var zb bytes.Buffer
	zw := zip.NewWriter(&zb)
	for _, e := range []struct {
		name string
		data []byte
	}{
		{"x.npy", npyBytes("<f4", false, []int{3, 2}, f32Bytes(lePut, xv...))},
		{"y.npy", npyBytes("<i8", false, []int{3}, i64Bytes(yv[:3]...))},
	} {
		w, err := zw.CreateHeader(&zip.FileHeader{Name: e.name, Method: zip.Deflate})
		if err != nil {
			t.Fatal(err)
		}
		w.Write(e.data)
	}
	zw.Close()
	deflated := writeFile(t, dir, "deflated.npz", zb.Bytes())
	// The same archive with one byte of x's compressed data flipped.
	corrupt := append([]byte(nil), zb.Bytes()...)
	corrupt[60] ^= 0xff
	corruptPath := writeFile(t, dir, "corrupt.npz", corrupt)
	labels := writeFile(t, dir, "labels.npy", npyBytes("<i8", false, []int{6}, i64Bytes(yv...)))

	for _, c := range []struct {
		name  string
		path  string
		opt   Options
		shape []int
		y     []int
	}{
		{"stored", stored, Options{}, []int{6}, []int{2, 0, 1, 1, 0, 2}},
		{"stored limit", stored, Options{Limit: 4}, []int{4}, []int{2, 0, 1, 1}},
		{"unlabelled", onlyX, Options{}, []int{6}, nil},
		{"external labels", onlyX, Options{Labels: labels}, []int{6}, []int{2, 0, 1, 1, 0, 2}},
		{"deflated", deflated, Options{}, []int{3, 2}, []int{2, 0, 1}},
	} {
		d, err := Load(c.path, c.opt)
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if !equalInts(d.X.Shape, c.shape) || !equalInts(d.Y, c.y) || (c.y == nil) != (d.Y == nil) {
			t.Errorf("%s: shape %v labels %v; want %v %v", c.name, d.X.Shape, d.Y, c.shape, c.y)
			continue
		}
		for i := range d.X.Data {
			if d.X.Data[i] != float64(xv[i]) {
				t.Errorf("%s: x = %v; want %v", c.name, d.X.Data, xv)
				break
			}
		}
	}

	for _, c := range []struct {
		name string
		path string
		opt  Options
		want error
	}{
		{"no x", noX, Options{}, ErrFormat},
		{"y count", badY, Options{}, ErrFormat},
		{"labels twice", stored, Options{Labels: labels}, ErrOption},
		{"corrupt deflate", corruptPath, Options{}, ErrFormat},
	} {
		if _, err := Load(c.path, c.opt); !errors.Is(err, c.want) {
			t.Errorf("%s: error %v; want %v", c.name, err, c.want)
		}
	}
}

// TestNPYHeaders checks the header parser on literal forms NumPy has written
// over the years and on malformed ones.
func TestNPYHeaders(t *testing.T) {
	for _, c := range []struct {
		hdr     string
		descr   string
		fortran bool
		shape   []int
		ok      bool
	}{
		{"{'descr': '<f4', 'fortran_order': False, 'shape': (256, 1, 28, 28), }", "<f4", false, []int{256, 1, 28, 28}, true},
		{"{'descr': '|u1', 'fortran_order': True, 'shape': (3,), }   \n", "|u1", true, []int{3}, true},
		{"{\"descr\": \"<i8\", \"fortran_order\": False, \"shape\": (3L, 4L)}", "<i8", false, []int{3, 4}, true},
		{"{'shape': (), 'fortran_order': False, 'descr': '<f8'}", "<f8", false, []int{}, true},
		{"{'descr': '<f4', 'fortran_order': False}", "", false, nil, false},
		{"{'descr': '<f4', 'fortran_order': False, 'shape': (-1,)}", "", false, nil, false},
		{"{'descr': '<f4', 'fortran_order': 0, 'shape': (1,)}", "", false, nil, false},
		{"{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (1,)}", "", false, nil, false},
		{"{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999,)}", "", false, nil, false},
		{"{'descr': '<f4', 'fortran_order': False, 'shape': (1,)} x", "", false, nil, false},
		{"{'descr': '<f4', 'fortran_order': False, 'shape': (1,)", "", false, nil, false},
		{"((((((((((((1))))))))))))", "", false, nil, false},
		{"", "", false, nil, false},
	} {
		descr, fortran, shape, err := parseHeader(c.hdr)
		if (err == nil) != c.ok {
			t.Errorf("parseHeader(%q) error %v; want ok=%v", c.hdr, err, c.ok)
			continue
		}
		if c.ok && (descr != c.descr || fortran != c.fortran || !equalInts(shape, c.shape)) {
			t.Errorf("parseHeader(%q) = %q %v %v; want %q %v %v", c.hdr, descr, fortran, shape, c.descr, c.fortran, c.shape)
		}
	}
}

// TestReadFullBounded checks that a header claiming far more data than the
// input holds fails without allocating the claimed size.
func TestReadFullBounded(t *testing.T) {
	file := npyBytes("<f8", false, []int{1 << 20, 1 << 20}, f64Bytes(lePut, 1, 2, 3))
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err := readNPY(bytes.NewReader(file), "huge", 0)
	runtime.ReadMemStats(&after)
	if !errors.Is(err, ErrFormat) {
		t.Errorf("8 TiB claim: error %v; want ErrFormat", err)
	}
	// The bound: one read chunk plus small change for the header.
	if grown := after.TotalAlloc - before.TotalAlloc; grown > 2*readChunk {
		t.Errorf("8 TiB claim on 24 bytes allocated %d bytes; want <= %d", grown, 2*readChunk)
	}
}
