package floatconv

// To32 sets dst[i] = float32(src[i]) for i < len(src) (dst at least as
// long).
func To32(dst []float32, src []float64) {
	dst = dst[:len(src)]
	n := 0
	if useAVXConvert {
		n = len(src) &^ 15
		if n > 0 {
			f64to32AVX(&dst[0], &src[0], n)
		}
	}
	to32Go(dst[n:], src[n:])
}

// To64 sets dst[i] = float64(src[i]) for i < len(src) (dst at least as
// long).
func To64(dst []float64, src []float32) {
	dst = dst[:len(src)]
	n := 0
	if useAVXConvert {
		n = len(src) &^ 15
		if n > 0 {
			f32to64AVX(&dst[0], &src[0], n)
		}
	}
	to64Go(dst[n:], src[n:])
}

func to32Go(dst []float32, src []float64) {
	for i, v := range src {
		dst[i] = float32(v)
	}
}

func to64Go(dst []float64, src []float32) {
	for i, v := range src {
		dst[i] = float64(v)
	}
}
