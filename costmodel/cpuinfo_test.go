package costmodel

import "testing"

// fakeCPUID answers CPUID from a table of register values; leaves it does
// not hold read as zeros, as reserved leaves do.
type fakeCPUID map[[2]uint32][4]uint32

func (f fakeCPUID) id(leaf, sub uint32) (a, b, c, d uint32) {
	r := f[[2]uint32{leaf, sub}]
	return r[0], r[1], r[2], r[3]
}

// TestCachesFromCPUID decodes register values with the encodings of the
// Intel SDM (leaf 4) and AMD's APM (leaves 0x8000001D, 0x80000005 and
// 0x80000006); the wanted geometries are the processors' documented caches.
func TestCachesFromCPUID(t *testing.T) {
	cases := []struct {
		name   string
		regs   fakeCPUID
		wantL1 CacheInfo
		wantL2 int
	}{
		{
			// Recorded on the development VM (Firecracker, no sysfs cache
			// directory, no TOPOEXT): 48 KiB 12-way L1D, 1 MiB L2.
			name: "Zen 5 legacy leaves",
			regs: fakeCPUID{
				{0, 0}:          {0xd, 0x68747541, 0x444d4163, 0x69746e65},
				{0x80000000, 0}: {0x80000021},
				{0x80000005, 0}: {0xff60ff40, 0xff60ff40, 0x300c0140, 0x20080140},
				{0x80000006, 0}: {0x40802040, 0x60804040, 0x04006140, 0x0fe09140},
			},
			wantL1: CacheInfo{Sets: 64, Ways: 12, Line: 64}, wantL2: 1 << 20,
		},
		{
			// Skylake client: 32 KiB 8-way L1D, 256 KiB 4-way L2 (leaf 4;
			// the L1I and L3 entries must be ignored).
			name: "Intel leaf 4",
			regs: fakeCPUID{
				{0, 0}: {0x16},
				{4, 0}: {0x1c004121, 0x01c0003f, 0x3f},
				{4, 1}: {0x1c004122, 0x01c0003f, 0x3f},
				{4, 2}: {0x1c004143, 0x00c0003f, 0x3ff},
				{4, 3}: {0x1c03c163, 0x03c0003f, 0x1fff},
			},
			wantL1: CacheInfo{Sets: 64, Ways: 8, Line: 64}, wantL2: 256 << 10,
		},
		{
			// Zen 4 with topology extensions: 32 KiB 8-way L1D, 1 MiB
			// 8-way L2 from leaf 0x8000001D, preferred to the legacy
			// leaves (given wrong here on purpose).
			name: "AMD leaf 0x8000001D",
			regs: fakeCPUID{
				{0, 0}:          {0x10},
				{0x80000000, 0}: {0x80000028},
				{0x80000001, 0}: {0, 0, 1 << 22, 0},
				{0x8000001d, 0}: {0x00004121, 0x01c0003f, 0x3f},
				{0x8000001d, 1}: {0x00004122, 0x01c0003f, 0x3f},
				{0x8000001d, 2}: {0x00004143, 0x01c0003f, 0x7ff},
				{0x80000005, 0}: {0, 0, 0x10040140},
				{0x80000006, 0}: {0, 0, 0x02006140},
			},
			wantL1: CacheInfo{Sets: 64, Ways: 8, Line: 64}, wantL2: 1 << 20,
		},
		{name: "nothing reported", regs: fakeCPUID{{0, 0}: {1}, {0x80000000, 0}: {0x80000000}}},
	}
	for _, c := range cases {
		l1, l2 := cachesFromCPUID(c.regs.id)
		if l1 != c.wantL1 || l2 != c.wantL2 {
			t.Errorf("%s: got L1D %+v, L2 %d bytes; want %+v, %d", c.name, l1, l2, c.wantL1, c.wantL2)
		}
	}
}
