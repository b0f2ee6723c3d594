//go:build !amd64 || purego

package kernels

func expAsm(dst, src []float64) int { return 0 }

func sigmoidAsm(dst, src []float64) int { return 0 }

func sigmoidPairAsm(s, c, src []float64) int { return 0 }

var useExpAVX512, useExpAVX2FMA, mathUsesFMA bool
