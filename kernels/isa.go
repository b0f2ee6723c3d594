package kernels

// The instruction sets ISA reports.
const (
	ISAVNNI = "avx512_vnni" // AVX-512 VNNI kernels (VPDPBUSD) for every bit width
	ISAAVX2 = "avx2"        // AVX2 kernels (VPMADDWD, VPMADDUBSW, VPSHUFB tables)
	ISAGo   = "go"          // the pure-Go twins (purego builds, other architectures)
	// ISAAVXVNNI is the VEX-encoded 256-bit VPDPBUSD of CPUs with VNNI but
	// not AVX-512; only the stream kernels use it (StreamISA).
	ISAAVXVNNI = "avx_vnni"
)

// ISA names the kernels GEMM and GEMMRequant dispatch to now: ISAVNNI,
// ISAAVX2 or ISAGo. It follows the dispatch flags, which come from
// golang.org/x/sys/cpu at start-up, so GODEBUG=cpu.avx512f=off selects the
// AVX2 kernels on a CPU with VNNI, and GODEBUG=cpu.avx512f=off,cpu.avx2=off
// the Go twins.
func ISA() string {
	switch {
	case useVNNI:
		return ISAVNNI
	case useAVX2:
		return ISAAVX2
	}
	return ISAGo
}

// StreamISA names the kernels GEMMStream and GEMMStreamRequant dispatch to
// now: ISAVNNI (AVX-512 VNNI), ISAAVXVNNI (AVX-VNNI, when AVX-512 is off or
// absent), ISAAVX2 or ISAGo. Like ISA it follows golang.org/x/sys/cpu:
// GODEBUG=cpu.avx512f=off selects the AVX-VNNI kernels on a CPU with both,
// and GODEBUG=cpu.avx512f=off,cpu.avxvnni=off the AVX2 ones.
func StreamISA() string {
	switch streamDispatch() {
	case streamAVX512:
		return ISAVNNI
	case streamAVXVNNI:
		return ISAAVXVNNI
	case streamAVX2:
		return ISAAVX2
	}
	return ISAGo
}
