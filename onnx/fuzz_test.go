package onnx

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// wideOpsets accepts any opset so that fuzzing reaches the graph decoder.
var wideOpsets = LoadOptions{MinOpset: 1, MaxOpset: 1 << 62}

// checkParseErr fails unless err is one line wrapping a package sentinel.
func checkParseErr(t *testing.T, err error) {
	t.Helper()
	if strings.Contains(err.Error(), "\n") {
		t.Fatalf("multi-line error %q", err)
	}
	if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrUnsupported) && !errors.Is(err, ErrUnsupportedOpset) {
		t.Fatalf("error %q wraps no sentinel", err)
	}
}

// FuzzParse checks that Parse never panics or allocates more than the input
// supports, that its errors are one line wrapping a sentinel, and that
// every model it accepts encodes, decodes again, and re-encodes to the same
// bytes.
func FuzzParse(f *testing.F) {
	for _, path := range testModels(f) {
		data, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
		for _, n := range []int{1, 7, len(data) / 3, len(data) / 2, len(data) - 1} {
			if n > 0 && n < len(data) {
				f.Add(data[:n])
			}
		}
	}
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		if _, err := Parse(data, ""); err != nil {
			checkParseErr(t, err)
		}
		m, err := wideOpsets.Parse(data, "")
		if err != nil {
			checkParseErr(t, err)
			return
		}
		enc, err := Marshal(m, SaveOptions{})
		if err != nil {
			t.Fatalf("Marshal of a parsed model: %v", err)
		}
		m2, err := wideOpsets.Parse(enc, "")
		if err != nil {
			t.Fatalf("Parse of a marshalled model: %v", err)
		}
		enc2, err := Marshal(m2, SaveOptions{})
		if err != nil {
			t.Fatalf("Marshal after a round trip: %v", err)
		}
		if !bytes.Equal(enc, enc2) {
			t.Fatalf("encoding is not a fixed point of decode/encode")
		}
	})
}

// FuzzParseTensor checks ParseTensor the same way on TensorProto files.
func FuzzParseTensor(f *testing.F) {
	paths, _ := filepath.Glob("testdata/conformance/*/test_data_set_0/*.pb")
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
		f.Add(data[:len(data)/2])
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		tt, dt, err := ParseTensor(data)
		if err != nil {
			checkParseErr(t, err)
			return
		}
		p, err := encodeTensor(tt, dt)
		if err != nil {
			t.Fatalf("encodeTensor of a parsed %v tensor: %v", dt, err)
		}
		d := &decoder{}
		back, dt2, err := d.tensor(p)
		if err != nil || dt2 != dt || len(back.Data) != len(tt.Data) {
			t.Fatalf("decode(encode(t)) = %v, %v, %v; want %v with %d values", back, dt2, err, dt, len(tt.Data))
		}
	})
}
