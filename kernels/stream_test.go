package kernels

import (
	"errors"
	"math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"testing"
)

func (p streamPath) String() string {
	return [...]string{"go", "go-avx2", "avx2", "avx-vnni", "avx512-vnni"}[p]
}

// streamPaths lists the stream kernel families this build and CPU can run,
// the two Go twins included.
func streamPaths() []streamPath {
	ps := []streamPath{streamGo, streamGoAVX2}
	if useAVX2 {
		ps = append(ps, streamAVX2)
	}
	if useAVXVNNI && useAVX2 {
		ps = append(ps, streamAVXVNNI)
	}
	if useVNNI {
		ps = append(ps, streamAVX512)
	}
	return ps
}

// checkStream runs w on a with every path and compares with refGEMM.
func checkStreamRef(t *testing.T, a []uint8, m, k int, z uint8, w []int8, n, bits, threads int) {
	t.Helper()
	sw, err := PackStream(w, n, k, bits)
	if err != nil {
		t.Fatal(err)
	}
	want := refGEMM(a, m, k, z, w, n)
	for _, p := range streamPaths() {
		got := make([]int32, m*n)
		runStream(a, m, z, sw, threads, p, func(p0, gp int, c []int32) {
			cols := min(gp*tileN, n-p0*tileN)
			for i := 0; i < m; i++ {
				copy(got[i*n+p0*tileN:i*n+p0*tileN+cols], c[i*gp*tileN:])
			}
		})
		for i, v := range got {
			if int64(v) != want[i] {
				t.Fatalf("%s bits=%s m=%d n=%d k=%d z=%d threads=%d: dst[%d][%d] = %d; want %d",
					p, bitsName(bits), m, n, k, z, threads, i/n, i%n, v, want[i])
			}
		}
	}
}

// TestGEMMStreamShapes covers every row count the kernels take (1..16,
// so one to four AVX-512 calls with 1 to 4 rows), channel tails (N not a
// multiple of 16, groups of four panels plus single panels) and K tails
// (K not a multiple of a block), with random values over the full ranges.
func TestGEMMStreamShapes(t *testing.T) {
	rng := rand.New(rand.NewPCG(31, 32))
	ns := []int{1, 15, 16, 17, 48, 64, 65, 100, 130}
	ks := []int{1, 3, 4, 5, 8, 31, 32, 33, 100, 257, 1000}
	for _, bits := range allBits {
		for m := 1; m <= 16; m++ {
			n, k := ns[rng.IntN(len(ns))], ks[rng.IntN(len(ks))]
			a := make([]uint8, m*k)
			for i := range a {
				a[i] = uint8(rng.IntN(256))
			}
			checkStreamRef(t, a, m, k, uint8(rng.IntN(256)), randWeights(rng, n, k, bits), n, bits, 1+rng.IntN(3))
		}
	}
}

// TestGEMMStreamChunks uses enough rows and K that the weights are cut into
// chunks (streamChunkBytes) reused by several row blocks.
func TestGEMMStreamChunks(t *testing.T) {
	rng := rand.New(rand.NewPCG(33, 34))
	m, n, k := 11, 80, 9000
	a := make([]uint8, m*k)
	for i := range a {
		a[i] = uint8(rng.IntN(256))
	}
	for _, bits := range allBits {
		checkStreamRef(t, a, m, k, 131, randWeights(rng, n, k, bits), n, bits, 2)
	}
}

// TestGEMMStreamExtremes: activations 255 (or 0 with zero point 255)
// against all-minimum and all-maximum weights, and alternating extremes,
// for K across block boundaries and K = MaxK, where |result| =
// MaxK*255*128 is within 2^23 of the int32 limit (and the AVX2 8-bit sum
// of a*(w+128) wraps int32: the result must still be exact).
func TestGEMMStreamExtremes(t *testing.T) {
	for _, bits := range allBits {
		lo, hi, _, _ := weightRange(bits)
		for _, k := range []int{1, 7, 32, 33, 4099, MaxK} {
			m, n := 5, 33
			if k == MaxK {
				m, n = 2, 17
			}
			extremeCases(lo, hi, m, n, k, func(a []uint8, z uint8, w []int8, threads int) {
				checkStreamRef(t, a, m, k, z, w, n, bits, threads)
			})
		}
	}
}

// TestStreamKernelsVsTwins compares each assembly kernel call with its Go
// twin on random accumulators (so that the int32 additions wrap) and
// random packed bytes, every row count and both panel counts.
func TestStreamKernelsVsTwins(t *testing.T) {
	rng := rand.New(rand.NewPCG(35, 36))
	for _, p := range streamPaths() {
		if p == streamGo || p == streamGoAVX2 {
			continue
		}
		twin := streamGo
		if p == streamAVX2 {
			twin = streamGoAVX2
		}
		maxRows := 1
		if p == streamAVX512 {
			maxRows = streamRows
		}
		for _, bits := range []int{8, 4, 2, 1} {
			q, _, _, _ := streamFormat(bits)
			for _, gp := range []int{streamGroup, 1} {
				for _, blocks := range []int{1, 2, 3, 17} {
					for rows := 1; rows <= maxRows; rows++ {
						astride := blocks*4*q + 4*rng.IntN(3)
						a := make([]uint8, rows*astride)
						for i := range a {
							a[i] = uint8([]int{0, 255, rng.IntN(256)}[rng.IntN(3)])
						}
						w := make([]uint8, blocks*gp*streamBlockBytes(bits))
						for i := range w {
							w[i] = uint8(rng.Uint32())
						}
						got := make([]int32, rows*gp*tileN)
						for i := range got {
							got[i] = int32(rng.Uint32())
						}
						want := append([]int32(nil), got...)
						streamCall(p, bits, rows, gp, a, astride, w, got, blocks)
						streamCall(twin, bits, rows, gp, a, astride, w, want, blocks)
						for i := range got {
							if got[i] != want[i] {
								t.Fatalf("%s bits=%d panels=%d blocks=%d rows=%d: c[%d] = %d; want %d (twin %s)", p, bits, gp, blocks, rows, i, got[i], want[i], twin)
							}
						}
					}
				}
			}
		}
	}
}

// TestStreamPairKernelsVsTwin compares the AVX-512 kernels of one row
// against two groups (streamPairCall) with two calls of the Go twin on
// random accumulators (so that the int32 additions wrap) and random packed
// bytes, with the second group right after the first or further on.
func TestStreamPairKernelsVsTwin(t *testing.T) {
	if !useVNNI {
		t.Skip("AVX-512 VNNI kernels not in use")
	}
	rng := rand.New(rand.NewPCG(55, 56))
	for _, bits := range []int{8, 4, 2, 1} {
		q, _, _, _ := streamFormat(bits)
		for _, blocks := range []int{1, 2, 3, 17} {
			a := make([]uint8, blocks*4*q)
			for i := range a {
				a[i] = uint8([]int{0, 255, rng.IntN(256)}[rng.IntN(3)])
			}
			gbytes := blocks * streamGroup * streamBlockBytes(bits)
			gstride := gbytes + 64*rng.IntN(3)
			w := make([]uint8, gstride+gbytes)
			for i := range w {
				w[i] = uint8(rng.IntN(256))
			}
			got := make([]int32, 2*streamGroup*tileN)
			for i := range got {
				got[i] = int32(rng.Uint32())
			}
			want := append([]int32(nil), got...)
			streamGoRun(bits, 1, streamGroup, a, 0, w, want[:streamGroup*tileN], blocks)
			streamGoRun(bits, 1, streamGroup, a, 0, w[gstride:], want[streamGroup*tileN:], blocks)
			streamPairCall(bits, a, gstride, w, got, blocks)
			for i := range got {
				if got[i] != want[i] {
					t.Fatalf("bits=%d blocks=%d gstride=%d: c[%d] = %d; want %d", bits, blocks, gstride, i, got[i], want[i])
				}
			}
		}
	}
}

// TestStreamQuadKernelVsTwin compares the AVX-512 kernel of one row of
// 8-bit weights against four groups (streamQuadCall) with four calls of
// the Go twin on random accumulators (so that the int32 additions wrap),
// random and extreme packed bytes and activations, with the groups right
// after one another or further apart.
func TestStreamQuadKernelVsTwin(t *testing.T) {
	if !useVNNI {
		t.Skip("AVX-512 VNNI kernels not in use")
	}
	rng := rand.New(rand.NewPCG(57, 58))
	q, _, _, _ := streamFormat(8)
	for _, blocks := range []int{1, 2, 3, 17} {
		a := make([]uint8, blocks*4*q)
		for i := range a {
			a[i] = uint8([]int{0, 255, rng.IntN(256)}[rng.IntN(3)])
		}
		gbytes := blocks * streamGroup * streamBlockBytes(8)
		gstride := gbytes + 64*rng.IntN(3)
		w := make([]uint8, 3*gstride+gbytes)
		for i := range w {
			w[i] = uint8([]int{0x80, 0x7f, rng.IntN(256)}[rng.IntN(3)])
		}
		got := make([]int32, 4*streamGroup*tileN)
		for i := range got {
			got[i] = int32(rng.Uint32())
		}
		want := append([]int32(nil), got...)
		for g := 0; g < 4; g++ {
			streamGoRun(8, 1, streamGroup, a, 0, w[g*gstride:], want[g*streamGroup*tileN:(g+1)*streamGroup*tileN], blocks)
		}
		streamQuadCall(a, gstride, w, got, blocks)
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("blocks=%d gstride=%d: c[%d] = %d; want %d", blocks, gstride, i, got[i], want[i])
			}
		}
	}
}

// TestGEMMStreamDispatch: GEMMStream runs the kernels the flags select,
// and every setting gives the reference result.
func TestGEMMStreamDispatch(t *testing.T) {
	type flags struct{ avx2, avxvnni, vnni bool }
	want := map[flags]streamPath{
		{false, false, false}: streamGo,
		{true, false, false}:  streamAVX2,
		{true, true, false}:   streamAVXVNNI,
		{true, true, true}:    streamAVX512,
		{true, false, true}:   streamAVX512,
	}
	a2, av, v := useAVX2, useAVXVNNI, useVNNI
	defer func() { useAVX2, useAVXVNNI, useVNNI = a2, av, v }()
	rng := rand.New(rand.NewPCG(37, 38))
	m, n, k := 3, 70, 99
	a := make([]uint8, m*k)
	for i := range a {
		a[i] = uint8(rng.IntN(256))
	}
	w := randWeights(rng, n, k, 4)
	ref := refGEMM(a, m, k, 9, w, n)
	sw, err := PackStream(w, n, k, 4)
	if err != nil {
		t.Fatal(err)
	}
	for f, p := range want {
		if (f.avx2 && !a2) || (f.avxvnni && !av) || (f.vnni && !v) {
			continue // not available here
		}
		useAVX2, useAVXVNNI, useVNNI = f.avx2, f.avxvnni, f.vnni
		if got := streamDispatch(); got != p {
			t.Errorf("flags %+v: streamDispatch() = %s; want %s", f, got, p)
		}
		got := make([]int32, m*n)
		if err := GEMMStream(got, a, m, k, 9, sw, Options{}); err != nil {
			t.Fatal(err)
		}
		for i := range got {
			if int64(got[i]) != ref[i] {
				t.Fatalf("flags %+v: dst[%d] = %d; want %d", f, i, got[i], ref[i])
			}
		}
	}
}

func TestPackStreamErrors(t *testing.T) {
	cases := []struct {
		w       []int8
		n, k, b int
	}{
		{[]int8{8}, 1, 1, 4},
		{[]int8{-9}, 1, 1, 4},
		{[]int8{2}, 1, 1, 2},
		{[]int8{0}, 1, 1, 1},
		{[]int8{2}, 1, 1, Ternary},
		{[]int8{1}, 1, 1, 3},
		{[]int8{1, 1}, 1, 1, 8},
		{nil, 0, 1, 8},
	}
	for _, c := range cases {
		if _, err := PackStream(c.w, c.n, c.k, c.b); !errors.Is(err, ErrWeights) {
			t.Errorf("PackStream(%v, %d, %d, %d): got %v; want an error wrapping ErrWeights", c.w, c.n, c.k, c.b, err)
		}
	}
	sw, err := PackStream([]int8{1, 2, 3, 4}, 2, 2, 8)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		dst, a, m, k int
	}{{2, 2, 1, 3}, {2, 3, 1, 2}, {3, 2, 1, 2}, {0, 0, 0, 2}} {
		if err := GEMMStream(make([]int32, c.dst), make([]uint8, c.a), c.m, c.k, 0, sw, Options{}); !errors.Is(err, ErrShape) {
			t.Errorf("GEMMStream(dst %d, a %d, m=%d, k=%d): got %v; want an error wrapping ErrShape", c.dst, c.a, c.m, c.k, err)
		}
	}
	if err := GEMMStream(nil, nil, 1, 1, 0, nil, Options{}); !errors.Is(err, ErrShape) {
		t.Errorf("nil weights: got %v; want ErrShape", err)
	}
}

// TestStreamPackedBytes: the packed size is N*K*b/8 for whole panels and
// blocks (2 bits for ternary).
func TestStreamPackedBytes(t *testing.T) {
	for _, bits := range allBits {
		n, k := 64, 256
		sw, err := packAny2Stream(make([]int8, n*k), n, k, bits)
		if err != nil {
			t.Fatal(err)
		}
		b := bits
		if bits == Ternary {
			b = 2
		}
		if got, want := sw.PackedBytes(), n*k*b/8; got != want {
			t.Errorf("bits=%s: PackedBytes() = %d; want %d", bitsName(bits), got, want)
		}
	}
}

func packAny2Stream(w []int8, n, k, bits int) (*Stream, error) {
	if bits == 1 {
		for i := range w {
			if w[i] == 0 {
				w[i] = 1
			}
		}
	}
	return PackStream(w, n, k, bits)
}

// TestGEMMStreamRequant checks the fused epilogue against the int64
// reference requantized with refRound, for per-tensor and per-channel
// parameters, every dispatch setting this CPU has, and rows beyond one
// 6-row epilogue tile.
func TestGEMMStreamRequant(t *testing.T) {
	a2, av, v := useAVX2, useAVXVNNI, useVNNI
	defer func() { useAVX2, useAVXVNNI, useVNNI = a2, av, v }()
	settings := [][3]bool{{false, false, false}, {a2, false, false}, {a2, av, false}, {a2, av, v}}
	rng := rand.New(rand.NewPCG(39, 40))
	for _, s := range settings {
		useAVX2, useAVXVNNI, useVNNI = s[0], s[1], s[2]
		for _, bits := range allBits {
			for _, perTensor := range []bool{true, false} {
				m, n, k := 1+rng.IntN(16), 1+rng.IntN(90), 1+rng.IntN(300)
				a := make([]uint8, m*k)
				for i := range a {
					a[i] = uint8(rng.IntN(256))
				}
				w := randWeights(rng, n, k, bits)
				z := uint8(rng.IntN(256))
				rq := randRequant(rng, n, perTensor)
				sw, err := PackStream(w, n, k, bits)
				if err != nil {
					t.Fatal(err)
				}
				dst := make([]uint8, m*n)
				if err := GEMMStreamRequant(dst, a, m, k, z, sw, rq, Options{Threads: 2}); err != nil {
					t.Fatal(err)
				}
				want := refRequant(refGEMM(a, m, k, z, w, n), n, rq)
				for i, got := range dst {
					if got != want[i] {
						t.Fatalf("flags %v bits=%s m=%d n=%d k=%d: dst[%d][%d] = %d; want %d", s, bitsName(bits), m, n, k, i/n, i%n, got, want[i])
					}
				}
			}
		}
	}
	sw, _ := PackStream([]int8{1, 2}, 2, 1, 8)
	if err := GEMMStreamRequant(make([]uint8, 2), []uint8{1}, 1, 1, 0, sw, &Requant{Mult: []int32{1, 2, 3}, Shift: []int{0, 0, 0}}, Options{}); !errors.Is(err, ErrRequant) {
		t.Errorf("three multipliers for two channels: got %v; want ErrRequant", err)
	}
}

// streamISAChildEnv marks the child process of TestStreamISASwitchedOff;
// its value is the StreamISA the child must see.
const streamISAChildEnv = "MPSEARCH_KERNELS_STREAM_ISA_CHILD"

// TestStreamISASwitchedOff switches the stream kernels' instruction sets
// off through the user's own switch, GODEBUG (read by golang.org/x/sys/cpu
// at start-up, so in a child process), and checks that StreamISA follows
// and that the kernels then selected are exact.
func TestStreamISASwitchedOff(t *testing.T) {
	if want := os.Getenv(streamISAChildEnv); want != "" {
		if got := StreamISA(); got != want {
			t.Fatalf("StreamISA() = %q; want %q", got, want)
		}
		rng := rand.New(rand.NewPCG(45, 46))
		m, n, k := 2, 40, 77
		a := make([]uint8, m*k)
		for i := range a {
			a[i] = uint8(rng.IntN(256))
		}
		for _, bits := range allBits {
			w := randWeights(rng, n, k, bits)
			sw, err := PackStream(w, n, k, bits)
			if err != nil {
				t.Fatal(err)
			}
			got := make([]int32, m*n)
			if err := GEMMStream(got, a, m, k, 5, sw, Options{}); err != nil {
				t.Fatal(err)
			}
			for i, v := range refGEMM(a, m, k, 5, w, n) {
				if int64(got[i]) != v {
					t.Fatalf("%s bits=%s: dst[%d] = %d; want %d", want, bitsName(bits), i, got[i], v)
				}
			}
		}
		return
	}
	if !useVNNI || !useAVXVNNI {
		t.Skip("needs a CPU with both AVX-512 VNNI and AVX-VNNI (and the assembly build)")
	}
	for _, c := range []struct{ godebug, want string }{
		{"cpu.avx512f=off", ISAAVXVNNI},
		{"cpu.avx512f=off,cpu.avxvnni=off", ISAAVX2},
		{"cpu.avx512f=off,cpu.avx2=off", ISAGo},
	} {
		cmd := exec.Command(os.Args[0], "-test.run", "^TestStreamISASwitchedOff$", "-test.count=1")
		cmd.Env = append(os.Environ(), "GODEBUG="+c.godebug, streamISAChildEnv+"="+c.want)
		if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "PASS") {
			t.Errorf("GODEBUG=%s: child failed (%v):\n%s", c.godebug, err, out)
		}
	}
}

// FuzzGEMMStream compares every stream path with the int64 reference on
// fuzzed shapes (m up to 20, N and K tails) and values.
func FuzzGEMMStream(f *testing.F) {
	f.Add(uint8(0), uint8(17), uint16(33), uint8(0), uint8(7), []byte{255, 0, 128, 1})
	f.Add(uint8(4), uint8(63), uint16(65), uint8(3), uint8(255), []byte{255})
	f.Add(uint8(15), uint8(80), uint16(300), uint8(4), uint8(0), []byte{0, 255, 255, 0, 7})
	f.Fuzz(func(t *testing.T, m8, n8 uint8, k16 uint16, bsel, z uint8, data []byte) {
		m, n, k := 1+int(m8)%20, 1+int(n8)%140, 1+int(k16)%700
		bits := allBits[int(bsel)%len(allBits)]
		a, w := fuzzOperands(data, m, n, k, bits)
		checkStreamRef(t, a, m, k, z, w, n, bits, 1+int(z)%3)
	})
}

// TestGEMMStreamThreadsOneRow: one activation row on 1, 2 and 3 threads,
// with few output groups (K split over the threads, splitK) and many
// (groups split), every path and width, equals the int64 reference; the
// requantized outputs of GEMMStreamRequant equal each other and the
// reference for every thread count.
func TestGEMMStreamThreadsOneRow(t *testing.T) {
	rng := rand.New(rand.NewPCG(47, 48))
	defer func(q bool) { useStreamQuads = q }(useStreamQuads)
	// {300, 4099}, {520, 3001} and {1100, 2000}: several full groups, run
	// four (8 bits) or two at a time by the AVX-512 one-row path
	// (streamGroupsRun), over whole K and split K, with groups left over
	// and tail panels next to them.
	for _, nk := range [][2]int{{10, 5000}, {70, 9001}, {300, 4099}, {520, 3001}, {1100, 2000}, {33, 100}} {
		n, k := nk[0], nk[1]
		a := make([]uint8, k)
		for i := range a {
			a[i] = uint8(rng.IntN(256))
		}
		for _, bits := range allBits {
			w := randWeights(rng, n, k, bits)
			z := uint8(rng.IntN(256))
			rq := randRequant(rng, n, false)
			want := refRequant(refGEMM(a, 1, k, z, w, n), n, rq)
			sw, err := PackStream(w, n, k, bits)
			if err != nil {
				t.Fatal(err)
			}
			for run := 0; run < 6; run++ {
				threads := 1 + run%3
				useStreamQuads = run >= 3 // two or four streams for 8 bits
				checkStreamRef(t, a, 1, k, z, w, n, bits, threads)
				got := make([]uint8, n)
				if err := GEMMStreamRequant(got, a, 1, k, z, sw, rq, Options{Threads: threads}); err != nil {
					t.Fatal(err)
				}
				for i := range got {
					if got[i] != want[i] {
						t.Fatalf("n=%d k=%d bits=%s threads=%d quads=%v: dst[%d] = %d; want %d", n, k, bitsName(bits), threads, useStreamQuads, i, got[i], want[i])
					}
				}
			}
		}
	}
}

// TestGEMMStreamScratch runs GEMMStream and GEMMStreamRequant through one
// Scratch (shared with GEMMRequant) on growing and shrinking shapes,
// checks them against the reference, and that a call with a grown Scratch
// on one thread allocates nothing.
func TestGEMMStreamScratch(t *testing.T) {
	rng := rand.New(rand.NewPCG(49, 50))
	var sc Scratch
	opt := Options{Threads: 1, Scratch: &sc}
	for _, sh := range [][4]int{{1, 300, 70, 4}, {16, 1000, 130, 8}, {3, 33, 17, Ternary}, {1, 5000, 64, 1}, {7, 64, 20, 2}} {
		m, k, n, bits := sh[0], sh[1], sh[2], sh[3]
		a := make([]uint8, m*k)
		for i := range a {
			a[i] = uint8(rng.IntN(256))
		}
		w := randWeights(rng, n, k, bits)
		z := uint8(rng.IntN(256))
		rq := randRequant(rng, n, false)
		sw, err := PackStream(w, n, k, bits)
		if err != nil {
			t.Fatal(err)
		}
		ref := refGEMM(a, m, k, z, w, n)
		acc := make([]int32, m*n)
		got := make([]uint8, m*n)
		if err := GEMMStream(acc, a, m, k, z, sw, opt); err != nil {
			t.Fatal(err)
		}
		if err := GEMMStreamRequant(got, a, m, k, z, sw, rq, opt); err != nil {
			t.Fatal(err)
		}
		want := refRequant(ref, n, rq)
		for i := range got {
			if int64(acc[i]) != ref[i] || got[i] != want[i] {
				t.Fatalf("shape %v: dst[%d] = %d, requantized %d; want %d, %d", sh, i, acc[i], got[i], ref[i], want[i])
			}
		}
		for name, f := range map[string]func(){
			"GEMMStream":        func() { _ = GEMMStream(acc, a, m, k, z, sw, opt) },
			"GEMMStreamRequant": func() { _ = GEMMStreamRequant(got, a, m, k, z, sw, rq, opt) },
		} {
			if allocs := testing.AllocsPerRun(10, f); allocs != 0 {
				t.Errorf("shape %v: %s with a Scratch: got %g allocations per call; want 0", sh, name, allocs)
			}
		}
	}
}
