package onnx

import (
	"fmt"
	"math"
)

// ONNX data types this package knows by name but cannot convert to float64.
const (
	complex64Type  DataType = 14
	complex128Type DataType = 15
	float8e4m3fn   DataType = 17
	float8e4m3fnuz DataType = 18
	float8e5m2     DataType = 19
	float8e5m2fnuz DataType = 20
	float4e2m1     DataType = 23
	float8e8m0     DataType = 24
	uint2Type      DataType = 25
	int2Type       DataType = 26
)

var dataTypeNames = map[DataType]string{
	Undefined:      "UNDEFINED",
	Float:          "FLOAT",
	Uint8:          "UINT8",
	Int8:           "INT8",
	Uint16:         "UINT16",
	Int16:          "INT16",
	Int32:          "INT32",
	Int64:          "INT64",
	String:         "STRING",
	Bool:           "BOOL",
	Float16:        "FLOAT16",
	Double:         "DOUBLE",
	Uint32:         "UINT32",
	Uint64:         "UINT64",
	complex64Type:  "COMPLEX64",
	complex128Type: "COMPLEX128",
	Bfloat16:       "BFLOAT16",
	float8e4m3fn:   "FLOAT8E4M3FN",
	float8e4m3fnuz: "FLOAT8E4M3FNUZ",
	float8e5m2:     "FLOAT8E5M2",
	float8e5m2fnuz: "FLOAT8E5M2FNUZ",
	Uint4:          "UINT4",
	Int4:           "INT4",
	float4e2m1:     "FLOAT4E2M1",
	float8e8m0:     "FLOAT8E8M0",
	uint2Type:      "UINT2",
	int2Type:       "INT2",
}

// String returns the ONNX name of the type, such as "FLOAT" or "INT4".
func (t DataType) String() string {
	if s, ok := dataTypeNames[t]; ok {
		return s
	}
	return fmt.Sprintf("DataType(%d)", int32(t))
}

// known reports whether t is a data type defined by ONNX.
func (t DataType) known() bool {
	_, ok := dataTypeNames[t]
	return ok
}

// Supported reports whether tensors of type t can be read into and written
// from float64 tensors by this package.
func (t DataType) Supported() bool {
	return t.bits() > 0
}

// bits returns the storage width of one element in raw_data, or 0 when the
// type is not supported.
func (t DataType) bits() int {
	switch t {
	case Int4, Uint4:
		return 4
	case Int8, Uint8, Bool:
		return 8
	case Int16, Uint16, Float16, Bfloat16:
		return 16
	case Int32, Uint32, Float:
		return 32
	case Int64, Uint64, Double:
		return 64
	}
	return 0
}

// rawBytes returns the length of raw_data holding n elements of type t.
func (t DataType) rawBytes(n int64) int64 {
	if t.bits() == 4 {
		return (n + 1) / 2
	}
	return n * int64(t.bits()/8)
}

// intRange returns the range of an integer type; ok is false for the
// floating-point types.
func (t DataType) intRange() (lo, hi float64, ok bool) {
	switch t {
	case Bool:
		return 0, 1, true
	case Int4:
		return -8, 7, true
	case Uint4:
		return 0, 15, true
	case Int8:
		return math.MinInt8, math.MaxInt8, true
	case Uint8:
		return 0, math.MaxUint8, true
	case Int16:
		return math.MinInt16, math.MaxInt16, true
	case Uint16:
		return 0, math.MaxUint16, true
	case Int32:
		return math.MinInt32, math.MaxInt32, true
	case Uint32:
		return 0, math.MaxUint32, true
	case Int64:
		// float64(math.MaxInt64) rounds up to 2^63; see encodeValues.
		return math.MinInt64, 1 << 63, true
	case Uint64:
		return 0, 1 << 64, true
	}
	return 0, 0, false
}

var attrTypeNames = map[AttrType]string{
	AttrFloat:   "FLOAT",
	AttrInt:     "INT",
	AttrString:  "STRING",
	AttrTensor:  "TENSOR",
	AttrGraph:   "GRAPH",
	AttrFloats:  "FLOATS",
	AttrInts:    "INTS",
	AttrStrings: "STRINGS",
	AttrTensors: "TENSORS",
	AttrGraphs:  "GRAPHS",
	11:          "SPARSE_TENSOR",
	12:          "SPARSE_TENSORS",
	13:          "TYPE_PROTO",
	14:          "TYPE_PROTOS",
}

// String returns the ONNX name of the attribute kind, such as "INTS".
func (t AttrType) String() string {
	if s, ok := attrTypeNames[t]; ok {
		return s
	}
	return fmt.Sprintf("AttrType(%d)", int32(t))
}

// halfToFloat64 converts IEEE 754 binary16 bits to a float64 (exactly).
func halfToFloat64(h uint16) float64 {
	sign := 1.0
	if h&0x8000 != 0 {
		sign = -1
	}
	exp := int(h>>10) & 0x1f
	frac := float64(h & 0x3ff)
	switch exp {
	case 0: // zero or subnormal: frac * 2^-24
		return sign * math.Ldexp(frac, -24)
	case 0x1f:
		if frac != 0 {
			return math.NaN()
		}
		return sign * math.Inf(1)
	}
	return sign * math.Ldexp(1024+frac, exp-25)
}

// float64ToHalf returns the binary16 bits of v when v is exactly
// representable in binary16 (NaN maps to a quiet NaN); ok is false otherwise.
func float64ToHalf(v float64) (h uint16, ok bool) {
	switch {
	case math.IsNaN(v):
		return 0x7e00, true
	case math.IsInf(v, 1):
		return 0x7c00, true
	case math.IsInf(v, -1):
		return 0xfc00, true
	}
	var sign uint16
	if math.Signbit(v) {
		sign = 0x8000
		v = -v
	}
	if v == 0 {
		return sign, true
	}
	frac, exp := math.Frexp(v) // v = frac * 2^exp, frac in [0.5, 1)
	e := exp - 1               // v = (2*frac) * 2^e, 2*frac in [1, 2)
	switch {
	case e > 15:
		return 0, false
	case e >= -14: // normal: mantissa has 10 fraction bits
		m := math.Ldexp(2*frac, 10) - 1024
		if m != math.Trunc(m) {
			return 0, false
		}
		return sign | uint16(e+15)<<10 | uint16(m), true
	}
	// Subnormal: v = m * 2^-24 with integer m < 1024.
	m := math.Ldexp(v, 24)
	if m != math.Trunc(m) || m >= 1024 {
		return 0, false
	}
	return sign | uint16(m), true
}
