package onnx

import (
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"

	"mpsearch/onnx/internal/onnxpb"
	"mpsearch/tensor"
)

// maxElements bounds the number of elements of any tensor shape. Decoding
// never allocates more than the data present in the file supports, so the
// bound only keeps element and byte counts far from int64 overflow.
const maxElements = 1 << 40

// decoder converts TensorProtos to float64 tensors. External data is read
// relative to dir; dir == "" means external data is refused.
type decoder struct {
	dir     string
	root    *os.Root
	rootErr error
}

// close releases the directory handle opened for external data, if any.
func (d *decoder) close() {
	if d.root != nil {
		d.root.Close()
		d.root = nil
	}
}

// shapeOf validates ONNX dims and returns them as a tensor shape together
// with the element count. A scalar's shape is nil, as tensor.New makes it.
func shapeOf(dims []int64) ([]int, int64, error) {
	var shape []int
	if len(dims) > 0 {
		shape = make([]int, len(dims))
	}
	zero := false
	for i, d := range dims {
		if d < 0 {
			return nil, 0, malformed("negative dimension %d in shape %v", d, dims)
		}
		if d > maxElements {
			return nil, 0, malformed("shape %v has more than %d elements", dims, int64(maxElements))
		}
		zero = zero || d == 0
		shape[i] = int(d)
	}
	if zero {
		return shape, 0, nil
	}
	n := int64(1)
	for _, d := range dims {
		if n > maxElements/d {
			return nil, 0, malformed("shape %v has more than %d elements", dims, int64(maxElements))
		}
		n *= d
	}
	return shape, n, nil
}

// tensor decodes tp into a float64 tensor and the element type it had.
func (d *decoder) tensor(tp *onnxpb.TensorProto) (*tensor.Tensor, DataType, error) {
	dt := DataType(tp.GetDataType())
	switch {
	case dt == Undefined:
		return nil, dt, malformed("data type UNDEFINED")
	case !dt.known():
		return nil, dt, malformed("unknown data type %d", int32(dt))
	case !dt.Supported():
		return nil, dt, unsupported("data type %v is not supported", dt)
	case tp.Segment != nil:
		return nil, dt, unsupported("segmented tensors are not supported")
	}
	shape, n, err := shapeOf(tp.Dims)
	if err != nil {
		return nil, dt, err
	}
	data, err := d.values(tp, dt, shape, n)
	if err != nil {
		return nil, dt, err
	}
	return &tensor.Tensor{Shape: shape, Data: data}, dt, nil
}

// typedField is one of TensorProto's type-specific value fields.
type typedField struct {
	name  string
	len   int
	types []DataType // element types the field may hold
}

// values finds where tp keeps its data, checks the amount against n
// before allocating, and converts the elements.
func (d *decoder) values(tp *onnxpb.TensorProto, dt DataType, shape []int, n int64) ([]float64, error) {
	fields := []typedField{
		{"float_data", len(tp.FloatData), []DataType{Float}},
		{"int32_data", len(tp.Int32Data), []DataType{Int32, Int16, Int8, Uint16, Uint8, Int4, Uint4, Bool, Float16, Bfloat16}},
		{"string_data", len(tp.StringData), nil},
		{"int64_data", len(tp.Int64Data), []DataType{Int64}},
		{"double_data", len(tp.DoubleData), []DataType{Double}},
		{"uint64_data", len(tp.Uint64Data), []DataType{Uint32, Uint64}},
	}
	var sources []string
	external := tp.GetDataLocation() == onnxpb.TensorProto_EXTERNAL
	if external {
		sources = append(sources, "external data")
	}
	if tp.RawData != nil {
		sources = append(sources, "raw_data")
	}
	var typed *typedField
	for i := range fields {
		if fields[i].len > 0 {
			sources = append(sources, fields[i].name)
			typed = &fields[i]
		}
	}
	if len(sources) > 1 {
		return nil, malformed("data in both %s and %s", sources[0], sources[1])
	}

	want := dt.rawBytes(n)
	switch {
	case external:
		raw, err := d.external(tp, dt, shape, want)
		if err != nil {
			return nil, err
		}
		return fromRaw(raw, dt, int(n)), nil
	case tp.RawData != nil:
		if int64(len(tp.RawData)) != want {
			return nil, malformed("raw_data has %d bytes for shape %v of %v; want %d", len(tp.RawData), shape, dt, want)
		}
		return fromRaw(tp.RawData, dt, int(n)), nil
	case typed == nil:
		if n != 0 {
			return nil, malformed("0 values for shape %v", shape)
		}
		return []float64{}, nil
	}
	ok := false
	for _, t := range typed.types {
		ok = ok || t == dt
	}
	if !ok {
		return nil, malformed("%s cannot hold %v values", typed.name, dt)
	}
	if dt.bits() == 4 {
		if int64(typed.len) != want {
			return nil, malformed("%d int32_data entries for shape %v of %v; want %d (two values per entry)", typed.len, shape, dt, want)
		}
	} else if int64(typed.len) != n {
		return nil, malformed("%d values for shape %v", typed.len, shape)
	}
	out := make([]float64, n)
	switch typed.name {
	case "float_data":
		for i, v := range tp.FloatData {
			out[i] = float64(v)
		}
	case "int64_data":
		for i, v := range tp.Int64Data {
			out[i] = float64(v)
		}
	case "double_data":
		copy(out, tp.DoubleData)
	case "uint64_data":
		for i, v := range tp.Uint64Data {
			if dt == Uint32 {
				v = uint64(uint32(v))
			}
			out[i] = float64(v)
		}
	case "int32_data":
		fromInt32(out, tp.Int32Data, dt)
	}
	return out, nil
}

// fromInt32 converts int32_data entries of type dt. Entries are cast to
// the element type as onnx.numpy_helper does (two's-complement
// truncation); 16-bit floats are bit patterns; 4-bit types hold two
// values per entry, low nibble first.
func fromInt32(out []float64, vals []int32, dt DataType) {
	switch dt {
	case Int4, Uint4:
		for i := range out {
			out[i] = nibble(byte(vals[i/2]), i, dt)
		}
		return
	}
	for i, v := range vals {
		switch dt {
		case Int32:
			out[i] = float64(v)
		case Int16:
			out[i] = float64(int16(v))
		case Uint16:
			out[i] = float64(uint16(v))
		case Int8:
			out[i] = float64(int8(v))
		case Uint8:
			out[i] = float64(uint8(v))
		case Bool:
			out[i] = b2f(v != 0)
		case Float16:
			out[i] = halfToFloat64(uint16(v))
		case Bfloat16:
			out[i] = float64(math.Float32frombits(uint32(uint16(v)) << 16))
		}
	}
}

// nibble extracts element i of a packed 4-bit tensor from its byte b.
func nibble(b byte, i int, dt DataType) float64 {
	v := b & 0xf
	if i%2 == 1 {
		v = b >> 4
	}
	if dt == Int4 && v >= 8 {
		return float64(int(v) - 16)
	}
	return float64(v)
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// fromRaw converts n little-endian elements of type dt; the caller has
// checked len(raw) == dt.rawBytes(n).
func fromRaw(raw []byte, dt DataType, n int) []float64 {
	out := make([]float64, n)
	le := binary.LittleEndian
	for i := range out {
		switch dt {
		case Int4, Uint4:
			out[i] = nibble(raw[i/2], i, dt)
		case Int8:
			out[i] = float64(int8(raw[i]))
		case Uint8:
			out[i] = float64(raw[i])
		case Bool:
			out[i] = b2f(raw[i] != 0)
		case Int16:
			out[i] = float64(int16(le.Uint16(raw[2*i:])))
		case Uint16:
			out[i] = float64(le.Uint16(raw[2*i:]))
		case Float16:
			out[i] = halfToFloat64(le.Uint16(raw[2*i:]))
		case Bfloat16:
			out[i] = float64(math.Float32frombits(uint32(le.Uint16(raw[2*i:])) << 16))
		case Int32:
			out[i] = float64(int32(le.Uint32(raw[4*i:])))
		case Uint32:
			out[i] = float64(le.Uint32(raw[4*i:]))
		case Float:
			out[i] = float64(math.Float32frombits(le.Uint32(raw[4*i:])))
		case Int64:
			out[i] = float64(int64(le.Uint64(raw[8*i:])))
		case Uint64:
			out[i] = float64(le.Uint64(raw[8*i:]))
		case Double:
			out[i] = math.Float64frombits(le.Uint64(raw[8*i:]))
		}
	}
	return out
}

// external reads the want bytes of an external-data tensor. The location
// must name a file inside d.dir; os.Root also refuses symbolic links that
// lead out of it.
func (d *decoder) external(tp *onnxpb.TensorProto, dt DataType, shape []int, want int64) ([]byte, error) {
	var loc string
	offset, length := int64(0), int64(-1)
	for _, kv := range tp.ExternalData {
		var err error
		switch kv.GetKey() {
		case "location":
			loc = kv.GetValue()
		case "offset":
			offset, err = strconv.ParseInt(kv.GetValue(), 10, 64)
			if err == nil && offset < 0 {
				err = fmt.Errorf("negative")
			}
		case "length":
			length, err = strconv.ParseInt(kv.GetValue(), 10, 64)
			if err == nil && length < 0 {
				err = fmt.Errorf("negative")
			}
		}
		if err != nil {
			return nil, malformed("external data %s %q is not a valid byte count", kv.GetKey(), kv.GetValue())
		}
	}
	if loc == "" {
		return nil, malformed("external data has no location")
	}
	if !filepath.IsLocal(filepath.FromSlash(loc)) {
		return nil, malformed("external data location %q is outside the model directory", loc)
	}
	if d.dir == "" {
		return nil, unsupported("external data %q needs the model's directory: use Load, or pass the directory to Parse", loc)
	}
	if d.root == nil && d.rootErr == nil {
		d.root, d.rootErr = os.OpenRoot(d.dir)
	}
	if d.rootErr != nil {
		return nil, fmt.Errorf("external data %q: %w", loc, d.rootErr)
	}
	f, err := d.root.Open(filepath.FromSlash(loc))
	if err != nil {
		return nil, fmt.Errorf("external data %q: %w", loc, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("external data %q: %w", loc, err)
	}
	size := fi.Size()
	if offset > size {
		return nil, malformed("external data %q: offset %d is past the end of the %d-byte file", loc, offset, size)
	}
	if length < 0 {
		length = size - offset
	}
	if length > size-offset {
		return nil, malformed("external data %q: %d bytes at offset %d, but the file has %d bytes", loc, length, offset, size)
	}
	if length != want {
		return nil, malformed("external data %q has %d bytes for shape %v of %v; want %d", loc, length, shape, dt, want)
	}
	buf := make([]byte, length)
	if _, err := io.ReadFull(io.NewSectionReader(f, offset, length), buf); err != nil {
		return nil, fmt.Errorf("external data %q: %w", loc, err)
	}
	return buf, nil
}
