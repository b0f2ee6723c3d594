package dataset

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"os"

	"mpsearch/tensor"
)

// ErrFormat is wrapped by every error about the content of a data or labels
// file: unknown or malformed format, unsupported element type, inconsistent
// sizes, non-finite values.
var ErrFormat = errors.New("dataset: bad data")

// ErrOption is wrapped by errors about Options that do not fit the data,
// such as a Mean with the wrong number of channels or a Resize of data that
// is not NCHW.
var ErrOption = errors.New("dataset: bad option")

// kindError is an error whose message stands alone but which matches a
// sentinel with errors.Is, so that messages stay one clean line.
type kindError struct {
	msg   string
	kind  error // ErrFormat or ErrOption
	cause error // optional underlying error, already part of msg
}

func (e *kindError) Error() string { return e.msg }

func (e *kindError) Unwrap() []error {
	if e.cause == nil {
		return []error{e.kind}
	}
	return []error{e.kind, e.cause}
}

// readErr reports a failed read of name's content: an early end of the
// input is a truncated file, anything else (a corrupt gzip or deflate
// stream, a checksum, a disk error) is reported with its own text and can
// still be matched with errors.Is.
func readErr(err error, name, what string) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return formatErr("dataset: %s: %s", name, what)
	}
	return &kindError{fmt.Sprintf("dataset: %s: %s: %v", name, what, err), ErrFormat, err}
}

// formatErr returns an error wrapping ErrFormat with a formatted message.
func formatErr(format string, args ...any) error {
	return &kindError{msg: fmt.Sprintf(format, args...), kind: ErrFormat}
}

// optionErr returns an error wrapping ErrOption with a formatted message.
func optionErr(format string, args ...any) error {
	return &kindError{msg: fmt.Sprintf(format, args...), kind: ErrOption}
}

// Dataset is a set of samples stacked along the first axis of X, with
// optional integer labels.
//
// Invariants: X.Shape[0] == Len() >= 1; Y is nil or len(Y) == Len() and
// every label is >= 0; every value of X is finite.
type Dataset struct {
	// X holds the samples, shape [N, ...]. Images are NCHW.
	X *tensor.Tensor
	// Y holds one class index per sample, or is nil when unlabelled.
	Y []int
	// Source is the path the samples were loaded from.
	Source string
	// Classes names the classes of an image folder (Y indexes it);
	// it is nil for other forms.
	Classes []string
}

// Len returns the number of samples.
func (d *Dataset) Len() int { return d.X.Shape[0] }

// SampleShape returns the shape of one sample (X.Shape without its first
// axis), as a new slice.
func (d *Dataset) SampleShape() []int { return append([]int(nil), d.X.Shape[1:]...) }

// sampleSize is the number of values of one sample.
func (d *Dataset) sampleSize() int { return tensor.Size(d.X.Shape[1:]) }

// NumBatches returns the number of batches of the given size needed to cover
// the dataset; the last one may be shorter.
func (d *Dataset) NumBatches(size int) int {
	if size <= 0 {
		panic(fmt.Sprintf("dataset: batch size %d", size))
	}
	return (d.Len() + size - 1) / size
}

// Batch returns batch number i (counting from 0) of the given size: samples
// [i*size, min((i+1)*size, Len())). The last batch is shorter when size does
// not divide Len(). The tensor and the labels are views sharing memory with
// d; the labels are nil when d is unlabelled. Batch panics if i is not in
// [0, NumBatches(size)).
func (d *Dataset) Batch(i, size int) (*tensor.Tensor, []int) {
	nb := d.NumBatches(size)
	if i < 0 || i >= nb {
		panic(fmt.Sprintf("dataset: batch %d of %d (size %d)", i, nb, size))
	}
	lo := i * size
	hi := min(lo+size, d.Len())
	return d.rows(lo, hi), d.labels(lo, hi)
}

// Subset returns samples [start, start+n) as a Dataset sharing memory with
// d. It panics if the range is empty or not inside [0, Len()).
func (d *Dataset) Subset(start, n int) *Dataset {
	if start < 0 || n <= 0 || start+n > d.Len() {
		panic(fmt.Sprintf("dataset: subset [%d, %d) of %d samples", start, start+n, d.Len()))
	}
	return &Dataset{
		X:       d.rows(start, start+n),
		Y:       d.labels(start, start+n),
		Source:  d.Source,
		Classes: d.Classes,
	}
}

func (d *Dataset) rows(lo, hi int) *tensor.Tensor {
	ss := d.sampleSize()
	shape := append([]int{hi - lo}, d.X.Shape[1:]...)
	return tensor.FromData(d.X.Data[lo*ss:hi*ss:hi*ss], shape...)
}

func (d *Dataset) labels(lo, hi int) []int {
	if d.Y == nil {
		return nil
	}
	return d.Y[lo:hi:hi]
}

// Options controls how Load reads and transforms data.
type Options struct {
	// Labels is the path of a labels file (NPY of integers, or IDX labels,
	// gzipped or not) for NPY, NPZ without "y", and IDX data; "" for none.
	Labels string
	// Mean and Std normalise every value as (x - mean) / std after the
	// scaling to [0, 1]. Each has one value per channel (axis 1 of X), one
	// value for all channels, or is empty (mean 0, std 1).
	Mean, Std []float64
	// Resize is the output [H, W] of a bilinear resize of NCHW data, done
	// per image; zero keeps the size (images of a folder must then all
	// have the same size).
	Resize [2]int
	// Gray forces one channel: RGB images become luminance
	// 0.299 R + 0.587 G + 0.114 B.
	Gray bool
	// Limit keeps only the first Limit samples (in file order; for a folder,
	// class by class in sorted order); 0 keeps all.
	Limit int
}

// form is a detected data format.
type form int

const (
	formUnknown form = iota
	formNPY
	formNPZ
	formIDX
	formIDXGzip
)

var (
	npyMagic  = []byte("\x93NUMPY")
	zipMagic  = []byte("PK\x03\x04")
	zipEmpty  = []byte("PK\x05\x06")
	gzipMagic = []byte{0x1f, 0x8b}
)

// sniff detects the format from the first bytes of a file.
func sniff(head []byte) form {
	switch {
	case bytes.HasPrefix(head, npyMagic):
		return formNPY
	case bytes.HasPrefix(head, zipMagic), bytes.HasPrefix(head, zipEmpty):
		return formNPZ
	case bytes.HasPrefix(head, gzipMagic):
		return formIDXGzip
	case len(head) >= 4 && head[0] == 0 && head[1] == 0:
		return formIDX
	}
	return formUnknown
}

// sniffFile detects the format of an open file from its first bytes and
// rewinds it.
func sniffFile(f *os.File, path string) (form, error) {
	head := make([]byte, 8)
	n, err := io.ReadFull(f, head)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return formUnknown, fmt.Errorf("dataset: %s: %w", path, err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return formUnknown, fmt.Errorf("dataset: %s: %w", path, err)
	}
	return sniff(head[:n]), nil
}

// Load reads a dataset from path, detecting its form from the content (not
// the name): an NPY file, an NPZ archive with arrays "x" and optionally "y",
// an IDX file (MNIST family, gzipped or not), or a folder of class
// sub-folders of PNG/JPEG images. Then, in order, it keeps the first
// opt.Limit samples, converts to one channel if opt.Gray, resizes if
// opt.Resize is set, and normalises with opt.Mean and opt.Std.
//
// Errors wrap ErrFormat for bad content, ErrOption for options that do not
// fit the data, and the os errors (such as fs.ErrNotExist) for files that
// cannot be opened.
func Load(path string, opt Options) (*Dataset, error) {
	if err := checkOptions(opt); err != nil {
		return nil, err
	}
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("dataset: %w", err)
	}
	var d *Dataset
	if st.IsDir() {
		if opt.Labels != "" {
			return nil, optionErr("dataset: %s is an image folder, whose labels come from its sub-folders; drop the labels file %s", path, opt.Labels)
		}
		d, err = loadFolder(path, opt)
	} else {
		d, err = loadFile(path, opt)
	}
	if err != nil {
		return nil, err
	}
	d.Source = path
	if err := transform(d, path, opt); err != nil {
		return nil, err
	}
	return d, nil
}

func checkOptions(opt Options) error {
	if opt.Limit < 0 {
		return optionErr("dataset: limit %d is negative; use 0 for all samples", opt.Limit)
	}
	if h, w := opt.Resize[0], opt.Resize[1]; h < 0 || w < 0 || (h == 0) != (w == 0) {
		return optionErr("dataset: resize %dx%d needs both sizes positive, or both 0 to keep the size", h, w)
	}
	for i, m := range opt.Mean {
		if math.IsNaN(m) || math.IsInf(m, 0) {
			return optionErr("dataset: mean[%d] = %v is not finite", i, m)
		}
	}
	for i, s := range opt.Std {
		if !(s > 0) || math.IsInf(s, 0) {
			return optionErr("dataset: std[%d] = %v must be positive and finite", i, s)
		}
	}
	return nil
}

// loadFile reads a single data file and, if given, its labels file.
func loadFile(path string, opt Options) (*Dataset, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("dataset: %w", err)
	}
	defer f.Close()
	kind, err := sniffFile(f, path)
	if err != nil {
		return nil, err
	}

	var (
		x     *tensor.Tensor
		fullN int
		y     []int
	)
	switch kind {
	case formNPY:
		a, err := readNPY(f, path, opt.Limit)
		if err != nil {
			return nil, err
		}
		if x, err = a.samples(path); err != nil {
			return nil, err
		}
		fullN = a.shape[0]
	case formNPZ:
		if x, y, fullN, err = readNPZ(path, opt.Limit); err != nil {
			return nil, err
		}
		if y != nil && opt.Labels != "" {
			return nil, optionErr("dataset: %s already holds labels \"y\"; drop the labels file %s", path, opt.Labels)
		}
	case formIDX, formIDXGzip:
		if x, fullN, err = readIDXImages(f, path, opt.Limit); err != nil {
			return nil, err
		}
	default:
		return nil, formatErr("dataset: %s is not NPY, NPZ, IDX (gzipped or not) or a folder of images", path)
	}
	if opt.Labels != "" {
		labels, err := loadLabels(opt.Labels)
		if err != nil {
			return nil, err
		}
		if len(labels) != fullN {
			return nil, formatErr("dataset: labels file %s has %d labels but %s has %d samples", opt.Labels, len(labels), path, fullN)
		}
		y = labels[:x.Shape[0]:x.Shape[0]]
	}
	return &Dataset{X: x, Y: y}, nil
}

// loadLabels reads a labels file: an NPY array of integers of shape [N], or
// an IDX labels file (gzipped or not).
func loadLabels(path string) ([]int, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("dataset: labels: %w", err)
	}
	defer f.Close()
	kind, err := sniffFile(f, path)
	if err != nil {
		return nil, err
	}
	switch kind {
	case formNPY:
		a, err := readNPY(f, path, 0)
		if err != nil {
			return nil, err
		}
		return a.labels(path)
	case formIDX, formIDXGzip:
		return readIDXLabels(f, path)
	}
	return nil, formatErr("dataset: labels file %s is neither NPY nor IDX (gzipped or not)", path)
}

// transform applies Gray, Resize and normalisation, then checks that every
// value is finite.
func transform(d *Dataset, path string, opt Options) error {
	if opt.Gray {
		x, err := toGray(d.X)
		if err != nil {
			return fmt.Errorf("dataset: %s: %w", path, err)
		}
		d.X = x
	}
	if opt.Resize != [2]int{} {
		if d.X.Rank() != 4 {
			return optionErr("dataset: %s: resize needs images [N,C,H,W]; got samples of shape %v", path, d.SampleShape())
		}
		if d.X.Shape[2] != opt.Resize[0] || d.X.Shape[3] != opt.Resize[1] {
			d.X = resizeBilinear(d.X, opt.Resize[0], opt.Resize[1])
		}
	}
	if err := normalize(d.X, opt.Mean, opt.Std); err != nil {
		return fmt.Errorf("dataset: %s: %w", path, err)
	}
	return checkFinite(d.X, path)
}

// channels returns the number of channels of x (its axis 1, or 1 for rank 1)
// and the number of values per channel of one sample.
func channels(x *tensor.Tensor) (c, inner int) {
	if x.Rank() < 2 {
		return 1, 1
	}
	return x.Shape[1], tensor.Size(x.Shape[2:])
}

// normalize sets x = (x - mean[c]) / std[c] in place.
func normalize(x *tensor.Tensor, mean, std []float64) error {
	if len(mean) == 0 && len(std) == 0 {
		return nil
	}
	c, inner := channels(x)
	m, err := perChannel("mean", mean, c, 0)
	if err != nil {
		return err
	}
	s, err := perChannel("std", std, c, 1)
	if err != nil {
		return err
	}
	data := x.Data
	for off := 0; off < len(data); off += c * inner {
		for ch := 0; ch < c; ch++ {
			v := data[off+ch*inner : off+(ch+1)*inner]
			for i := range v {
				v[i] = (v[i] - m[ch]) / s[ch]
			}
		}
	}
	return nil
}

func perChannel(name string, v []float64, c int, def float64) ([]float64, error) {
	out := make([]float64, c)
	switch len(v) {
	case 0:
		for i := range out {
			out[i] = def
		}
	case 1:
		for i := range out {
			out[i] = v[0]
		}
	case c:
		copy(out, v)
	default:
		return nil, optionErr("%s has %d values but the data has %d channels; give 1 or %d values", name, len(v), c, c)
	}
	return out, nil
}

func checkFinite(x *tensor.Tensor, path string) error {
	ss := tensor.Size(x.Shape[1:])
	for i, v := range x.Data {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return formatErr("dataset: %s: non-finite value %v in sample %d (flat index %d)", path, v, i/ss, i)
		}
	}
	return nil
}
