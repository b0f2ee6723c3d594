package costmodel

import (
	"fmt"
	"math"
	"strings"
)

// AnalyticParams describes a CPU the kernels cannot be benchmarked on.
type AnalyticParams struct {
	Name       string
	CPU        string  // model name recorded in the profile
	GHz        float64 // sustained core clock under AVX2 load
	MemoryGBps float64 // copy bandwidth available to one core (read + write)
}

// Cycle costs of the kernels on an AVX2 core with two 256-bit integer
// multiply pipes, four vector ALU pipes, two 256-bit loads and one 256-bit
// store per cycle (Zen 2/3 class; Intel Skylake to Alder Lake P-cores have
// the same multiply throughput). Derived by counting the instructions of
// kernels/tile_amd64.s; see profiles/README.md.
const (
	// 8-bit: one k-pair step of a 6 x 16 tile is 12 VPMADDWD (16 MACs
	// each) and 12 VPADDD: 192 MACs in 6 cycles on the two multiply pipes.
	macPerCycle8 = 32.0
	// Low-bit: one k-quad step is 12 VPMADDUBSW (32 MACs each) and 12
	// VPADDW: 384 MACs in 6 cycles; every G quads (G = 8, 32, 64 for 4, 2,
	// 1 bits) the int16 lanes are widened (12 VPMADDWD, 12 VPADDD with a
	// load, 12 stores, 12 VPXOR): about 12 cycles, bound by the stores.
	lowStepCycles  = 6.0
	lowStepMACs    = 384.0
	widenCycles    = 12.0
	tileCycles     = 24.0  // micro-kernel call: 12 accumulator loads and stores
	rowTileCycles  = 60.0  // packing call, accumulator slice, bookkeeping per row tile
	requantRowCyc  = 26.0  // 4 x REQ4 (16 instructions) + packing of 16 outputs, at 3 IPC
	requantScalar  = 4.0   // scalar requantization of one output (Go)
	scalarRowCyc   = 20.0  // loop and slicing per row of the scalar epilogue (Go)
	pack16Cycles   = 0.33  // 8 cycles per 6 x 4 pairs (6 loads, 6 VPSUBW, 10 unpacks, 8 stores)
	pack8Cycles    = 0.085 // 8 cycles per 6 x 16 bytes
	packScalarCyc  = 1.0   // scalar packing of one element (Go)
	callCycles     = 1200  // Go call, slice allocations, sync.Pool, closure per GEMMRequant
	channelCycles  = 15    // per-call setup of one channel's requantization parameters (Go)
	im2colElemCyc  = 2.5   // bounds test, load and store per byte of the byte loops (Go)
	im2colRunCyc   = 4.0   // one 8-byte load and store per run of KW taps, with bounds checks
	im2colLineCyc  = 20.0  // row bounds, slicing, border closure and loop setup per output row, channel and kernel row
	im2colPixelCyc = 4.0   // per output pixel
	im2colCallCyc  = 80
	transElemCyc   = 1.5 // one strided byte store
	transRowCyc    = 2.0
	transConflict  = 6.0  // L1 miss per element when a row's writes overflow their sets
	transConfl4K   = 12.0 // 4 KiB store/load aliasing on top
	transCallCyc   = 30
	// Channels-last im2col: slicing and bounds per kernel row of a patch
	// row, a memmove call per run longer than 16 bytes, which moves 32
	// bytes per cycle.
	nhwcSegmentCyc    = 6.0
	nhwcCopyCyc       = 15.0
	nhwcCopiedByteCyc = 1.0 / 32
	// Depthwise: per output row the accumulator clear and loop setup, per
	// tap call its slicing, per 16-channel lane group of a pixel a load,
	// widen, multiply and add (8 lanes per 256-bit instruction: about 1/4
	// cycle per lane), per output the requantization.
	dwCallCyc   = 200
	dwRowCyc    = 40
	dwTapCyc    = 20
	dwLaneCyc   = 0.25
	dwOutputCyc = 1.6
	// Operations between layers (Go loops): a float division, rounding
	// and clamp per input value; a convert and multiply per output value;
	// three byte maxima per 2x2 window; a load and compare per pooling
	// tap plus the window's slicing; two multiplies and a rounding shift
	// per Add; a min and max per standalone clamp.
	opCallCyc       = 60
	quantizeElemCyc = 4.0
	dequantElemCyc  = 2.0
	maxPool2x2Cyc   = 4.0
	poolOutCyc      = 4.0
	poolTapCyc      = 1.5
	addElemCyc      = 5.0
	clampElemCyc    = 1.0
	// Channels-last pools: a call per pixel and tap (slicing, a vector
	// max loop), a 32-byte vector max per 32 channels.
	poolPixelTapCyc = 10.0
	poolByteTapCyc  = 1.0 / 16
	poolTailByteCyc = 2.0 // a load, compare and store per byte of the byte loop
	// weightBytesPerCycle is the rate weight panels stream from L2/L3.
	weightBytesPerCycle = 16.0
)

// lowBitGroup is the number of k-quads accumulated in int16 before
// widening, per kernel width (see package kernels).
var lowBitGroup = map[int]float64{4: 8, 2: 32, 1: 64}

// AnalyticAVX2 returns a profile for an AVX2 CPU derived from instruction
// throughputs instead of measurements, for CPUs the kernels cannot be run
// on. Its Comment documents the derivation.
func AnalyticAVX2(par AnalyticParams) (*Profile, error) {
	if !(par.GHz > 0) || math.IsInf(par.GHz, 0) || !(par.MemoryGBps > 0) || math.IsInf(par.MemoryGBps, 0) {
		return nil, fmt.Errorf("costmodel: analytic profile needs a positive clock and bandwidth; got %v GHz, %v GB/s", par.GHz, par.MemoryGBps)
	}
	ns := func(cycles float64) float64 { return roundSig(cycles/par.GHz, 4) }
	p := &Profile{
		Format: Format, Name: par.Name, Source: "analytic",
		CPU: CPUInfo{Model: par.CPU, Flags: []string{"avx", "avx2", "fma", "bmi2"}, KernelISA: "avx2",
			L1D: CacheInfo{Sets: 64, Ways: 8, Line: 64}, L2Bytes: 512 << 10}, // Zen 3: 32 KiB 8-way L1D, 512 KiB L2
		Threads: 1, Clock: "model",
		MemoryGBps: roundSig(par.MemoryGBps, 4), CallOverheadNs: ns(callCycles),
		Im2Col: Im2ColModel{CallNs: ns(im2colCallCyc), NsPerPixel: ns(im2colPixelCyc), NsPerLine: ns(im2colLineCyc), NsPerRun: ns(im2colRunCyc), NsPerElement: ns(im2colElemCyc)},
		Im2ColNHWC: Im2ColNHWCModel{CallNs: ns(im2colCallCyc), NsPerPixel: ns(im2colPixelCyc), NsPerSegment: ns(nhwcSegmentCyc), NsPerCopy: ns(nhwcCopyCyc),
			NsPerCopiedByte: ns(nhwcCopiedByteCyc), NsPerByte: ns(im2colElemCyc)},
		Depthwise: DepthwiseModel{CallNs: ns(dwCallCyc), NsPerRow: ns(dwRowCyc), NsPerTap: ns(dwTapCyc), NsPerLane: ns(dwLaneCyc), NsPerOutput: ns(dwOutputCyc)},
		Transpose: TransposeModel{CallNs: ns(transCallCyc), NsPerRow: ns(transRowCyc), NsPerElement: ns(transElemCyc), NsPerConflict: ns(transConflict), NsPerConflict4K: ns(transConfl4K)},
		Ops: OpsModel{CallNs: ns(opCallCyc), QuantizeNsPerElement: ns(quantizeElemCyc), DequantizeNsPerElement: ns(dequantElemCyc),
			MaxPool2x2NsPerOutput: ns(maxPool2x2Cyc), PoolNsPerOutput: ns(poolOutCyc), PoolNsPerTap: ns(poolTapCyc),
			AddNsPerElement: ns(addElemCyc), ClampNsPerElement: ns(clampElemCyc),
			PoolNHWCNsPerPixelTap: ns(poolPixelTapCyc), PoolNHWCNsPerByteTap: ns(poolByteTapCyc), PoolNHWCNsPerTailByte: ns(poolTailByteCyc)},
	}
	// Weight panels are re-read for every block of row tiles, mostly from
	// L2/L3: 16 bytes per cycle.
	wbyte := ns(1.0 / weightBytesPerCycle)
	var lines []string
	for _, kb := range ProfileBits {
		p.Stream = append(p.Stream, StreamModel{Bits: kb, OverheadNs: ns(callCycles), NsPerChannel: ns(channelCycles),
			NsPerWeightByte: wbyte, NsPerOutput: ns(requantScalar), NsPerActivation: ns(pack8Cycles)})
	}
	for _, kb := range ProfileBits {
		var macs float64
		pack := pack8Cycles
		if kb == 8 {
			macs = macPerCycle8
			pack = pack16Cycles
		} else {
			g := lowBitGroup[kb]
			macs = lowStepMACs * g / (lowStepCycles*g + widenCycles)
		}
		p.GEMM = append(p.GEMM, GEMMModel{
			Bits: kb, OverheadNs: ns(callCycles), NsPerChannel: ns(channelCycles), NsPerMAC: roundSig(1/(macs*par.GHz), 4),
			NsPerTile: ns(tileCycles), NsPerRowTile: ns(rowTileCycles),
			NsPerRequantRow: ns(requantRowCyc), NsPerRequantScalar: ns(requantScalar), NsPerScalarRow: ns(scalarRowCyc),
			NsPerPack: ns(pack), NsPerPackScalar: ns(packScalarCyc), NsPerWeightByte: wbyte,
			// Spilled packed activations are written and read back once
			// at the copy bandwidth, which counts both directions.
			NsPerSpilledByte: roundSig(2/par.MemoryGBps, 4),
		})
		lines = append(lines, fmt.Sprintf("  %d-bit: %.1f MAC/cycle -> peak %.0f GOPS at %.2f GHz", kb, macs, 2*macs*par.GHz, par.GHz))
	}
	p.Comment = fmt.Sprintf(`Analytic mpsearch hardware profile for %s.
Derived from instruction throughputs, not measured: see profiles/README.md
and costmodel/analytic.go for every constant. Clock %.2f GHz, copy
bandwidth %.0f GB/s. Kernel MAC rate per cycle (6x16 tiles):
%s
Regenerate with: go test ./costmodel -run TestShippedProfiles -args -update`,
		par.CPU, par.GHz, par.MemoryGBps, strings.Join(lines, "\n"))
	return p, p.Validate()
}
