package costmodel

import (
	"bufio"
	"bytes"
	"os"
	"runtime"
	"strconv"
	"strings"

	"golang.org/x/sys/cpu"

	"mpsearch/kernels"
)

// isaFlags are the CPU flags a profile records, in this order: the vector
// extensions that matter to integer GEMM (the kernels use AVX-512 VNNI or
// AVX2, see kernels.ISA; the others tell what faster kernels, or another
// library, could use).
var isaFlags = []struct {
	name string
	has  *bool
}{
	{"sse4_2", &cpu.X86.HasSSE42},
	{"avx", &cpu.X86.HasAVX},
	{"avx2", &cpu.X86.HasAVX2},
	{"fma", &cpu.X86.HasFMA},
	{"bmi2", &cpu.X86.HasBMI2},
	{"avx512f", &cpu.X86.HasAVX512F},
	{"avx512bw", &cpu.X86.HasAVX512BW},
	{"avx512vl", &cpu.X86.HasAVX512VL},
	{"avx512_vnni", &cpu.X86.HasAVX512VNNI},
	{"avx_vnni", &cpu.X86.HasAVXVNNI},
	{"avx512_bf16", &cpu.X86.HasAVX512BF16},
	{"amx_int8", &cpu.X86.HasAMXInt8},
}

// DetectCPU describes the processor this program runs on: model name,
// vendor, family and model from /proc/cpuinfo where there is one, the ISA
// flags relevant to the kernels (as the OS enables them, from
// golang.org/x/sys/cpu), the logical CPU count, the kernels' ISA
// (kernels.ISA: what the kernels run now, so a profile measured under
// GODEBUG=cpu.avx512f=off records avx2), and the level-1 data cache and
// level-2 sizes from Linux sysfs or, where sysfs lacks them, from CPUID
// (cachesFromCPUID).
func DetectCPU() CPUInfo {
	info := CPUInfo{Model: "unknown " + runtime.GOARCH, LogicalCPUs: runtime.NumCPU(), KernelISA: kernels.ISA(), Flags: []string{}}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		parseCPUInfo(b, &info)
	}
	info.L1D, info.L2Bytes = readCaches("/sys/devices/system/cpu/cpu0/cache")
	if info.L1D.Sets == 0 || info.L2Bytes == 0 {
		// Some virtual machines (Firecracker's) have no sysfs cache
		// directory; CPUID still describes the caches.
		l1, l2 := cpuidCaches()
		if info.L1D.Sets == 0 {
			info.L1D = l1
		}
		if info.L2Bytes == 0 {
			info.L2Bytes = l2
		}
	}
	if runtime.GOARCH == "amd64" {
		for _, f := range isaFlags {
			if *f.has {
				info.Flags = append(info.Flags, f.name)
			}
		}
	}
	return info
}

// parseCPUInfo reads the first processor's fields of /proc/cpuinfo.
func parseCPUInfo(b []byte, info *CPUInfo) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			return // end of the first processor
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		switch k {
		case "model name":
			info.Model = v
		case "vendor_id":
			info.Vendor = v
		case "cpu family":
			info.Family, _ = strconv.Atoi(v)
		case "model":
			info.ModelID, _ = strconv.Atoi(v)
		}
	}
}

// readCaches reads the level-1 data cache geometry and the level-2 size
// from the Linux sysfs cache directory dir; zero when they are not there.
func readCaches(dir string) (l1 CacheInfo, l2 int) {
	read := func(idx, name string) string {
		b, err := os.ReadFile(dir + "/" + idx + "/" + name)
		if err != nil {
			return ""
		}
		return strings.TrimSpace(string(b))
	}
	num := func(idx, name string) int {
		v, _ := strconv.Atoi(read(idx, name))
		return v
	}
	for i := 0; i < 8; i++ {
		idx := "index" + strconv.Itoa(i)
		level, typ := read(idx, "level"), read(idx, "type")
		switch {
		case level == "1" && typ == "Data":
			l1 = CacheInfo{Sets: num(idx, "number_of_sets"), Ways: num(idx, "ways_of_associativity"), Line: num(idx, "coherency_line_size")}
		case level == "2" && (typ == "Unified" || typ == "Data"):
			size := read(idx, "size") // "1024K"
			if v, err := strconv.Atoi(strings.TrimSuffix(size, "K")); err == nil && strings.HasSuffix(size, "K") {
				l2 = v << 10
			}
		}
	}
	return l1, l2
}

// cpuidFunc executes CPUID with EAX = leaf and ECX = sub.
type cpuidFunc func(leaf, sub uint32) (a, b, c, d uint32)

// cachesFromCPUID reads the level-1 data cache geometry and the level-2
// size from CPUID: the deterministic cache parameters (leaf 4, Intel; leaf
// 0x8000001D, AMD with topology extensions), else AMD's legacy leaves
// 0x80000005 (L1D size, ways, line) and 0x80000006 (L2 size). Zero for
// what none of them gives.
func cachesFromCPUID(id cpuidFunc) (l1 CacheInfo, l2 int) {
	maxLeaf, _, _, _ := id(0, 0)
	maxExt, _, _, _ := id(0x80000000, 0)
	deterministic := func(leaf uint32) {
		for sub := uint32(0); sub < 16; sub++ {
			a, b, c, _ := id(leaf, sub)
			typ, level := a&0x1f, (a>>5)&7
			if typ == 0 { // no more caches
				return
			}
			line, parts, ways, sets := int(b&0xfff)+1, int((b>>12)&0x3ff)+1, int((b>>22)&0x3ff)+1, int(c)+1
			switch {
			case level == 1 && typ == 1 && l1.Sets == 0: // data cache
				l1 = CacheInfo{Sets: sets, Ways: ways * parts, Line: line}
			case level == 2 && (typ == 1 || typ == 3) && l2 == 0: // data or unified
				l2 = line * parts * ways * sets
			}
		}
	}
	if maxLeaf >= 4 {
		deterministic(4)
	}
	if (l1.Sets == 0 || l2 == 0) && maxExt >= 0x8000001D {
		if _, _, ecx, _ := id(0x80000001, 0); ecx&(1<<22) != 0 { // TOPOEXT
			deterministic(0x8000001D)
		}
	}
	if l1.Sets == 0 && maxExt >= 0x80000005 {
		_, _, c, _ := id(0x80000005, 0)
		size, ways, line := int(c>>24)<<10, int((c>>16)&0xff), int(c&0xff)
		switch {
		case size == 0 || line == 0 || ways == 0: // not reported
		case ways == 0xff: // fully associative: one set
			l1 = CacheInfo{Sets: 1, Ways: size / line, Line: line}
		case size%(ways*line) == 0:
			l1 = CacheInfo{Sets: size / (ways * line), Ways: ways, Line: line}
		}
	}
	if l2 == 0 && maxExt >= 0x80000006 {
		_, _, c, _ := id(0x80000006, 0)
		l2 = int(c>>16) << 10
	}
	return l1, l2
}
