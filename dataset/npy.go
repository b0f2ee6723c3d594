package dataset

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"

	"mpsearch/tensor"
)

// maxHeader bounds the NPY header length. NumPy itself refuses headers
// longer than 10000 bytes by default; the arrays read here have short ones.
const maxHeader = 1 << 16

// readChunk is the largest allocation made ahead of the bytes actually read,
// so that a header claiming a huge array cannot make the reader allocate
// more than the input holds plus this much.
const readChunk = 1 << 20

// npyHead is the parsed header of an NPY stream.
type npyHead struct {
	shape   []int            // as in the header; shape[0] is the full row count
	descr   string           // the NumPy type string
	fortran bool             // column-major data
	kind    byte             // 'f', 'i' or 'u'
	size    int              // bytes per element
	order   binary.ByteOrder // for size > 1
	row     int              // bytes per row (axis 0)
	total   int              // bytes of the whole array
}

// array is an NPY array as read from its stream: the header, and the raw
// bytes of its first rows in C order.
type array struct {
	npyHead
	rows int    // rows held in raw
	raw  []byte // rows * (row size) bytes, C order
}

// readNPY parses one NPY stream named name. With limit > 0 it keeps only the
// first limit rows (axis 0) but still checks the length of the rest. It is
// the whole-array form of npyRecords.
func readNPY(r io.Reader, name string, limit int) (*array, error) {
	h, rec, err := npyRecords(r, name, limit)
	if err != nil {
		return nil, err
	}
	raw, err := rec.read(rec.keep)
	if err != nil {
		return nil, err
	}
	return &array{npyHead: *h, rows: rec.keep, raw: raw}, nil
}

// readNPYHead reads the preamble and header of an NPY stream and checks
// the shape: at least one row, no empty axis, sizes within maxElems.
func readNPYHead(r io.Reader, name string) (*npyHead, error) {
	bad := func(format string, args ...any) error {
		return formatErr("dataset: %s: %s", name, fmt.Sprintf(format, args...))
	}
	pre := make([]byte, 8)
	if _, err := io.ReadFull(r, pre); err != nil {
		return nil, readErr(err, name, "truncated NPY preamble")
	}
	if string(pre[:6]) != string(npyMagic) {
		return nil, bad("not an NPY file (bad magic)")
	}
	var hlen int
	switch major := pre[6]; major {
	case 1:
		b := make([]byte, 2)
		if _, err := io.ReadFull(r, b); err != nil {
			return nil, readErr(err, name, "truncated NPY header length")
		}
		hlen = int(binary.LittleEndian.Uint16(b))
	case 2, 3:
		b := make([]byte, 4)
		if _, err := io.ReadFull(r, b); err != nil {
			return nil, readErr(err, name, "truncated NPY header length")
		}
		h := binary.LittleEndian.Uint32(b)
		if h > maxHeader {
			return nil, bad("NPY header of %d bytes is longer than the %d allowed", h, maxHeader)
		}
		hlen = int(h)
	default:
		return nil, bad("unsupported NPY format version %d.%d", major, pre[7])
	}
	hdr := make([]byte, hlen)
	if _, err := io.ReadFull(r, hdr); err != nil {
		return nil, readErr(err, name, fmt.Sprintf("truncated NPY header (%d bytes announced)", hlen))
	}
	descr, fortran, shape, err := parseHeader(string(hdr))
	if err != nil {
		return nil, bad("NPY header: %v", err)
	}
	h := &npyHead{shape: shape, descr: descr, fortran: fortran}
	if err := h.setDType(descr); err != nil {
		return nil, bad("%v", err)
	}
	if len(shape) == 0 {
		return nil, bad("a scalar array has no sample axis; want shape [N, ...]")
	}
	if shape[0] == 0 {
		return nil, bad("no samples (shape %v)", shape)
	}
	for _, d := range shape[1:] {
		if d == 0 {
			return nil, bad("empty samples (shape %v)", shape)
		}
	}
	rowElems, ok := checkedProduct(shape[1:])
	rowBytes, ok2 := mulInt(rowElems, h.size)
	total, ok3 := mulInt(rowBytes, shape[0])
	if !ok || !ok2 || !ok3 {
		return nil, bad("shape %v is too large", shape)
	}
	h.row, h.total = rowBytes, total
	return h, nil
}

// npyRecords reads the header of the NPY stream r and returns a reader of
// its rows in C order, which delivers the first limit rows (all when limit
// is 0) and then checks the rest. A column-major array is read and
// reordered whole here (its rows are not contiguous), the rest of the
// stream checked, and its rows served from memory.
func npyRecords(r io.Reader, name string, limit int) (*npyHead, *records, error) {
	h, err := readNPYHead(r, name)
	if err != nil {
		return nil, nil, err
	}
	keep := h.shape[0]
	if limit > 0 && limit < keep {
		keep = limit
	}
	truncated := func(got int64) string {
		return fmt.Sprintf("data truncated: shape %v of %s needs %d bytes, got %d", h.shape, h.descr, h.total, got)
	}
	trailing := fmt.Sprintf("unexpected data after the %v array of %s", h.shape, h.descr)
	if h.fortran && len(h.shape) > 1 {
		// Column-major: rows are not contiguous, so read everything.
		raw, err := readFull(r, h.total)
		if err != nil {
			return nil, nil, readErr(err, name, truncated(int64(len(raw))))
		}
		if err := noTrailing(r); err != nil {
			return nil, nil, readErr(err, name, trailing)
		}
		raw = fortranToC(raw, h.shape, h.size)[:keep*h.row]
		return h, &records{r: bytes.NewReader(raw), name: name, row: h.row, rows: keep, keep: keep,
			truncated: truncated, trailing: trailing}, nil
	}
	return h, &records{r: r, name: name, row: h.row, rows: h.shape[0], keep: keep,
		truncated: truncated, trailing: trailing}, nil
}

// records reads fixed-size rows from a stream: the first keep of rows
// rows, in pieces; after the last of them it checks that the other rows
// are present and that nothing follows (which also makes gzip and zip
// readers verify their checksums). Only the rows asked for are held.
type records struct {
	r          io.Reader
	name       string
	row        int // bytes per row
	rows, keep int // rows in the stream, rows delivered
	done       int // rows delivered so far
	got        int64
	truncated  func(got int64) string // message for a short stream
	trailing   string                 // message for bytes after the last row
	buf        []byte
	// seeker, when set, is r as a plain file: the rows after the
	// delivered ones are then checked by the file's size, not read.
	seeker io.Seeker
}

// read returns the raw bytes of the next k rows (k <= keep - done); the
// slice is reused by the next call. After the keep-th row it checks the
// rest of the stream. On an error it returns the whole rows read before
// it: fewer than k when the stream is short, all k when the defect is
// after the keep-th row.
func (rc *records) read(k int) ([]byte, error) {
	if k < 0 || k > rc.keep-rc.done {
		panic(fmt.Sprintf("dataset: %d rows asked of %d left", k, rc.keep-rc.done))
	}
	n := k * rc.row
	var raw []byte
	var err error
	if cap(rc.buf) >= n {
		var m int
		m, err = io.ReadFull(rc.r, rc.buf[:n])
		raw = rc.buf[:m]
	} else {
		// Grow only as bytes arrive, so that a hostile header cannot make
		// the reader allocate much more than the input holds.
		raw, err = readFull(rc.r, n)
	}
	rc.got += int64(len(raw))
	if err != nil {
		return raw[:len(raw)/rc.row*rc.row], readErr(err, rc.name, rc.truncated(rc.got))
	}
	rc.buf = raw[:0]
	rc.done += k
	if rc.done == rc.keep {
		if err := rc.finish(); err != nil {
			return raw, err
		}
	}
	return raw, nil
}

// finish checks that the rows after the delivered ones are all present
// and that nothing follows them.
func (rc *records) finish() error {
	rest := int64(rc.rows-rc.keep) * int64(rc.row)
	if rc.seeker != nil {
		return rc.finishBySize(rest)
	}
	if m, err := io.CopyN(io.Discard, rc.r, rest); err != nil {
		return readErr(err, rc.name, rc.truncated(rc.got+m))
	}
	rc.got += rest
	if err := noTrailing(rc.r); err != nil {
		return readErr(err, rc.name, rc.trailing)
	}
	return nil
}

// errTrailing reports bytes after the end of an array.
var errTrailing = errors.New("trailing bytes")

// noTrailing checks that r is at its end (which also makes gzip and zip
// readers verify their checksums).
func noTrailing(r io.Reader) error {
	var b [512]byte
	n, err := io.ReadFull(r, b[:])
	if n > 0 {
		return errTrailing
	}
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
		return err
	}
	return nil
}

// readFull reads exactly n bytes, growing its buffer only as bytes arrive.
func readFull(r io.Reader, n int) ([]byte, error) {
	buf := make([]byte, 0, min(n, readChunk))
	for len(buf) < n {
		k := min(n-len(buf), readChunk)
		if cap(buf)-len(buf) < k {
			grown := make([]byte, len(buf), max(2*cap(buf), len(buf)+k))
			copy(grown, buf)
			buf = grown
		}
		m, err := io.ReadFull(r, buf[len(buf):len(buf)+k])
		buf = buf[:len(buf)+m]
		if err != nil {
			return buf, err
		}
	}
	return buf, nil
}

// finishBySize is finish for a plain file: the bytes left after the
// current offset must be exactly rest.
func (rc *records) finishBySize(rest int64) error {
	cur, err := rc.seeker.Seek(0, io.SeekCurrent)
	if err != nil {
		return readErr(err, rc.name, rc.truncated(rc.got))
	}
	end, err := rc.seeker.Seek(0, io.SeekEnd)
	if err != nil {
		return readErr(err, rc.name, rc.truncated(rc.got))
	}
	switch left := end - cur; {
	case left < rest:
		return formatErr("dataset: %s: %s", rc.name, rc.truncated(rc.got+left))
	case left > rest:
		return readErr(errTrailing, rc.name, rc.trailing)
	}
	rc.got += rest
	return nil
}

// checkedProduct multiplies dims, reporting false when a partial product
// exceeds maxElems.
func checkedProduct(dims []int) (int, bool) {
	p := 1
	for _, d := range dims {
		var ok bool
		if p, ok = mulInt(p, d); !ok {
			return 0, false
		}
	}
	return p, true
}

// maxElems bounds every size computed from a file header (2^47).
const maxElems = 1 << 47

func mulInt(a, b int) (int, bool) {
	if a < 0 || b < 0 {
		return 0, false
	}
	if a == 0 || b == 0 {
		return 0, true
	}
	if a > maxElems/b {
		return 0, false
	}
	return a * b, true
}

// setDType parses a simple NumPy type string such as "<f4" or "|u1".
func (a *npyHead) setDType(descr string) error {
	if len(descr) < 3 {
		return fmt.Errorf("unsupported dtype %q", descr)
	}
	bo, kind, sz := descr[0], descr[1], descr[2:]
	n, err := strconv.Atoi(sz)
	if err != nil || n <= 0 {
		return fmt.Errorf("unsupported dtype %q", descr)
	}
	switch kind {
	case 'f':
		if n == 2 {
			return fmt.Errorf("dtype float16 (%q) is not supported; save with .astype('float32')", descr)
		}
		if n != 4 && n != 8 {
			return fmt.Errorf("unsupported dtype %q (float%d)", descr, 8*n)
		}
	case 'i', 'u':
		if n != 1 && n != 2 && n != 4 && n != 8 {
			return fmt.Errorf("unsupported dtype %q", descr)
		}
	case 'c':
		return fmt.Errorf("complex dtype %q is not supported; want float32, float64 or uint8", descr)
	case 'S', 'U', 'a':
		return fmt.Errorf("string dtype %q is not supported; want numbers", descr)
	case 'b':
		return fmt.Errorf("boolean dtype %q is not supported; save as uint8 or float32", descr)
	default:
		return fmt.Errorf("unsupported dtype %q", descr)
	}
	switch {
	case bo == '<':
		a.order = binary.LittleEndian
	case bo == '>':
		a.order = binary.BigEndian
	case bo == '|' && n == 1:
		a.order = binary.LittleEndian
	default:
		return fmt.Errorf("dtype %q has an unsupported byte order", descr)
	}
	a.kind, a.size = kind, n
	return nil
}

func (a *npyHead) dtypeName() string {
	switch a.kind {
	case 'f':
		return fmt.Sprintf("float%d", 8*a.size)
	case 'i':
		return fmt.Sprintf("int%d", 8*a.size)
	}
	return fmt.Sprintf("uint%d", 8*a.size)
}

// samples converts the array to float64 samples: floats as they are, uint8
// scaled by 1/255.
func (a *array) samples(name string) (*tensor.Tensor, error) {
	if err := a.checkSamples(name); err != nil {
		return nil, err
	}
	out := tensor.New(append([]int{a.rows}, a.shape[1:]...)...)
	a.decodeSamples(out.Data, a.raw)
	return out, nil
}

// checkSamples reports an element type that samples cannot have.
func (h *npyHead) checkSamples(name string) error {
	if h.kind == 'f' || h.kind == 'u' && h.size == 1 {
		return nil
	}
	return formatErr("dataset: %s: samples of dtype %s are not supported; want float32, float64, or uint8 pixels (scaled by 1/255)", name, h.dtypeName())
}

// decodeSamples converts the raw elements of whole rows to float64 values
// in dst (len(raw)/size of them): floats as they are, uint8 scaled by
// 1/255. The dtype must have passed checkSamples.
func (h *npyHead) decodeSamples(dst []float64, raw []byte) {
	switch {
	case h.kind == 'f' && h.size == 4:
		for i := range dst {
			dst[i] = float64(math.Float32frombits(h.order.Uint32(raw[4*i:])))
		}
	case h.kind == 'f' && h.size == 8:
		for i := range dst {
			dst[i] = math.Float64frombits(h.order.Uint64(raw[8*i:]))
		}
	default:
		decodeBytes(dst, raw)
	}
}

// decodeBytes converts pixels stored as bytes to [0, 1].
func decodeBytes(dst []float64, raw []byte) {
	for i := range dst {
		dst[i] = float64(raw[i]) / 255
	}
}

// labels converts a one-dimensional integer array to class indices.
func (a *array) labels(name string) ([]int, error) {
	if err := a.checkLabels(name); err != nil {
		return nil, err
	}
	out := make([]int, a.rows)
	if _, err := a.decodeLabels(out, a.raw, 0, name); err != nil {
		return nil, err
	}
	return out, nil
}

// checkLabels reports a shape or element type that labels cannot have.
func (h *npyHead) checkLabels(name string) error {
	if len(h.shape) != 1 {
		return formatErr("dataset: %s: labels must have shape [N]; got %v", name, h.shape)
	}
	if h.kind != 'i' && h.kind != 'u' {
		return formatErr("dataset: %s: labels must be integers; got %s", name, h.dtypeName())
	}
	return nil
}

// decodeLabels converts len(dst) raw integers to class indices; first is
// the index of the first in the file, for messages. The array must have
// passed checkLabels. On an error it returns the index in dst of the bad
// label.
func (h *npyHead) decodeLabels(dst []int, raw []byte, first int, name string) (int, error) {
	for i := range dst {
		b := raw[i*h.size:]
		var v int64
		var big bool
		switch {
		case h.size == 1 && h.kind == 'i':
			v = int64(int8(b[0]))
		case h.size == 1:
			v = int64(b[0])
		case h.size == 2 && h.kind == 'i':
			v = int64(int16(h.order.Uint16(b)))
		case h.size == 2:
			v = int64(h.order.Uint16(b))
		case h.size == 4 && h.kind == 'i':
			v = int64(int32(h.order.Uint32(b)))
		case h.size == 4:
			v = int64(h.order.Uint32(b))
		case h.kind == 'i':
			v = int64(h.order.Uint64(b))
		default:
			u := h.order.Uint64(b)
			big = u > math.MaxInt64
			v = int64(u)
		}
		if big || v > math.MaxInt32 {
			return i, formatErr("dataset: %s: label %d at index %d is too large for a class index", name, uint64(v), first+i)
		}
		if v < 0 {
			return i, formatErr("dataset: %s: label %d at index %d is negative", name, v, first+i)
		}
		dst[i] = int(v)
	}
	return len(dst), nil
}

// fortranToC reorders column-major raw data of the given shape to row-major.
func fortranToC(raw []byte, shape []int, size int) []byte {
	out := make([]byte, len(raw))
	n := len(shape)
	fstride := make([]int, n) // element strides of the column-major layout
	acc := 1
	for i := 0; i < n; i++ {
		fstride[i] = acc
		acc *= shape[i]
	}
	idx := make([]int, n)
	for c := 0; c < acc; c++ {
		f := 0
		for i, v := range idx {
			f += v * fstride[i]
		}
		copy(out[c*size:(c+1)*size], raw[f*size:(f+1)*size])
		for i := n - 1; i >= 0; i-- {
			idx[i]++
			if idx[i] < shape[i] {
				break
			}
			idx[i] = 0
		}
	}
	return out
}

// parseHeader reads the Python dict literal of an NPY header.
func parseHeader(s string) (descr string, fortran bool, shape []int, err error) {
	p := &pyParser{s: s}
	v, err := p.value(0)
	if err != nil {
		return "", false, nil, err
	}
	p.space()
	if p.i != len(p.s) {
		return "", false, nil, fmt.Errorf("unexpected %q after the header dict", p.rest())
	}
	dict, ok := v.(pyDict)
	if !ok {
		return "", false, nil, fmt.Errorf("header is not a dict")
	}
	var seen [3]bool
	for _, kv := range dict {
		switch kv.key {
		case "descr":
			switch d := kv.val.(type) {
			case string:
				descr = d
			case pyList:
				return "", false, nil, fmt.Errorf("structured dtypes are not supported; want a plain numeric array")
			default:
				return "", false, nil, fmt.Errorf("descr is not a string")
			}
			seen[0] = true
		case "fortran_order":
			b, ok := kv.val.(bool)
			if !ok {
				return "", false, nil, fmt.Errorf("fortran_order is not True or False")
			}
			fortran, seen[1] = b, true
		case "shape":
			t, ok := kv.val.(pyList)
			if !ok {
				return "", false, nil, fmt.Errorf("shape is not a tuple")
			}
			shape = make([]int, len(t))
			for i, e := range t {
				n, ok := e.(int)
				if !ok || n < 0 {
					return "", false, nil, fmt.Errorf("shape has a bad dimension %v", e)
				}
				shape[i] = n
			}
			seen[2] = true
		default:
			return "", false, nil, fmt.Errorf("unknown key %q", kv.key)
		}
	}
	if !seen[0] || !seen[1] || !seen[2] {
		return "", false, nil, fmt.Errorf("missing one of descr, fortran_order, shape")
	}
	return descr, fortran, shape, nil
}

type pyKV struct {
	key string
	val any
}

// pyDict is a parsed dict literal; pyList a tuple or list. Scalars parse to
// string, int, bool or nil.
type (
	pyDict []pyKV
	pyList []any
)

// pyParser parses the small subset of Python literals NPY headers use.
type pyParser struct {
	s string
	i int
}

const maxDepth = 8

func (p *pyParser) rest() string {
	r := p.s[p.i:]
	if len(r) > 20 {
		r = r[:20] + "..."
	}
	return r
}

func (p *pyParser) space() {
	for p.i < len(p.s) && strings.IndexByte(" \t\r\n", p.s[p.i]) >= 0 {
		p.i++
	}
}

func (p *pyParser) value(depth int) (any, error) {
	if depth > maxDepth {
		return nil, fmt.Errorf("literal nested too deeply")
	}
	p.space()
	if p.i >= len(p.s) {
		return nil, fmt.Errorf("unexpected end of header")
	}
	switch c := p.s[p.i]; {
	case c == '{':
		p.i++
		var d pyDict
		for {
			p.space()
			if p.i < len(p.s) && p.s[p.i] == '}' {
				p.i++
				return d, nil
			}
			k, err := p.value(depth + 1)
			if err != nil {
				return nil, err
			}
			key, ok := k.(string)
			if !ok {
				return nil, fmt.Errorf("dict key is not a string")
			}
			p.space()
			if p.i >= len(p.s) || p.s[p.i] != ':' {
				return nil, fmt.Errorf("missing ':' after key %q", key)
			}
			p.i++
			v, err := p.value(depth + 1)
			if err != nil {
				return nil, err
			}
			d = append(d, pyKV{key, v})
			if err := p.sep('}'); err != nil {
				return nil, err
			}
		}
	case c == '(' || c == '[':
		end := byte(')')
		if c == '[' {
			end = ']'
		}
		p.i++
		l := pyList{}
		for {
			p.space()
			if p.i < len(p.s) && p.s[p.i] == end {
				p.i++
				return l, nil
			}
			v, err := p.value(depth + 1)
			if err != nil {
				return nil, err
			}
			l = append(l, v)
			if err := p.sep(end); err != nil {
				return nil, err
			}
		}
	case c == '\'' || c == '"':
		j := strings.IndexByte(p.s[p.i+1:], c)
		if j < 0 {
			return nil, fmt.Errorf("unterminated string")
		}
		v := p.s[p.i+1 : p.i+1+j]
		p.i += j + 2
		return v, nil
	case c >= '0' && c <= '9' || c == '-':
		j := p.i + 1
		for j < len(p.s) && p.s[j] >= '0' && p.s[j] <= '9' {
			j++
		}
		n, err := strconv.Atoi(p.s[p.i:j])
		if err != nil {
			return nil, fmt.Errorf("bad integer %q", p.s[p.i:j])
		}
		if j < len(p.s) && p.s[j] == 'L' { // Python 2 long
			j++
		}
		p.i = j
		return n, nil
	}
	for _, w := range []struct {
		word string
		val  any
	}{{"True", true}, {"False", false}, {"None", nil}} {
		if strings.HasPrefix(p.s[p.i:], w.word) {
			p.i += len(w.word)
			return w.val, nil
		}
	}
	return nil, fmt.Errorf("unexpected %q", p.rest())
}

// sep consumes a ',' or leaves the closing byte for the caller.
func (p *pyParser) sep(end byte) error {
	p.space()
	if p.i < len(p.s) && p.s[p.i] == ',' {
		p.i++
		return nil
	}
	if p.i < len(p.s) && p.s[p.i] == end {
		return nil
	}
	return fmt.Errorf("expected ',' or %q at %q", end, p.rest())
}
