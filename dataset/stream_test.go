package dataset

import (
	"archive/zip"
	"bytes"
	"context"
	"errors"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"codeberg.org/sbinet/npyio/npz"

	"mpsearch/tensor"
)

// streamAll reads a whole pass of src in batches of size bs and stacks
// them.
func streamAll(src Source, bs int) (*tensor.Tensor, []int, error) {
	b, err := src.Batches()
	if err != nil {
		return nil, nil, err
	}
	defer b.Close()
	var data []float64
	var y []int
	var shape []int
	for {
		x, lab, err := b.Next(context.Background(), bs)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, nil, err
		}
		if x.Shape[0] > bs {
			return nil, nil, errors.New("batch larger than asked")
		}
		if shape == nil {
			shape = slices.Clone(x.Shape)
			shape[0] = 0
		}
		shape[0] += x.Shape[0]
		data = append(data, x.Data...)
		y = append(y, lab...)
		if lab == nil {
			y = nil
		}
	}
	return tensor.FromData(data, shape...), y, nil
}

// sameBits reports whether two tensors hold the same values bit for bit.
func sameBits(a, b *tensor.Tensor) bool {
	if !slices.Equal(a.Shape, b.Shape) || len(a.Data) != len(b.Data) {
		return false
	}
	for i := range a.Data {
		if math.Float64bits(a.Data[i]) != math.Float64bits(b.Data[i]) {
			return false
		}
	}
	return true
}

// streamCase is a data file and the options to read it with.
type streamCase struct {
	name string
	path string
	opt  Options
}

// streamFixtures writes one file of every form the reader knows (and uses
// the repository's fixtures) into dir.
func streamFixtures(t *testing.T, dir string) []streamCase {
	t.Helper()
	const n, c, h, w = 7, 3, 5, 6
	u8 := make([]byte, n*c*h*w)
	for i := range u8 {
		u8[i] = byte(i*37 + i/11)
	}
	f32 := make([]float32, n*c*h*w)
	f64 := make([]float64, n*c*h*w)
	for i := range f32 {
		f32[i] = float32(math.Sin(float64(i))) * 3
		f64[i] = math.Cos(float64(i)) / 7
	}
	labels := make([]int64, n)
	for i := range labels {
		labels[i] = int64(i * 3 % 5)
	}
	u8npy := writeFile(t, dir, "u8.npy", npyBytes("|u1", false, []int{n, c, h, w}, u8))
	f32npy := writeFile(t, dir, "f32.npy", npyBytes("<f4", false, []int{n, c, h, w}, f32Bytes(lePut, f32...)))
	f64be := writeFile(t, dir, "f64be.npy", npyBytes(">f8", false, []int{n, c * h * w}, f64Bytes(bePut, f64...)))
	fortran := writeFile(t, dir, "fortran.npy", npyBytes("<f8", true, []int{n, c, h, w}, f64Bytes(lePut, f64...)))
	lab := writeFile(t, dir, "labels.npy", npyBytes("<i8", false, []int{n}, i64Bytes(labels...)))
	idxImg := idxBytes([]int{n, h, w}, u8[:n*h*w])
	idxLab := idxBytes([]int{n}, []byte{3, 1, 4, 1, 5, 9, 2})
	idxRaw := writeFile(t, dir, "img.idx", idxImg)
	idxGz := writeFile(t, dir, "img.idx.gz", gzipBytes(idxImg))
	idxLabGz := writeFile(t, dir, "lab.idx.gz", gzipBytes(idxLab))
	x8 := npyBytes("|u1", false, []int{n, c, h, w}, u8)
	x32 := npyBytes("<f4", false, []int{n, c, h, w}, f32Bytes(lePut, f32...))
	y64 := npyBytes("<i8", false, []int{n}, i64Bytes(labels...))
	stored := writeFile(t, dir, "stored.npz", zipBytes(t, zip.Store, "x.npy", x32, "y.npy", y64))
	deflated := writeFile(t, dir, "deflated.npz", zipBytes(t, zip.Deflate, "x.npy", x8, "y.npy", y64))
	deflatedX := writeFile(t, dir, "deflatedx.npz", zipBytes(t, zip.Deflate, "x", x32))
	folder := filepath.Join(dir, "folder")
	for i, name := range []string{"a/1.png", "a/2.png", "b/3.png", "b/4.png", "c/5.png"} {
		writeFile(t, folder, name, rgbPNG(t, pattern(i)))
	}
	writeFile(t, folder, "b/5.png", grayPNG(t, [][]int{{1, 2, 3, 4, 5}, {6, 7, 8, 9, 10}})) // another size

	rgb := Options{Mean: []float64{0.4, 0.5, 0.6}, Std: []float64{0.2, 0.3, 0.25}}
	cases := []streamCase{
		{"uint8 NPY", u8npy, Options{Labels: lab}},
		{"uint8 NPY, limit, mean/std", u8npy, Options{Labels: lab, Limit: 5, Mean: rgb.Mean, Std: rgb.Std}},
		{"uint8 NPY, gray, resize", u8npy, Options{Gray: true, Resize: [2]int{4, 9}, Mean: []float64{0.5}, Std: []float64{0.25}}},
		{"float32 NPY, resize", f32npy, Options{Resize: [2]int{3, 3}, Limit: 6}},
		{"float64 big-endian NPY", f64be, Options{Mean: []float64{0.1}, Std: []float64{2}}},
		{"Fortran-order NPY, limit", fortran, Options{Limit: 4, Labels: lab}},
		{"IDX", idxRaw, Options{Labels: idxLabGz}},
		{"IDX gzip, limit", idxGz, Options{Labels: idxLabGz, Limit: 3, Mean: []float64{0.3}, Std: []float64{0.7}}},
		{"stored NPZ", stored, Options{}},
		{"stored NPZ, limit", stored, Options{Limit: 2}},
		{"deflated NPZ, gray", deflated, Options{Gray: true, Limit: 6}},
		{"deflated NPZ, external labels", deflatedX, Options{Labels: lab}},
		{"folder, resize", folder, Options{Resize: [2]int{4, 5}}},
		{"folder, gray, resize, limit", folder, Options{Resize: [2]int{2, 3}, Gray: true, Limit: 4, Mean: []float64{0.2}, Std: []float64{0.5}}},
		{"calibration fixture", "testdata/calib.npy", Options{Labels: "testdata/calib_labels.npy", Mean: []float64{0.2860}, Std: []float64{0.3530}}},
		{"calibration fixture, limit", "testdata/calib.npy", Options{Labels: "testdata/calib_labels.npy", Limit: 100}},
	}
	if p := filepath.Join(fmnistDir, "t10k-images-idx3-ubyte.gz"); fileExists(p) {
		cases = append(cases, streamCase{"Fashion-MNIST test set", p, Options{Labels: filepath.Join(fmnistDir, "t10k-labels-idx1-ubyte.gz"), Mean: []float64{0.2860}, Std: []float64{0.3530}}})
	}
	return cases
}

// zipBytes builds a zip archive of (name, data) pairs with one method.
func zipBytes(t *testing.T, method uint16, entries ...any) []byte {
	t.Helper()
	var zb bytes.Buffer
	zw := zip.NewWriter(&zb)
	for i := 0; i < len(entries); i += 2 {
		fw, err := zw.CreateHeader(&zip.FileHeader{Name: entries[i].(string), Method: method})
		if err != nil {
			t.Fatal(err)
		}
		fw.Write(entries[i+1].([]byte))
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return zb.Bytes()
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// TestStreamMatchesLoad streams every fixture in batches of several sizes
// and checks that the samples and labels equal Load's bit for bit. Load is
// one batch of the same reader, so this checks what batching must not
// change: per-batch transforms, the rows and labels of each piece, the end
// of file checked at the last batch. Load's values themselves are checked
// against NumPy, npyio and PyTorch by the other tests.
func TestStreamMatchesLoad(t *testing.T) {
	for _, c := range streamFixtures(t, t.TempDir()) {
		want, err := Load(c.path, c.opt)
		if err != nil {
			t.Errorf("%s: Load: %v", c.name, err)
			continue
		}
		s, err := Open(c.path, c.opt)
		if err != nil {
			t.Errorf("%s: Open: %v", c.name, err)
			continue
		}
		if s.Len() != want.Len() || !slices.Equal(s.SampleShape(), want.SampleShape()) || s.Labeled() != (want.Y != nil) || !slices.Equal(s.Classes(), want.Classes) {
			t.Errorf("%s: stream of %d samples of %v (labelled %v, classes %v); want %d of %v (%v, %v)", c.name,
				s.Len(), s.SampleShape(), s.Labeled(), s.Classes(), want.Len(), want.SampleShape(), want.Y != nil, want.Classes)
			continue
		}
		sizes := []int{1, 2, 3, 1000, 1 << 20}
		if want.Len() > 1000 {
			sizes = []int{777, 1 << 20}
		}
		for _, bs := range sizes {
			x, y, err := streamAll(s, bs)
			if err != nil {
				t.Errorf("%s, batch %d: %v", c.name, bs, err)
				continue
			}
			if !sameBits(x, want.X) {
				t.Errorf("%s, batch %d: streamed samples of shape %v differ from Load's %v", c.name, bs, x.Shape, want.X.Shape)
			}
			if !slices.Equal(y, want.Y) || (y == nil) != (want.Y == nil) {
				t.Errorf("%s, batch %d: labels %v; want %v", c.name, bs, y, want.Y)
			}
		}
		// Without labels: same samples, no labels.
		if x, y, err := streamAll(s.WithoutLabels(), 3); err != nil || y != nil || !sameBits(x, want.X) {
			t.Errorf("%s: WithoutLabels: labels %v, error %v; want the samples and no labels", c.name, y, err)
		}
		// The Dataset's own pass gives its views.
		if x, y, err := streamAll(want, 2); err != nil || !sameBits(x, want.X) || !slices.Equal(y, want.Y) {
			t.Errorf("%s: Dataset.Batches: error %v or different values", c.name, err)
		}
		if h, err := Head(context.Background(), s, 2); err != nil || !sameBits(h.X, want.Subset(0, min(2, want.Len())).X) {
			t.Errorf("%s: Head(2): error %v or different values", c.name, err)
		}
	}
}

// TestStreamNPZBytesMatchesFromNPZBytes checks the in-memory archive path.
func TestStreamNPZBytesMatchesFromNPZBytes(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "a.npz")
	xv := []float32{1, 2, 3, 4, 5, 6, 7, 8}
	if err := npz.Write(p, map[string]any{"x": xv, "y": []int64{1, 0, 1, 0, 1, 1, 0, 0}}); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	opt := Options{Limit: 5, Mean: []float64{1}, Std: []float64{2}}
	want, err := FromNPZBytes(data, "mem", opt)
	if err != nil {
		t.Fatal(err)
	}
	s, err := OpenNPZBytes(data, "mem", opt)
	if err != nil {
		t.Fatal(err)
	}
	x, y, err := streamAll(s, 2)
	if err != nil || !sameBits(x, want.X) || !slices.Equal(y, want.Y) {
		t.Errorf("streamed %v %v (error %v); want %v %v", x, y, err, want.X.Data, want.Y)
	}
}

// TestStreamErrors checks that errors in a file's body come from the Next
// that reaches them, with Load's message, and that header errors come from
// Open.
func TestStreamErrors(t *testing.T) {
	dir := t.TempDir()
	vals := []float32{1, 2, 3, 4, 5, float32(math.Inf(1)), 7, 8}
	nonFinite := writeFile(t, dir, "inf.npy", npyBytes("<f4", false, []int{4, 2}, f32Bytes(lePut, vals...)))
	full := npyBytes("<f4", false, []int{4, 2}, f32Bytes(lePut, 1, 2, 3, 4, 5, 6, 7, 8))
	truncated := writeFile(t, dir, "short.npy", full[:len(full)-3])
	trailing := writeFile(t, dir, "long.npy", append(slices.Clone(full), 0))
	gzTrailing := writeFile(t, dir, "long.idx.gz", gzipBytes(append(idxBytes([]int{3, 1, 2}, seq(6)), 9)))
	okData := writeFile(t, dir, "ok.npy", full)
	badLabels := writeFile(t, dir, "badlab.npy", npyBytes("<i8", false, []int{4}, i64Bytes(1, 2, 3, -4)))
	fewLabels := writeFile(t, dir, "fewlab.npy", npyBytes("<i8", false, []int{3}, i64Bytes(1, 2, 3)))
	for _, c := range []struct {
		name string
		path string
		opt  Options
		// okBatches is how many batches of 1 come before the error.
		okBatches int
	}{
		{"non-finite value in sample 2", nonFinite, Options{}, 2},
		{"truncated last row", truncated, Options{}, 3},
		{"rows after the limit truncated", truncated, Options{Limit: 2}, 1},
		{"byte after the array", trailing, Options{}, 3},
		{"byte after a gzipped IDX array", gzTrailing, Options{}, 2},
		{"negative label after the limit", okData, Options{Limit: 2, Labels: badLabels}, 1},
	} {
		_, lerr := Load(c.path, c.opt)
		if lerr == nil {
			t.Errorf("%s: Load gave no error", c.name)
			continue
		}
		s, err := Open(c.path, c.opt)
		if err != nil {
			t.Errorf("%s: Open: %v; want the error from Next", c.name, err)
			continue
		}
		b, err := s.Batches()
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; ; i++ {
			_, _, err := b.Next(context.Background(), 1)
			if err == nil {
				continue
			}
			if i != c.okBatches || err.Error() != lerr.Error() || !errors.Is(err, ErrFormat) {
				t.Errorf("%s: batch %d: error %q; want batch %d to fail with Load's %q", c.name, i, err, c.okBatches, lerr)
			}
			break
		}
		b.Close()
	}
	if _, err := Open(okData, Options{Labels: fewLabels}); !errors.Is(err, ErrFormat) {
		t.Errorf("3 labels for 4 samples: Open error %v; want ErrFormat", err)
	}
	if _, err := Open(okData, Options{Gray: true}); !errors.Is(err, ErrOption) {
		t.Errorf("gray of [4,2] samples: Open error %v; want ErrOption", err)
	}
	if _, err := Open(okData, Options{Mean: []float64{1, 2, 3}}); !errors.Is(err, ErrOption) {
		t.Errorf("3 means for 2 channels: Open error %v; want ErrOption", err)
	}
	// A file replaced by one of another shape between passes.
	s, err := Open(okData, Options{})
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, dir, "ok.npy", npyBytes("<f4", false, []int{2, 2}, f32Bytes(lePut, 1, 2, 3, 4)))
	if _, err := s.Batches(); !errors.Is(err, ErrFormat) {
		t.Errorf("changed file: Batches error %v; want ErrFormat", err)
	}
}

// TestStreamFirstDefect checks that a file with two defects fails with
// the one at the lower sample whatever the batch sizes, so Load and every
// pass agree (FuzzStream found a truncated file with a NaN before its end
// reported as the NaN by batches of 2 and as the truncation by Load).
func TestStreamFirstDefect(t *testing.T) {
	dir := t.TempDir()
	nan := float32(math.NaN())
	// 7 samples announced, 4 present, the fourth NaN.
	full7 := npyBytes("<f4", false, []int{7, 1}, f32Bytes(lePut, 1, 2, 3, nan, 5, 6, 7))
	shortNaN := full7[:len(full7)-12]
	x6 := f32Bytes(lePut, 1, 2, 3, 4, 5, 6)
	full6 := npyBytes("<f4", false, []int{6, 1}, x6)
	for _, c := range []struct {
		name string
		file []byte
		want string
	}{
		{"NaN in sample 3 of a file cut after it", shortNaN, "non-finite value NaN in sample 3"},
		{"bad label 1, data cut at sample 4", zipBytes(t, zip.Store,
			"x.npy", full6[:len(full6)-8],
			"y.npy", npyBytes("<i8", false, []int{6}, i64Bytes(0, -1, 0, 0, 0, 0))), "label -1 at index 1 is negative"},
		{"NaN in sample 0, bad label 5", zipBytes(t, zip.Store,
			"x.npy", npyBytes("<f4", false, []int{6, 1}, f32Bytes(lePut, nan, 2, 3, 4, 5, 6)),
			"y.npy", npyBytes("<i8", false, []int{6}, i64Bytes(0, 0, 0, 0, 0, -1))), "non-finite value NaN in sample 0"},
		{"NaN and bad label both in sample 2", zipBytes(t, zip.Store,
			"x.npy", npyBytes("<f4", false, []int{6, 1}, f32Bytes(lePut, 1, 2, nan, 4, 5, 6)),
			"y.npy", npyBytes("<i8", false, []int{6}, i64Bytes(0, 0, -1, 0, 0, 0))), "non-finite value NaN in sample 2"},
		{"bad label 4, data with a byte after its end", zipBytes(t, zip.Store,
			"x.npy", append(slices.Clone(full6), 0),
			"y.npy", npyBytes("<i8", false, []int{6}, i64Bytes(0, 0, 0, 0, -1, 0))), "label -1 at index 4 is negative"},
	} {
		path := writeFile(t, dir, "f", c.file)
		_, lerr := Load(path, Options{})
		if lerr == nil || !strings.Contains(lerr.Error(), c.want) {
			t.Errorf("%s: Load error %v; want one containing %q", c.name, lerr, c.want)
			continue
		}
		for bs := 1; bs <= 7; bs++ {
			s, err := Open(path, Options{})
			if err != nil {
				t.Fatalf("%s: Open: %v", c.name, err)
			}
			if _, _, err := streamAll(s, bs); err == nil || err.Error() != lerr.Error() {
				t.Errorf("%s: batches of %d: error %v; want Load's %q", c.name, bs, err, lerr)
			}
		}
	}
}

// TestStreamCancel checks that Next returns the context's error.
func TestStreamCancel(t *testing.T) {
	s, err := Open("testdata/calib.npy", Options{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.Batches()
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := b.Next(ctx, 4); !errors.Is(err, context.Canceled) {
		t.Errorf("Next with a cancelled context: %v; want context.Canceled", err)
	}
}
