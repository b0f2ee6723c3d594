package dataset

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"

	"mpsearch/tensor"
)

// Source is a data set that can be read in order, in mini-batches: a
// loaded *Dataset or a *Stream. Consumers that only go through the samples
// once per pass (evaluation, mpsearch run) take a Source, so that they hold
// one batch at a time when given a Stream.
type Source interface {
	// Len is the number of samples.
	Len() int
	// SampleShape is the shape of one sample, as a new slice.
	SampleShape() []int
	// Labeled tells whether the batches carry labels.
	Labeled() bool
	// Name names the data in messages (the path it was read from).
	Name() string
	// Batches starts a pass over the samples from the first.
	Batches() (Batches, error)
}

// Batches reads the samples of a Source in order.
type Batches interface {
	// Next returns the next min(max, left) samples and their labels (nil
	// when unlabelled), or io.EOF when every sample was returned. The
	// tensor and labels may be views of memory the next call reuses or a
	// Dataset shares; callers must not modify them.
	Next(ctx context.Context, max int) (*tensor.Tensor, []int, error)
	// Close releases the files of the pass.
	Close() error
}

// Stream is a data set opened for reading in mini-batches without holding
// it whole: NPY files are read row batch by row batch, NPZ members (stored
// or deflated) and IDX files (gzipped or not) sequentially, image folders
// one file per sample, decoded only when their batch is read. What it
// keeps is small: the shapes, the options and, for a folder, the list of
// files and labels. Each batch gets the transforms of Load (Gray, Resize,
// normalisation) and the finiteness check, so the samples of a pass are
// bit for bit those of Load with the same Options; Load is a single pass
// of one batch.
//
// Errors in the header of a file (and the options that do not fit the
// data) are reported by Open; errors in the body (truncation, bytes after
// the end, a non-finite value, a bad label, an unreadable image) by the
// Next that reaches them. The end of a file is checked before the last
// batch is returned. A Stream is not safe for concurrent use, but its
// passes are independent.
type Stream struct {
	name      string
	n         int
	stored    []int // one sample as the files hold it, before Gray and Resize
	shape     []int // one sample as delivered
	gray      bool
	resize    bool
	mean, std []float64 // per channel; nil without normalisation
	labeled   bool
	classes   []string
	open      func() (*parts, error)
}

// parts are the open readers of one pass over a Stream.
type parts struct {
	rows    rowSource
	labels  labelSource // nil without labels
	n       int         // samples delivered (after Limit)
	stored  []int
	closers []io.Closer
}

func (p *parts) close() error {
	var err error
	for i := len(p.closers) - 1; i >= 0; i-- {
		if e := p.closers[i].Close(); e != nil && err == nil {
			err = e
		}
	}
	p.closers = nil
	return err
}

// rowSource delivers the samples of a file as stored, in order.
type rowSource interface {
	// next decodes the next k samples. It allocates their values only
	// once their bytes were read, so that a header claiming huge samples
	// cannot make it allocate much more than the input holds. On an error
	// it returns the good samples before the defect, good of them: the
	// defect is at sample good of the k (k when it is the end of the file).
	next(ctx context.Context, k int) (data []float64, good int, err error)
}

// labelSource delivers the labels of a file, in order.
type labelSource interface {
	// next fills dst; on an error, good says at which of them the defect
	// is (len(dst) for one after them).
	next(dst []int) (good int, err error)
}

// Open opens the data at path for reading in mini-batches, detecting its
// form from the content as Load does, and applying opt as Load does. It
// reads the headers (and lists a folder, reading the size of each image)
// and checks the options against them; no file stays open.
func Open(path string, opt Options) (*Stream, error) {
	if err := checkOptions(opt); err != nil {
		return nil, err
	}
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("dataset: %w", err)
	}
	if !st.IsDir() {
		return newStream(path, opt, nil, func() (*parts, error) { return fileParts(path, opt) })
	}
	if opt.Labels != "" {
		return nil, optionErr("dataset: %s is an image folder, whose labels come from its sub-folders; drop the labels file %s", path, opt.Labels)
	}
	fo, err := openFolder(path, opt)
	if err != nil {
		return nil, err
	}
	return newStream(path, opt, fo.classes, fo.parts)
}

// newStream opens one pass to learn the shapes, checks opt against them
// and closes it.
func newStream(name string, opt Options, classes []string, open func() (*parts, error)) (*Stream, error) {
	p, err := open()
	if err != nil {
		return nil, err
	}
	if err := p.close(); err != nil {
		return nil, fmt.Errorf("dataset: %s: %w", name, err)
	}
	s := &Stream{name: name, n: p.n, stored: p.stored, labeled: p.labels != nil, classes: classes, open: open}
	if err := s.plan(opt); err != nil {
		return nil, err
	}
	return s, nil
}

// plan checks Gray, Resize and the normalisation against the stored sample
// shape, with Load's messages, and sets the delivered shape.
func (s *Stream) plan(opt Options) error {
	shape := s.stored
	if opt.Gray {
		full := append([]int{s.n}, shape...)
		if err := grayCheck(full); err != nil {
			return fmt.Errorf("dataset: %s: %w", s.name, err)
		}
		s.gray = shape[0] != 1
		shape = []int{1, shape[1], shape[2]}
	}
	if r := opt.Resize; r != [2]int{} {
		if len(shape) != 3 {
			return optionErr("dataset: %s: resize needs images [N,C,H,W]; got samples of shape %v", s.name, shape)
		}
		if shape[1] != r[0] || shape[2] != r[1] {
			s.resize = true
			shape = []int{shape[0], r[0], r[1]}
		}
	}
	s.shape = shape
	if len(opt.Mean) == 0 && len(opt.Std) == 0 {
		return nil
	}
	c := 1
	if len(shape) > 0 {
		c = shape[0]
	}
	var err error
	if s.mean, err = perChannel("mean", opt.Mean, c, 0); err != nil {
		return fmt.Errorf("dataset: %s: %w", s.name, err)
	}
	if s.std, err = perChannel("std", opt.Std, c, 1); err != nil {
		return fmt.Errorf("dataset: %s: %w", s.name, err)
	}
	return nil
}

// Len returns the number of samples (after Options.Limit).
func (s *Stream) Len() int { return s.n }

// SampleShape returns the shape of one sample as delivered, as a new slice.
func (s *Stream) SampleShape() []int { return slices.Clone(s.shape) }

// Labeled tells whether batches carry labels.
func (s *Stream) Labeled() bool { return s.labeled }

// Name returns the path the stream reads.
func (s *Stream) Name() string { return s.name }

// Classes names the classes of an image folder (labels index it); nil for
// other forms.
func (s *Stream) Classes() []string { return s.classes }

// WithoutLabels returns a stream of the same samples whose batches carry
// no labels. The labels are still read and checked as Load checks them.
func (s *Stream) WithoutLabels() *Stream {
	c := *s
	c.labeled = false
	return &c
}

// Batches starts a pass from the first sample; it reopens the files.
func (s *Stream) Batches() (Batches, error) {
	p, err := s.open()
	if err != nil {
		return nil, err
	}
	if p.n != s.n || !slices.Equal(p.stored, s.stored) {
		p.close()
		return nil, formatErr("dataset: %s changed since it was opened (%d samples of %v, now %d of %v)", s.name, s.n, s.stored, p.n, p.stored)
	}
	return &streamBatches{s: s, p: p}, nil
}

// Head reads the first min(n, Len()) samples into a Dataset.
func Head(ctx context.Context, src Source, n int) (*Dataset, error) {
	b, err := src.Batches()
	if err != nil {
		return nil, err
	}
	defer b.Close()
	x, y, err := b.Next(ctx, min(n, src.Len()))
	if err != nil {
		return nil, err
	}
	return &Dataset{X: x, Y: y, Source: src.Name()}, nil
}

// Load reads the whole stream into a Dataset, in one batch (what the
// package's Load does).
func (s *Stream) Load() (*Dataset, error) { return readAll(s) }

// readAll reads a stream whole, in one batch: Load.
func readAll(s *Stream) (*Dataset, error) {
	b, err := s.Batches()
	if err != nil {
		return nil, err
	}
	x, y, err := b.Next(context.Background(), s.n)
	if cerr := b.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("dataset: %s: %w", s.name, cerr)
	}
	if err != nil {
		return nil, err
	}
	return &Dataset{X: x, Y: y, Source: s.name, Classes: s.classes}, nil
}

// streamBatches is one pass over a Stream.
type streamBatches struct {
	s    *Stream
	p    *parts
	done int
}

func (b *streamBatches) Next(ctx context.Context, max int) (*tensor.Tensor, []int, error) {
	if max <= 0 {
		panic(fmt.Sprintf("dataset: batch of %d samples", max))
	}
	if b.p == nil {
		return nil, nil, errors.New("dataset: Next after Close")
	}
	if b.done == b.s.n {
		return nil, nil, io.EOF
	}
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	k := min(max, b.s.n-b.done)
	data, good, err := b.p.rows.next(ctx, k)
	if err != nil && ctx.Err() != nil {
		return nil, nil, err
	}
	x := tensor.FromData(data, append([]int{good}, b.s.stored...)...)
	if good > 0 {
		x = b.s.transform(x)
	}
	first := defect{at: good, err: err}
	if at, v, flat := nonFinite(x); at >= 0 {
		first = defect{at, formatErr("dataset: %s: non-finite value %v in sample %d (flat index %d)", b.s.name, v, b.done+at, b.done*tensor.Size(x.Shape[1:])+flat)}
	}
	var y []int
	if b.p.labels != nil {
		y = make([]int, k)
		first = first.before(b.p.labels.next(y))
		if !b.s.labeled {
			y = nil
		}
	}
	if first.err != nil {
		return nil, nil, first.err
	}
	b.done += k
	return x, y, nil
}

// defect is the first defect a batch met: at its sample at (the batch's
// length for one after its samples); err nil for none.
type defect struct {
	at  int
	err error
}

// before returns the earlier of d and a defect at sample at; d wins ties,
// being the data's when the labels' is the other.
func (d defect) before(at int, err error) defect {
	if err == nil || (d.err != nil && d.at <= at) {
		return d
	}
	return defect{at, err}
}

func (b *streamBatches) Close() error {
	if b.p == nil {
		return nil
	}
	err := b.p.close()
	b.p = nil
	return err
}

// transform applies Gray, Resize and the normalisation to a batch.
func (s *Stream) transform(x *tensor.Tensor) *tensor.Tensor {
	if s.gray {
		x = toGray(x)
	}
	if s.resize {
		x = resizeBilinear(x, s.shape[1], s.shape[2])
	}
	if s.mean != nil {
		normalize(x, s.mean, s.std)
	}
	return x
}

// byteRows decodes the rows of a records reader into samples.
type byteRows struct {
	rec    *records
	decode func(dst []float64, raw []byte)
	elems  int // values per sample
}

func (r *byteRows) next(_ context.Context, k int) ([]float64, int, error) {
	raw, err := r.rec.read(k)
	good := len(raw) / r.rec.row
	dst := make([]float64, good*r.elems)
	r.decode(dst, raw[:good*r.rec.row])
	return dst, good, err
}

// recordLabels decodes the labels of a records reader. A labels file is
// read whole (its records keep every row): after the n-th label the rest
// are decoded and checked too, in pieces, as Load checks them.
type recordLabels struct {
	rec    *records
	decode func(dst []int, raw []byte, first int) (good int, err error)
	n      int // labels delivered
	done   int
}

// labelChunk is the number of labels checked at a time after the last one
// delivered.
const labelChunk = 1 << 16

func (l *recordLabels) next(dst []int) (int, error) {
	if good, err := l.read(dst); err != nil {
		return good, err
	}
	if l.done < l.n {
		return len(dst), nil
	}
	scratch := make([]int, min(labelChunk, l.rec.keep-l.rec.done))
	for l.rec.done < l.rec.keep {
		if _, err := l.read(scratch[:min(len(scratch), l.rec.keep-l.rec.done)]); err != nil {
			return len(dst), err
		}
	}
	return len(dst), nil
}

// read decodes the next len(dst) labels into dst; on an error it returns
// how many of them are good.
func (l *recordLabels) read(dst []int) (int, error) {
	raw, err := l.rec.read(len(dst))
	whole := len(raw) / l.rec.row
	if good, derr := l.decode(dst[:whole], raw[:whole*l.rec.row], l.done); derr != nil {
		return good, derr
	}
	if err != nil {
		return whole, err
	}
	l.done += len(dst)
	return len(dst), nil
}

// sliceLabels delivers labels held in memory (an image folder's).
type sliceLabels struct {
	y    []int
	done int
}

func (l *sliceLabels) next(dst []int) (int, error) {
	l.done += copy(dst, l.y[l.done:])
	return len(dst), nil
}

// Labeled tells whether d has labels.
func (d *Dataset) Labeled() bool { return d.Y != nil }

// Name returns d.Source.
func (d *Dataset) Name() string { return d.Source }

// Batches starts a pass over d whose batches are views of d (Batch).
func (d *Dataset) Batches() (Batches, error) { return &datasetBatches{d: d}, nil }

// datasetBatches is a pass over a Dataset in memory.
type datasetBatches struct {
	d    *Dataset
	done int
}

func (b *datasetBatches) Next(ctx context.Context, max int) (*tensor.Tensor, []int, error) {
	if max <= 0 {
		panic(fmt.Sprintf("dataset: batch of %d samples", max))
	}
	if b.done == b.d.Len() {
		return nil, nil, io.EOF
	}
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	lo, hi := b.done, min(b.done+max, b.d.Len())
	b.done = hi
	return b.d.rows(lo, hi), b.d.labels(lo, hi), nil
}

func (b *datasetBatches) Close() error { return nil }
