package dataset

import (
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"

	"mpsearch/tensor"
)

// npyAlign and npyGrowthDigits are NumPy's (numpy/lib/format.py,
// ARRAY_ALIGN and GROWTH_AXIS_MAX_DIGITS): the header is padded with
// spaces so that the data starts at a multiple of 64 bytes, after room for
// the first dimension to grow to 21 digits.
const (
	npyAlign        = 64
	npyGrowthDigits = 21
)

// npyHeader returns the NPY format 1.0 preamble and header for a C-order
// array of the given NumPy type string and shape, byte for byte as
// numpy.save writes it.
func npyHeader(descr string, shape []int) []byte {
	dims := make([]string, len(shape))
	for i, d := range shape {
		dims[i] = strconv.Itoa(d)
	}
	tuple := "(" + strings.Join(dims, ", ") + ")"
	if len(shape) == 1 {
		tuple = "(" + dims[0] + ",)"
	}
	hdr := fmt.Sprintf("{'descr': '%s', 'fortran_order': False, 'shape': %s, }", descr, tuple)
	if len(shape) > 0 {
		hdr += strings.Repeat(" ", npyGrowthDigits-len(dims[0]))
	}
	pre := len(npyMagic) + 4 // magic, version (2 bytes), header length (2 bytes)
	pad := npyAlign - (pre+len(hdr)+1)%npyAlign
	hdr += strings.Repeat(" ", pad) + "\n"
	out := make([]byte, 0, pre+len(hdr))
	out = append(out, npyMagic...)
	out = append(out, 1, 0)
	out = binary.LittleEndian.AppendUint16(out, uint16(len(hdr)))
	return append(out, hdr...)
}

// NPYFloat32Writer writes a float32 NPY array (format 1.0, little-endian
// "<f4", C order) of a shape known in advance as its values arrive, with
// the bytes NPYFloat32 gives for the same values.
type NPYFloat32Writer struct {
	w    io.Writer
	left int
	buf  []byte
}

// NewNPYFloat32Writer writes the header for shape to w.
func NewNPYFloat32Writer(w io.Writer, shape []int) (*NPYFloat32Writer, error) {
	if _, err := w.Write(npyHeader("<f4", shape)); err != nil {
		return nil, err
	}
	return &NPYFloat32Writer{w: w, left: tensor.Size(shape)}, nil
}

// Write appends vals, rounded to float32.
func (w *NPYFloat32Writer) Write(vals []float64) error {
	if len(vals) > w.left {
		return fmt.Errorf("dataset: NPY writer: %d values given, %d left in the array", len(vals), w.left)
	}
	w.buf = w.buf[:0]
	for _, v := range vals {
		w.buf = binary.LittleEndian.AppendUint32(w.buf, math.Float32bits(float32(v)))
	}
	w.left -= len(vals)
	_, err := w.w.Write(w.buf)
	return err
}

// Close reports an array not written whole; it does not close w.
func (w *NPYFloat32Writer) Close() error {
	if w.left != 0 {
		return fmt.Errorf("dataset: NPY writer: %d values missing", w.left)
	}
	return nil
}

// NPYFloat32 returns the NPY encoding (format 1.0, little-endian "<f4",
// C order) of vals, an array of the given shape.
func NPYFloat32(shape []int, vals []float32) ([]byte, error) {
	if tensor.Size(shape) != len(vals) {
		return nil, fmt.Errorf("dataset: NPY of shape %v needs %d values; got %d", shape, tensor.Size(shape), len(vals))
	}
	out := npyHeader("<f4", shape)
	for _, v := range vals {
		out = binary.LittleEndian.AppendUint32(out, math.Float32bits(v))
	}
	return out, nil
}

// NPYFloat64 returns the NPY encoding (format 1.0, little-endian "<f8",
// C order) of x.
func NPYFloat64(x *tensor.Tensor) []byte {
	out := npyHeader("<f8", x.Shape)
	for _, v := range x.Data {
		out = binary.LittleEndian.AppendUint64(out, math.Float64bits(v))
	}
	return out
}

// ReadNPY reads a whole NPY file of shape [N, ...] (N >= 1) as it is
// stored: floats and integers converted to float64 without the 1/255
// scaling Load gives pixels. Errors wrap ErrFormat or the os error.
func ReadNPY(path string) (*tensor.Tensor, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("dataset: %w", err)
	}
	defer f.Close()
	a, err := readNPY(f, path, 0)
	if err != nil {
		return nil, err
	}
	out := tensor.New(a.shape...)
	for i := range out.Data {
		b := a.raw[i*a.size:]
		switch {
		case a.kind == 'f' && a.size == 4:
			out.Data[i] = float64(math.Float32frombits(a.order.Uint32(b)))
		case a.kind == 'f':
			out.Data[i] = math.Float64frombits(a.order.Uint64(b))
		case a.size == 1 && a.kind == 'i':
			out.Data[i] = float64(int8(b[0]))
		case a.size == 1:
			out.Data[i] = float64(b[0])
		case a.size == 2 && a.kind == 'i':
			out.Data[i] = float64(int16(a.order.Uint16(b)))
		case a.size == 2:
			out.Data[i] = float64(a.order.Uint16(b))
		case a.size == 4 && a.kind == 'i':
			out.Data[i] = float64(int32(a.order.Uint32(b)))
		case a.size == 4:
			out.Data[i] = float64(a.order.Uint32(b))
		case a.kind == 'i':
			out.Data[i] = float64(int64(a.order.Uint64(b)))
		default:
			out.Data[i] = float64(a.order.Uint64(b))
		}
	}
	return out, nil
}
