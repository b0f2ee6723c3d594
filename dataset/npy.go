package dataset

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"

	"codeberg.org/sbinet/npyio/npz"

	"mpsearch/tensor"
)

// maxHeader bounds the NPY header length. NumPy itself refuses headers
// longer than 10000 bytes by default; the arrays read here have short ones.
const maxHeader = 1 << 16

// readChunk is the largest allocation made ahead of the bytes actually read,
// so that a header claiming a huge array cannot make the reader allocate
// more than the input holds plus this much.
const readChunk = 1 << 20

// array is an NPY array as read from its stream: the header, and the raw
// bytes of its first rows in C order.
type array struct {
	shape []int            // as in the header; shape[0] is the full row count
	kind  byte             // 'f', 'i' or 'u'
	size  int              // bytes per element
	order binary.ByteOrder // for size > 1
	rows  int              // rows held in raw
	raw   []byte           // rows * (row size) bytes, C order
}

// readNPY parses one NPY stream named name. With limit > 0 it keeps only the
// first limit rows (axis 0) but still checks the length of the rest.
func readNPY(r io.Reader, name string, limit int) (*array, error) {
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
	a := &array{shape: shape}
	if err := a.setDType(descr); err != nil {
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
	rowBytes, ok2 := mulInt(rowElems, a.size)
	total, ok3 := mulInt(rowBytes, shape[0])
	if !ok || !ok2 || !ok3 {
		return nil, bad("shape %v is too large", shape)
	}

	keep := shape[0]
	if limit > 0 && limit < keep {
		keep = limit
	}
	truncated := func(got int64) string {
		return fmt.Sprintf("data truncated: shape %v of %s needs %d bytes, got %d", shape, descr, total, got)
	}
	if fortran && len(shape) > 1 {
		// Column-major: rows are not contiguous, so read everything.
		raw, err := readFull(r, total)
		if err != nil {
			return nil, readErr(err, name, truncated(int64(len(raw))))
		}
		raw = fortranToC(raw, shape, a.size)
		a.raw = raw[:keep*rowBytes]
	} else {
		raw, err := readFull(r, keep*rowBytes)
		if err != nil {
			return nil, readErr(err, name, truncated(int64(len(raw))))
		}
		if n, err := io.CopyN(io.Discard, r, int64(total-keep*rowBytes)); err != nil {
			return nil, readErr(err, name, truncated(int64(len(raw))+n))
		}
		a.raw = raw
	}
	if err := noTrailing(r); err != nil {
		return nil, readErr(err, name, fmt.Sprintf("unexpected data after the %v array of %s", shape, descr))
	}
	a.rows = keep
	return a, nil
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
func (a *array) setDType(descr string) error {
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

func (a *array) dtypeName() string {
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
	shape := append([]int{a.rows}, a.shape[1:]...)
	out := tensor.New(shape...)
	raw := a.raw
	switch {
	case a.kind == 'f' && a.size == 4:
		for i := range out.Data {
			out.Data[i] = float64(math.Float32frombits(a.order.Uint32(raw[4*i:])))
		}
	case a.kind == 'f' && a.size == 8:
		for i := range out.Data {
			out.Data[i] = math.Float64frombits(a.order.Uint64(raw[8*i:]))
		}
	case a.kind == 'u' && a.size == 1:
		for i := range out.Data {
			out.Data[i] = float64(raw[i]) / 255
		}
	default:
		return nil, formatErr("dataset: %s: samples of dtype %s are not supported; want float32, float64, or uint8 pixels (scaled by 1/255)", name, a.dtypeName())
	}
	return out, nil
}

// labels converts a one-dimensional integer array to class indices.
func (a *array) labels(name string) ([]int, error) {
	if len(a.shape) != 1 {
		return nil, formatErr("dataset: %s: labels must have shape [N]; got %v", name, a.shape)
	}
	if a.kind != 'i' && a.kind != 'u' {
		return nil, formatErr("dataset: %s: labels must be integers; got %s", name, a.dtypeName())
	}
	out := make([]int, a.rows)
	for i := range out {
		b := a.raw[i*a.size:]
		var v int64
		var big bool
		switch {
		case a.size == 1 && a.kind == 'i':
			v = int64(int8(b[0]))
		case a.size == 1:
			v = int64(b[0])
		case a.size == 2 && a.kind == 'i':
			v = int64(int16(a.order.Uint16(b)))
		case a.size == 2:
			v = int64(a.order.Uint16(b))
		case a.size == 4 && a.kind == 'i':
			v = int64(int32(a.order.Uint32(b)))
		case a.size == 4:
			v = int64(a.order.Uint32(b))
		case a.kind == 'i':
			v = int64(a.order.Uint64(b))
		default:
			u := a.order.Uint64(b)
			big = u > math.MaxInt64
			v = int64(u)
		}
		if big || v > math.MaxInt32 {
			return nil, formatErr("dataset: %s: label %d at index %d is too large for a class index", name, uint64(v), i)
		}
		if v < 0 {
			return nil, formatErr("dataset: %s: label %d at index %d is negative", name, v, i)
		}
		out[i] = int(v)
	}
	return out, nil
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

// readNPZ reads array "x" (required) and "y" (optional) of an NPZ archive.
// fullN is the number of samples in the file, before the limit.
func readNPZ(path string, limit int) (x *tensor.Tensor, y []int, fullN int, err error) {
	r, err := npz.Open(path)
	if err != nil {
		return nil, nil, 0, formatErr("dataset: %s is not a valid NPZ (zip) archive: %v", path, err)
	}
	defer r.Close()
	return readNPZArrays(r, path, limit)
}

// readNPZArrays reads "x" and "y" from an open archive named path.
func readNPZArrays(r *npz.Reader, path string, limit int) (x *tensor.Tensor, y []int, fullN int, err error) {
	keys := r.Keys()
	find := func(name string) string {
		for _, k := range keys {
			if k == name+".npy" || k == name {
				return k
			}
		}
		return ""
	}
	read := func(key string) (*array, error) {
		rc, err := r.Open(key)
		if err != nil {
			return nil, formatErr("dataset: %s: %v", path, err)
		}
		defer rc.Close()
		return readNPY(rc, path+"["+key+"]", limit)
	}
	xk := find("x")
	if xk == "" {
		return nil, nil, 0, formatErr("dataset: %s has no array \"x\" (arrays: %s); save with np.savez(path, x=..., y=...)", path, strings.Join(keys, ", "))
	}
	xa, err := read(xk)
	if err != nil {
		return nil, nil, 0, err
	}
	if x, err = xa.samples(path + "[" + xk + "]"); err != nil {
		return nil, nil, 0, err
	}
	fullN = xa.shape[0]
	if yk := find("y"); yk != "" {
		ya, err := read(yk)
		if err != nil {
			return nil, nil, 0, err
		}
		if ya.shape[0] != fullN {
			return nil, nil, 0, formatErr("dataset: %s: %d labels in \"y\" but %d samples in \"x\"", path, ya.shape[0], fullN)
		}
		if y, err = ya.labels(path + "[" + yk + "]"); err != nil {
			return nil, nil, 0, err
		}
	}
	return x, y, fullN, nil
}
