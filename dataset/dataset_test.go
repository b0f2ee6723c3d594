package dataset

import (
	"errors"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"codeberg.org/sbinet/npyio/npy"
	"codeberg.org/sbinet/npyio/npz"

	"mpsearch/tensor"

	"mpsearch/internal/citest"
)

const fmnistDir = "/usr/share/datasets/fashion-mnist"

func fmnist(t *testing.T, name string) string {
	t.Helper()
	p := filepath.Join(fmnistDir, name)
	if _, err := os.Stat(p); err != nil {
		citest.Missing(t, "Fashion-MNIST not installed (apt-get install dataset-fashion-mnist, or scripts/setup.sh --test): %v", err)
	}
	return p
}

// TestFashionMNISTTest checks the IDX reader on the real Fashion-MNIST test
// set against values computed by /usr/bin/python3 with gzip and numpy:
//
//	x = np.frombuffer(gzip.open(images).read(), np.uint8, offset=16).reshape(-1, 28, 28)
//	y = np.frombuffer(gzip.open(labels).read(), np.uint8, offset=8)
//	y[:10], x[0].sum(), x[9999].sum(), x.astype(np.int64).sum(), x[0,14,14], ...
func TestFashionMNISTTest(t *testing.T) {
	images := fmnist(t, "t10k-images-idx3-ubyte.gz")
	labels := fmnist(t, "t10k-labels-idx1-ubyte.gz")
	d, err := Load(images, Options{Labels: labels})
	if err != nil {
		t.Fatal(err)
	}
	if got := d.Len(); got != 10000 {
		t.Fatalf("Len() = %d; want 10000", got)
	}
	if got, want := d.SampleShape(), []int{1, 28, 28}; !equalInts(got, want) {
		t.Fatalf("SampleShape() = %v; want %v", got, want)
	}
	if got, want := d.Y[:10], []int{9, 2, 1, 1, 6, 1, 4, 6, 5, 7}; !equalInts(got, want) {
		t.Errorf("first labels = %v; want %v", got, want)
	}
	counts := make([]int, 10)
	for _, y := range d.Y {
		counts[y]++
	}
	for c, n := range counts {
		if n != 1000 {
			t.Errorf("class %d has %d test images; want 1000", c, n)
		}
	}
	// Pixel byte sums: every value is byte/255, so value*255 rounds back to
	// the byte exactly.
	byteSum := func(v []float64) int {
		s := 0
		for _, x := range v {
			s += int(math.Round(x * 255))
		}
		return s
	}
	const img = 28 * 28
	for _, c := range []struct {
		name string
		got  int
		want int
	}{
		{"sum of image 0", byteSum(d.X.Data[:img]), 33456},
		{"sum of image 9999", byteSum(d.X.Data[9999*img:]), 24390},
		{"sum of all images", byteSum(d.X.Data), 573469082},
	} {
		if c.got != c.want {
			t.Errorf("%s = %d; want %d", c.name, c.got, c.want)
		}
	}
	for _, p := range []struct{ n, r, c, want int }{
		{0, 14, 14, 110}, {0, 10, 20, 157}, {0, 7, 19, 3}, {0, 7, 25, 37}, {0, 0, 0, 0},
	} {
		got := d.X.Data[p.n*img+p.r*28+p.c]
		if got != float64(p.want)/255 {
			t.Errorf("x[%d,0,%d,%d] = %v; want %d/255", p.n, p.r, p.c, got, p.want)
		}
	}
	if d.Classes != nil {
		t.Errorf("Classes = %v; want nil for IDX data", d.Classes)
	}
}

// calibTol bounds |float64 normalisation - float32 normalisation| for
// values in [-0.81, 2.03]: float32 rounding of pixel/255, of the difference
// and of the quotient is about 3 ulp of 2 = 3 * 2.4e-7 at most.
const calibTol = 1e-6

// TestCalibFixture loads the first 256 training images from IDX with the
// fixture's normalisation and compares them with calib.npy, written by
// PyTorch in float32 (README of /work/shared/fixtures/fmnist-lenet).
func TestCalibFixture(t *testing.T) {
	images := fmnist(t, "train-images-idx3-ubyte.gz")
	labels := fmnist(t, "train-labels-idx1-ubyte.gz")
	d, err := Load(images, Options{Labels: labels, Limit: 256, Mean: []float64{0.2860}, Std: []float64{0.3530}})
	if err != nil {
		t.Fatal(err)
	}
	ref, err := Load("testdata/calib.npy", Options{Labels: "testdata/calib_labels.npy"})
	if err != nil {
		t.Fatal(err)
	}
	if !tensor.SameShape(d.X.Shape, ref.X.Shape) {
		t.Fatalf("shape %v; want %v", d.X.Shape, ref.X.Shape)
	}
	if got := maxAbsDiff(d.X.Data, ref.X.Data); got > calibTol {
		t.Errorf("max |IDX normalised - calib.npy| = %g; want <= %g", got, calibTol)
	}
	if !equalInts(d.Y, ref.Y) {
		t.Errorf("labels of the first 256 training images differ from calib_labels.npy")
	}
}

// TestCalibNPYMatchesNpyio checks the NPY parser against npyio's reader on
// the fixture file written by NumPy.
func TestCalibNPYMatchesNpyio(t *testing.T) {
	f, err := os.Open("testdata/calib.npy")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := npy.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	var want []float32
	if err := r.Read(&want); err != nil {
		t.Fatal(err)
	}
	d, err := Load("testdata/calib.npy", Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got, wantShape := d.X.Shape, r.Header.Descr.Shape; !equalInts(got, wantShape) {
		t.Fatalf("shape %v; want %v", got, wantShape)
	}
	for i, w := range want {
		if d.X.Data[i] != float64(w) {
			t.Fatalf("x[%d] = %v; want %v", i, d.X.Data[i], w)
		}
	}
}

func TestBatchAndSubset(t *testing.T) {
	const n = 10
	x := tensor.New(n, 2)
	y := make([]int, n)
	for i := range n {
		x.Data[2*i], x.Data[2*i+1] = float64(i), float64(-i)
		y[i] = i % 3
	}
	d := &Dataset{X: x, Y: y}
	for _, c := range []struct {
		size  int
		sizes []int
	}{
		{3, []int{3, 3, 3, 1}},
		{5, []int{5, 5}},
		{10, []int{10}},
		{64, []int{10}},
		{1, []int{1, 1, 1, 1, 1, 1, 1, 1, 1, 1}},
	} {
		if got := d.NumBatches(c.size); got != len(c.sizes) {
			t.Errorf("NumBatches(%d) = %d; want %d", c.size, got, len(c.sizes))
			continue
		}
		start := 0
		for i, want := range c.sizes {
			bx, by := d.Batch(i, c.size)
			if !equalInts(bx.Shape, []int{want, 2}) || len(by) != want {
				t.Errorf("Batch(%d, %d): shape %v, %d labels; want [%d 2], %d", i, c.size, bx.Shape, len(by), want, want)
				continue
			}
			for k := range want {
				if bx.Data[2*k] != float64(start+k) || by[k] != (start+k)%3 {
					t.Errorf("Batch(%d, %d) sample %d = (%v, %d); want sample %d", i, c.size, k, bx.Data[2*k], by[k], start+k)
				}
			}
			start += want
		}
	}

	// Views share memory, and appending to a batch cannot clobber the next.
	bx, by := d.Batch(1, 4)
	bx.Data[0] = 100
	if x.Data[8] != 100 {
		t.Errorf("Batch is not a view: x[4] = %v after setting the batch's first value to 100", x.Data[8])
	}
	_ = append(by, 99)
	if y[8] != 8%3 {
		t.Errorf("appending to a batch's labels changed the next label to %d", y[8])
	}

	s := d.Subset(7, 3)
	if s.Len() != 3 || s.X.Data[0] != 7 || s.Y[2] != 9%3 || s.Source != d.Source {
		t.Errorf("Subset(7, 3) = %v %v; want samples 7..9", s.X.Data, s.Y)
	}
	s.X.Data[1] = 42
	if x.Data[15] != 42 {
		t.Errorf("Subset is not a view")
	}
	if got := d.SampleShape(); !equalInts(got, []int{2}) {
		t.Errorf("SampleShape() = %v; want [2]", got)
	}

	unl := &Dataset{X: x}
	if _, by := unl.Batch(0, 4); by != nil {
		t.Errorf("Batch of unlabelled data gave labels %v; want nil", by)
	}

	for _, bad := range []func(){
		func() { d.Batch(4, 3) },
		func() { d.Batch(-1, 3) },
		func() { d.Batch(0, 0) },
		func() { d.Subset(8, 3) },
		func() { d.Subset(0, 0) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("out-of-range Batch/Subset did not panic")
				}
			}()
			bad()
		}()
	}
}

func TestNormalize(t *testing.T) {
	dir := t.TempDir()
	// [2,3,1,2] float64 with x[n,c,0,w] = 10n + c + w/10.
	var v []float64
	for n := range 2 {
		for c := range 3 {
			for w := range 2 {
				v = append(v, float64(10*n+c)+float64(w)/10)
			}
		}
	}
	p := writeFile(t, dir, "x.npy", npyBytes("<f8", false, []int{2, 3, 1, 2}, f64Bytes(lePut, v...)))
	for _, c := range []struct {
		name      string
		mean, std []float64
		want      func(n, c, w int) float64
	}{
		{"none", nil, nil, func(n, c, w int) float64 { return float64(10*n+c) + float64(w)/10 }},
		{"one value", []float64{1}, []float64{2}, func(n, c, w int) float64 { return (float64(10*n+c) + float64(w)/10 - 1) / 2 }},
		{"per channel", []float64{0, 1, 2}, []float64{1, 2, 4}, func(n, c, w int) float64 {
			return (float64(10*n+c) + float64(w)/10 - float64(c)) / []float64{1, 2, 4}[c]
		}},
		{"std only", nil, []float64{4}, func(n, c, w int) float64 { return (float64(10*n+c) + float64(w)/10) / 4 }},
	} {
		d, err := Load(p, Options{Mean: c.mean, Std: c.std})
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		i := 0
		for n := range 2 {
			for ch := range 3 {
				for w := range 2 {
					if got, want := d.X.Data[i], c.want(n, ch, w); got != want {
						t.Errorf("%s: x[%d,%d,0,%d] = %v; want %v", c.name, n, ch, w, got, want)
					}
					i++
				}
			}
		}
	}
}

// TestLoadErrors checks that bad inputs give one-line errors naming the file
// and wrapping the right sentinel.
func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	x4 := writeFile(t, dir, "x4.npy", npyBytes("<f4", false, []int{4, 2}, f32Bytes(lePut, 1, 2, 3, 4, 5, 6, 7, 8)))
	y3 := writeFile(t, dir, "y3.npy", npyBytes("<i8", false, []int{3}, i64Bytes(0, 1, 2)))
	yneg := writeFile(t, dir, "yneg.npy", npyBytes("<i8", false, []int{4}, i64Bytes(0, 1, -1, 2)))
	yflt := writeFile(t, dir, "yflt.npy", npyBytes("<f4", false, []int{4}, f32Bytes(lePut, 0, 1, 2, 3)))
	nan := writeFile(t, dir, "nan.npy", npyBytes("<f4", false, []int{2, 2}, f32Bytes(lePut, 1, float32(math.NaN()), 3, 4)))
	inf := writeFile(t, dir, "inf.npy", npyBytes("<f8", false, []int{2}, f64Bytes(lePut, 1, math.Inf(-1))))
	str := writeFile(t, dir, "str.npy", npyBytes("<U3", false, []int{2}, make([]byte, 24)))
	cplx := writeFile(t, dir, "cplx.npy", npyBytes("<c16", false, []int{2}, make([]byte, 32)))
	i64x := writeFile(t, dir, "i64x.npy", npyBytes("<i8", false, []int{2}, i64Bytes(1, 2)))
	short := writeFile(t, dir, "short.npy", npyBytes("<f4", false, []int{4, 2}, f32Bytes(lePut, 1, 2, 3)))
	long := writeFile(t, dir, "long.npy", append(npyBytes("<f4", false, []int{1}, f32Bytes(lePut, 1)), 0))
	empty0 := writeFile(t, dir, "empty0.npy", npyBytes("<f4", false, []int{0, 3}, nil))
	emptyRows := writeFile(t, dir, "emptyrows.npy", npyBytes("<f4", false, []int{3, 0}, nil))
	scalar := writeFile(t, dir, "scalar.npy", npyBytes("<f4", false, []int{}, f32Bytes(lePut, 1)))
	text := writeFile(t, dir, "notes.npy", []byte("hello, world\n"))
	idxImg := writeFile(t, dir, "img-idx3-ubyte", idxBytes([]int{4, 2, 2}, seq(16)))
	idxLab3 := writeFile(t, dir, "lab-idx1-ubyte.gz", gzipBytes(idxBytes([]int{3}, []byte{0, 1, 2})))
	idxCode := writeFile(t, dir, "code-idx3-ubyte", append([]byte{0, 0, 0x0d, 3, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1}, 0, 0, 0, 0))
	emptyDir := filepath.Join(dir, "emptyfolder")
	os.Mkdir(emptyDir, 0o755)
	emptyClass := filepath.Join(dir, "emptyclass")
	os.MkdirAll(filepath.Join(emptyClass, "a"), 0o755)
	writeFile(t, emptyClass, "a/readme.txt", []byte("not an image"))
	missing := filepath.Join(dir, "missing.npy")

	for _, c := range []struct {
		name  string
		path  string
		opt   Options
		want  error
		names string // must appear in the message
	}{
		{"missing file", missing, Options{}, fs.ErrNotExist, "missing.npy"},
		{"missing labels", x4, Options{Labels: missing}, fs.ErrNotExist, "missing.npy"},
		{"unknown format", text, Options{}, ErrFormat, "notes.npy"},
		{"labels count", x4, Options{Labels: y3}, ErrFormat, "y3.npy"},
		{"negative label", x4, Options{Labels: yneg}, ErrFormat, "yneg.npy"},
		{"float labels", x4, Options{Labels: yflt}, ErrFormat, "yflt.npy"},
		{"labels are data", x4, Options{Labels: x4}, ErrFormat, "x4.npy"},
		{"NaN", nan, Options{}, ErrFormat, "nan.npy"},
		{"Inf", inf, Options{}, ErrFormat, "inf.npy"},
		{"strings", str, Options{}, ErrFormat, "str.npy"},
		{"complex", cplx, Options{}, ErrFormat, "cplx.npy"},
		{"int64 samples", i64x, Options{}, ErrFormat, "i64x.npy"},
		{"truncated NPY", short, Options{}, ErrFormat, "short.npy"},
		{"truncated NPY with limit", short, Options{Limit: 1}, ErrFormat, "short.npy"},
		{"trailing NPY", long, Options{}, ErrFormat, "long.npy"},
		{"no samples", empty0, Options{}, ErrFormat, "empty0.npy"},
		{"empty samples", emptyRows, Options{}, ErrFormat, "emptyrows.npy"},
		{"scalar", scalar, Options{}, ErrFormat, "scalar.npy"},
		{"IDX labels count", idxImg, Options{Labels: idxLab3}, ErrFormat, "lab-idx1-ubyte.gz"},
		{"IDX labels as data", idxLab3, Options{}, ErrFormat, "lab-idx1-ubyte.gz"},
		{"IDX float code", idxCode, Options{}, ErrFormat, "code-idx3-ubyte"},
		{"empty folder", emptyDir, Options{}, ErrFormat, "emptyfolder"},
		{"empty class", emptyClass, Options{}, ErrFormat, "emptyclass"},
		{"labels with folder", emptyDir, Options{Labels: y3}, ErrOption, "emptyfolder"},
		{"mean channels", x4, Options{Mean: []float64{1, 2, 3}}, ErrOption, "x4.npy"},
		{"zero std", x4, Options{Std: []float64{0}}, ErrOption, "std"},
		{"NaN mean", x4, Options{Mean: []float64{math.NaN()}}, ErrOption, "mean"},
		{"negative limit", x4, Options{Limit: -1}, ErrOption, "limit"},
		{"half resize", idxImg, Options{Resize: [2]int{4, 0}}, ErrOption, "resize"},
		{"resize 2-D", x4, Options{Resize: [2]int{4, 4}}, ErrOption, "x4.npy"},
		{"gray 2-D", x4, Options{Gray: true}, ErrOption, "x4.npy"},
	} {
		d, err := Load(c.path, c.opt)
		if err == nil {
			t.Errorf("%s: Load succeeded with X %v; want an error", c.name, d.X.Shape)
			continue
		}
		if !errors.Is(err, c.want) {
			t.Errorf("%s: error %q does not wrap %v", c.name, err, c.want)
		}
		msg := err.Error()
		if !strings.Contains(msg, c.names) || strings.Contains(msg, "\n") {
			t.Errorf("%s: error %q; want one line naming %q", c.name, msg, c.names)
		}
	}
}

// BenchmarkLoadFashionMNISTTest measures loading the 10000 gzipped test
// images with their labels and normalising them.
func BenchmarkLoadFashionMNISTTest(b *testing.B) {
	images := filepath.Join(fmnistDir, "t10k-images-idx3-ubyte.gz")
	labels := filepath.Join(fmnistDir, "t10k-labels-idx1-ubyte.gz")
	if _, err := os.Stat(images); err != nil {
		b.Skip(err)
	}
	for b.Loop() {
		if _, err := Load(images, Options{Labels: labels, Mean: []float64{0.2860}, Std: []float64{0.3530}}); err != nil {
			b.Fatal(err)
		}
	}
}

func TestFromNPZBytesMatchesLoad(t *testing.T) {
	path := filepath.Join(t.TempDir(), "d.npz")
	if err := npz.Write(path, map[string]any{"x": []float32{0, 0.5, 1, 0.25}, "y": []int64{1, 0, 2, 1}}); err != nil {
		t.Fatal(err)
	}
	opt := Options{Mean: []float64{0.5}, Std: []float64{0.25}, Limit: 3}
	want, err := Load(path, opt)
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	got, err := FromNPZBytes(data, "embedded", opt)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got.X, want.X) || !reflect.DeepEqual(got.Y, want.Y) {
		t.Errorf("FromNPZBytes: got %v %v; want %v %v (as Load)", got.X.Data, got.Y, want.X.Data, want.Y)
	}
	if _, err := FromNPZBytes([]byte("not a zip"), "embedded", Options{}); !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), "embedded") {
		t.Errorf("bad bytes: got %v; want an ErrFormat naming the archive", err)
	}
}
