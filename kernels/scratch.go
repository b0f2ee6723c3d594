package kernels

// Scratch is the working memory of GEMM, GEMMRequant, GEMMStream and
// GEMMStreamRequant calls made one at a time (Options.Scratch): the packed
// (or padded) activations, the accumulators of the one-thread path, the
// requantization panels and the call's state.
// The zero value is ready to use; buffers grow to the largest call and are
// kept.
type Scratch struct {
	g   gemmJob
	a8  []uint8
	a16 []int16
	acc []tile
	st  streamJob
}

// job returns the state of a call: the Scratch's own, or a new one
// without a Scratch.
func (s *Scratch) job() *gemmJob {
	if s == nil {
		return &gemmJob{}
	}
	s.g.owner = s
	return &s.g
}

// done releases the references a call holds to its caller's memory.
func (s *Scratch) done(g *gemmJob) {
	g.dst32, g.dst8, g.a, g.w, g.rqp = nil, nil, nil, nil, nil
}

// growSlice returns (*b)[:n], reallocating *b when it is too short.
func growSlice[T any](b *[]T, n int) []T {
	if cap(*b) < n {
		*b = make([]T, n)
	}
	*b = (*b)[:n]
	return *b
}
