package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestVEXEncoding checks vexDPBUSD against the bytes GNU as 2.x emits for
// "{vex} vpdpbusd %ymmS2, %ymmS1, %ymmD" (objdump -d of the assembled
// object), including a destination and a source above 7.
func TestVEXEncoding(t *testing.T) {
	for _, c := range []struct {
		dst, src1, src2 int
		want            string
	}{
		{0, 8, 10, "$0xc4; BYTE $0xc2; BYTE $0x3d; BYTE $0x50; BYTE $0xc2"}, // c4 c2 3d 50 c2
		{7, 8, 11, "$0xc4; BYTE $0xc2; BYTE $0x3d; BYTE $0x50; BYTE $0xfb"}, // c4 c2 3d 50 fb
		{3, 8, 10, "$0xc4; BYTE $0xc2; BYTE $0x3d; BYTE $0x50; BYTE $0xda"}, // c4 c2 3d 50 da
		{9, 1, 2, "$0xc4; BYTE $0x62; BYTE $0x75; BYTE $0x50; BYTE $0xca"},  // vpdpbusd %ymm2,%ymm1,%ymm9: c4 62 75 50 ca
		{1, 2, 3, "$0xc4; BYTE $0xe2; BYTE $0x6d; BYTE $0x50; BYTE $0xcb"},  // vpdpbusd %ymm3,%ymm2,%ymm1: c4 e2 6d 50 cb
	} {
		got := vexDPBUSD(c.dst, c.src1, c.src2)
		if !strings.HasPrefix(got, "BYTE "+c.want+" //") {
			t.Errorf("vexDPBUSD(%d, %d, %d) = %q; want BYTE %s", c.dst, c.src1, c.src2, got, c.want)
		}
	}
}

// TestGeneratedUpToDate: the committed assembly and declarations are what
// the generator writes now (run go generate in kernels after a change).
func TestGeneratedUpToDate(t *testing.T) {
	asm, decl, err := generate()
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string][]byte{asmFile: asm, declFile: decl} {
		got, err := os.ReadFile(filepath.Join("..", "..", name))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("kernels/%s differs from the generator's output; run go generate in kernels", name)
		}
	}
}
