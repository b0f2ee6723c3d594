//go:build !amd64 || purego

package floatconv

// useAVXConvert is always false without the assembly; it exists so tests
// can set it.
var useAVXConvert = false

func f64to32AVX(dst *float32, src *float64, n int) { panic("floatconv: no assembly conversions") }

func f32to64AVX(dst *float64, src *float32, n int) { panic("floatconv: no assembly conversions") }
