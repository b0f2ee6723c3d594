package dataset

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strings"

	"codeberg.org/sbinet/npyio/npz"

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
// opt.Resize is set, and normalises with opt.Mean and opt.Std. It is one
// pass of one batch over Open's Stream.
//
// Errors wrap ErrFormat for bad content, ErrOption for options that do not
// fit the data, and the os errors (such as fs.ErrNotExist) for files that
// cannot be opened.
func Load(path string, opt Options) (*Dataset, error) {
	s, err := Open(path, opt)
	if err != nil {
		return nil, err
	}
	return readAll(s)
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

// fileParts opens one pass over a single data file and, if given, its
// labels file: the headers are read and checked, the bodies are left to
// the readers.
func fileParts(path string, opt Options) (*parts, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("dataset: %w", err)
	}
	p := &parts{closers: []io.Closer{f}}
	if err := p.openFile(f, path, opt); err != nil {
		p.close()
		return nil, err
	}
	return p, nil
}

// openFile fills p from the open data file f.
func (p *parts) openFile(f *os.File, path string, opt Options) error {
	kind, err := sniffFile(f, path)
	if err != nil {
		return err
	}
	var fullN int
	switch kind {
	case formNPY:
		h, rec, err := npyRecords(f, path, opt.Limit)
		if err != nil {
			return err
		}
		if err := h.checkSamples(path); err != nil {
			return err
		}
		if rec.r == io.Reader(f) {
			rec.seeker = f // C order: the rest is checked by the file's size
		}
		p.rows, p.n, p.stored, fullN = npyRows(h, rec), rec.keep, h.shape[1:], h.shape[0]
	case formNPZ:
		zr, err := npz.Open(path)
		if err != nil {
			return formatErr("dataset: %s is not a valid NPZ (zip) archive: %v", path, err)
		}
		p.closers = append(p.closers, zr)
		if fullN, err = npzParts(p, zr, path, opt); err != nil {
			return err
		}
	case formIDX, formIDXGzip:
		dims, rec, err := idxImageRecords(f, path, opt.Limit)
		if err != nil {
			return err
		}
		p.rows = &byteRows{rec: rec, decode: decodeBytes, elems: dims[1] * dims[2]}
		p.n, p.stored, fullN = rec.keep, []int{1, dims[1], dims[2]}, dims[0]
	default:
		return formatErr("dataset: %s is not NPY, NPZ, IDX (gzipped or not) or a folder of images", path)
	}
	if opt.Labels != "" {
		if err := labelsFile(p, opt.Labels, path, fullN); err != nil {
			return err
		}
	}
	return nil
}

// npyRows decodes the rows of an NPY array of samples.
func npyRows(h *npyHead, rec *records) *byteRows {
	return &byteRows{rec: rec, decode: h.decodeSamples, elems: tensor.Size(h.shape[1:])}
}

// npzParts opens arrays "x" (required) and "y" (optional) of an open NPZ
// archive named path into p, and returns the number of samples in the
// file, before the limit. A stored member is read in place, a deflated
// one decompressed as it is read.
func npzParts(p *parts, zr *npz.Reader, path string, opt Options) (fullN int, err error) {
	keys := zr.Keys()
	find := func(name string) string {
		for _, k := range keys {
			if k == name+".npy" || k == name {
				return k
			}
		}
		return ""
	}
	member := func(key string) (*npyHead, *records, error) {
		rc, err := zr.Open(key)
		if err != nil {
			return nil, nil, formatErr("dataset: %s: %v", path, err)
		}
		p.closers = append(p.closers, rc)
		return npyRecords(rc, path+"["+key+"]", opt.Limit)
	}
	xk := find("x")
	if xk == "" {
		return 0, formatErr("dataset: %s has no array \"x\" (arrays: %s); save with np.savez(path, x=..., y=...)", path, strings.Join(keys, ", "))
	}
	xh, xrec, err := member(xk)
	if err != nil {
		return 0, err
	}
	if err := xh.checkSamples(path + "[" + xk + "]"); err != nil {
		return 0, err
	}
	p.rows, p.n, p.stored, fullN = npyRows(xh, xrec), xrec.keep, xh.shape[1:], xh.shape[0]
	yk := find("y")
	if yk == "" {
		return fullN, nil
	}
	yh, yrec, err := member(yk)
	if err != nil {
		return 0, err
	}
	if yh.shape[0] != fullN {
		return 0, formatErr("dataset: %s: %d labels in \"y\" but %d samples in \"x\"", path, yh.shape[0], fullN)
	}
	name := path + "[" + yk + "]"
	if err := yh.checkLabels(name); err != nil {
		return 0, err
	}
	if opt.Labels != "" {
		return 0, optionErr("dataset: %s already holds labels \"y\"; drop the labels file %s", path, opt.Labels)
	}
	p.labels = npyLabels(yh, yrec, name, p.n)
	return fullN, nil
}

// npyLabels decodes the first n labels of an NPY array, and checks the rest
// when its records keep them.
func npyLabels(h *npyHead, rec *records, name string, n int) *recordLabels {
	return &recordLabels{rec: rec, n: n, decode: func(dst []int, raw []byte, first int) (int, error) {
		return h.decodeLabels(dst, raw, first, name)
	}}
}

// labelsFile opens a labels file into p: an NPY array of integers of shape
// [N], or an IDX labels file (gzipped or not); N must be fullN, the
// samples of the data file at path. Every label is read and checked, the
// first p.n delivered.
func labelsFile(p *parts, labels, path string, fullN int) error {
	f, err := os.Open(labels)
	if err != nil {
		return fmt.Errorf("dataset: labels: %w", err)
	}
	p.closers = append(p.closers, f)
	kind, err := sniffFile(f, labels)
	if err != nil {
		return err
	}
	var rec *records
	var decode func(dst []int, raw []byte, first int) (int, error)
	switch kind {
	case formNPY:
		h, r, err := npyRecords(f, labels, 0)
		if err != nil {
			return err
		}
		if err := h.checkLabels(labels); err != nil {
			return err
		}
		rec = r
		decode = npyLabels(h, r, labels, p.n).decode
	case formIDX, formIDXGzip:
		if rec, err = idxLabelRecords(f, labels); err != nil {
			return err
		}
		decode = func(dst []int, raw []byte, _ int) (int, error) {
			for i, b := range raw {
				dst[i] = int(b)
			}
			return len(dst), nil
		}
	default:
		return formatErr("dataset: labels file %s is neither NPY nor IDX (gzipped or not)", labels)
	}
	if rec.rows != fullN {
		return formatErr("dataset: labels file %s has %d labels but %s has %d samples", labels, rec.rows, path, fullN)
	}
	p.labels = &recordLabels{rec: rec, decode: decode, n: p.n}
	return nil
}

// channels returns the number of channels of x (its axis 1, or 1 for rank 1)
// and the number of values per channel of one sample.
func channels(x *tensor.Tensor) (c, inner int) {
	if x.Rank() < 2 {
		return 1, 1
	}
	return x.Shape[1], tensor.Size(x.Shape[2:])
}

// normalize sets x = (x - mean[c]) / std[c] in place, with one mean and
// one std per channel (from perChannel).
func normalize(x *tensor.Tensor, m, s []float64) {
	c, inner := channels(x)
	data := x.Data
	for off := 0; off < len(data); off += c * inner {
		for ch := 0; ch < c; ch++ {
			v := data[off+ch*inner : off+(ch+1)*inner]
			for i := range v {
				v[i] = (v[i] - m[ch]) / s[ch]
			}
		}
	}
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

// nonFinite returns the first non-finite value of the batch x, its
// sample and its flat index in x; sample -1 when every value is finite.
func nonFinite(x *tensor.Tensor) (sample int, v float64, flat int) {
	ss := tensor.Size(x.Shape[1:])
	for i, v := range x.Data {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return i / ss, v, i
		}
	}
	return -1, 0, 0
}
