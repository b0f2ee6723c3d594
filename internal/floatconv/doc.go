// Package floatconv converts between float64 and float32 slices: the
// operand copies and results of the float engine's float32 matrix
// products (package network, whose cgo build cannot hold Go assembly).
//
// On amd64 with AVX the conversions run in assembly (convert_amd64.s),
// four values per instruction, sixteen per iteration; the Go loops
// (to32Go, to64Go) are the reference, the twin of purego builds and other
// CPUs, and the tails. Both round float64 to float32 to nearest even, as
// Go's float32(v) does; float32 to float64 is exact. So results are
// identical bit for bit with or without the assembly (tested, with
// useAVXConvert switched off).
package floatconv
