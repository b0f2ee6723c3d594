package costmodel

import (
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"

	"mpsearch/kernels"
)

// isaChildEnv marks the test process TestISASwitchedOff starts with fewer
// CPU features; its value is the ISA the child must see.
const isaChildEnv = "MPSEARCH_COSTMODEL_ISA_CHILD"

// TestISASwitchedOff switches the kernels' best instruction set off, as the
// kernel tests do, but through the user's own switch (GODEBUG=cpu.avx512f=off
// on a VNNI CPU, cpu.avx2=off on an AVX2 one), in a child test process
// since the flags are read at start-up. The child checks what
// TestKernelISARecorded checks in this process: the profile records the
// ISA that runs, the GEMM terms follow its packing, and a profile of the
// other ISA is refused.
func TestISASwitchedOff(t *testing.T) {
	if os.Getenv(isaChildEnv) != "" {
		t.Skip("the child runs TestKernelISARecorded only")
	}
	var godebug, want string
	switch kernels.ISA() {
	case kernels.ISAVNNI:
		godebug, want = "cpu.avx512f=off", kernels.ISAAVX2
	case kernels.ISAAVX2:
		godebug, want = "cpu.avx2=off", kernels.ISAGo
	default:
		t.Skip("the Go kernels run already: no instruction set to switch off")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^TestKernelISARecorded$", "-test.v")
	cmd.Env = append(os.Environ(), "GODEBUG="+godebug, isaChildEnv+"="+want)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: TestKernelISARecorded") {
		t.Fatalf("GODEBUG=%s: %v\n%s", godebug, err, out)
	}
	t.Logf("GODEBUG=%s: the child ran the %s kernels and passed", godebug, want)
}

// TestKernelISARecorded: DetectCPU records kernels.ISA(); the GEMM model's
// weight-byte term equals the bytes the kernels pack for that ISA; a
// profile of another ISA is refused naming both, and one of this ISA is
// accepted.
func TestKernelISARecorded(t *testing.T) {
	isa := kernels.ISA()
	if want := os.Getenv(isaChildEnv); want != "" && isa != want {
		t.Fatalf("kernels.ISA() = %q under GODEBUG=%s; want %q", isa, os.Getenv("GODEBUG"), want)
	}
	if got := DetectCPU().KernelISA; got != isa {
		t.Errorf("DetectCPU().KernelISA = %q; want kernels.ISA() = %q", got, isa)
	}
	// One block of row tiles streams every weight panel once: the term is
	// the packed panels' size. (Binary weights without VNNI use the
	// half-byte table layout, which the term does not model; the 1-bit
	// coefficient absorbs it.)
	const rows, k, n = 6, 100, 40
	for _, kb := range []int{8, 4, 2} {
		w, err := kernels.PackWeights(make([]int8, n*k), n, k, kb)
		if err != nil {
			t.Fatal(err)
		}
		if got := gemmFeatures(kb, rows, k, n, 0, isa)[10]; got != float64(w.PanelBytes()) {
			t.Errorf("%s, %d bits: weight bytes term %g; want the packed panels' %d bytes", isa, kb, got, w.PanelBytes())
		}
	}
	p := testProfile()
	p.CPU.KernelISA = isa
	if err := p.CheckISA(kernels.ISA()); err != nil {
		t.Errorf("a profile of this ISA: got %v; want nil", err)
	}
	for _, other := range kernelISAs {
		if other == isa {
			continue
		}
		p.CPU.KernelISA = other
		err := p.CheckISA(kernels.ISA())
		if !errors.Is(err, ErrISA) || !errors.Is(err, ErrProfile) || !strings.Contains(err.Error(), "describes the "+other+" kernels but this program runs the "+isa+" ones") {
			t.Errorf("a profile of %s on %s: got %v; want ErrISA naming both", other, isa, err)
		}
	}
}

// TestCheckISAMessage: the way out a mismatch names, and kernel_isa values
// outside kernels.ISA's are refused when reading.
func TestCheckISAMessage(t *testing.T) {
	p := testProfile()
	p.CPU.KernelISA = kernels.ISAAVX2
	err := p.CheckISA(kernels.ISAVNNI)
	if err == nil || !strings.Contains(err.Error(), "GODEBUG=cpu.avx512f=off") || !strings.Contains(err.Error(), "mpsearch profile") || strings.Contains(err.Error(), "\n") {
		t.Errorf("avx2 profile on VNNI: got %v; want one line naming mpsearch profile and GODEBUG=cpu.avx512f=off", err)
	}
	p.CPU.KernelISA = kernels.ISAVNNI
	if err := p.CheckISA(kernels.ISAAVX2); err == nil || strings.Contains(err.Error(), "GODEBUG") {
		t.Errorf("VNNI profile on AVX2: got %v; want an error without the GODEBUG way out", err)
	}
	p.CPU.KernelISA = "sse2"
	if err := p.Validate(); err == nil || !strings.Contains(err.Error(), `cpu.kernel_isa is "sse2"`) {
		t.Errorf("kernel_isa sse2: got %v; want an error naming the field", err)
	}
}
