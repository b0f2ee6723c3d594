//go:build amd64 && !purego

package floatconv

import "golang.org/x/sys/cpu"

// useAVXConvert selects the assembly conversions. Tests set it to false to
// run the Go twins on the same inputs.
var useAVXConvert = cpu.X86.HasAVX

// f64to32AVX converts n float64 values (n > 0, a multiple of 16) at src to
// float32 at dst:
//
//	for i := 0; i < n; i++ { dst[i] = float32(src[i]) }
//
//go:noescape
func f64to32AVX(dst *float32, src *float64, n int)

// f32to64AVX converts n float32 values (n > 0, a multiple of 16) at src to
// float64 at dst:
//
//	for i := 0; i < n; i++ { dst[i] = float64(src[i]) }
//
//go:noescape
func f32to64AVX(dst *float64, src *float32, n int)
