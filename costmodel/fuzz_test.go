package costmodel

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"mpsearch/kernels"
)

// fuzzReadBound bounds one ReadProfile plus the predictions and the round
// trip of FuzzReadProfile: they take about a millisecond on a profile, so
// a second (a thousand times that, enough for a loaded machine and the
// fuzzer's instrumentation) means a stall.
const fuzzReadBound = time.Second

// FuzzReadProfile feeds damaged profiles to the reader (profiles come from
// users and other machines). An input is an edit of a seed profile (the
// shipped ones and the test profile): cut bytes at an offset and insert a
// patch; a base beyond the seeds reads the patch alone as the document.
// Editing keeps inputs small, so most of them reach Validate and Predict
// rather than stopping at the YAML's first line, and Go's minimizer, whose
// last pass is quadratic in the input's length, does not spend the fuzzing
// budget minimizing whole 4 KB profiles.
//
// Properties: no panic; within fuzzReadBound; an error is one line that
// wraps ErrProfile and starts with the file name; a profile that reads
// predicts a Conv and a Gemm layer at every bit width, and marshals to
// bytes that read back to the same bytes (the round trip is stable).
func FuzzReadProfile(f *testing.F) {
	files, err := filepath.Glob(filepath.Join("..", "profiles", "*.yaml"))
	if err != nil || len(files) == 0 {
		f.Fatalf("no shipped profiles: %v", err)
	}
	var seeds [][]byte
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		seeds = append(seeds, b)
	}
	good, err := testProfileWithComment().Marshal()
	if err != nil {
		f.Fatal(err)
	}
	seeds = append(seeds, good)
	for i := range seeds {
		f.Add(uint8(i), uint16(0), uint16(0), []byte{})
	}
	raw := uint8(len(seeds))
	f.Add(uint8(0), uint16(300), uint16(2), []byte("99999999999999999999"))
	f.Add(uint8(1), uint16(40), uint16(0), []byte("x: &a [*a]\n"))
	f.Add(raw, uint16(0), uint16(0), []byte("format: mpsearch-profile/2\n"))
	f.Add(raw, uint16(0), uint16(0), []byte("\x00\xff"))
	conv, err := ConvLayer("conv", kernels.ConvShape{C: 8, H: 16, W: 16, KH: 3, KW: 3, PadTop: 1, PadLeft: 1, PadBottom: 1, PadRight: 1}, 16, 1)
	if err != nil {
		f.Fatal(err)
	}
	layers := []LayerShape{conv, GemmLayer("fc", "Gemm", 1, 256, 10)}
	f.Fuzz(func(t *testing.T, base uint8, at, cut uint16, patch []byte) {
		data := patch
		if int(base) < len(seeds) {
			s := seeds[base]
			i := int(at) % (len(s) + 1)
			j := min(len(s), i+int(cut))
			data = append(append(append([]byte{}, s[:i]...), patch...), s[j:]...)
		}
		t0 := time.Now()
		p, err := ReadProfile(bytes.NewReader(data), "fuzz.yaml")
		if d := time.Since(t0); d > fuzzReadBound {
			t.Fatalf("ReadProfile took %v on %d bytes; want under %v", d, len(data), fuzzReadBound)
		}
		if err != nil {
			switch {
			case strings.Contains(err.Error(), "\n"):
				t.Fatalf("error of %d lines; want one: %q", strings.Count(err.Error(), "\n")+1, err)
			case !errors.Is(err, ErrProfile) || !strings.HasPrefix(err.Error(), "fuzz.yaml: "):
				t.Fatalf("error %q does not wrap ErrProfile or does not start with the file name", err)
			}
			return
		}
		for _, s := range layers {
			for _, b := range []int{8, 4, 3, 2, 1} {
				if _, err := Predict(p, s, b, 1); err != nil {
					t.Fatalf("a profile that reads does not predict %s at %d bits: %v", s.Name, b, err)
				}
			}
		}
		b1, err := p.Marshal()
		if err != nil {
			t.Fatalf("a profile that was read does not marshal: %v", err)
		}
		p2, err := ReadProfile(bytes.NewReader(b1), "again.yaml")
		if err != nil {
			t.Fatalf("a marshalled profile does not read back: %v\n%s", err, b1)
		}
		b2, err := p2.Marshal()
		if err != nil || !bytes.Equal(b1, b2) {
			t.Fatalf("round trip not stable (err %v):\n%s\nvs\n%s", err, b1, b2)
		}
		if d := time.Since(t0); d > fuzzReadBound {
			t.Fatalf("reading, predicting and the round trip took %v on %d bytes; want under %v", d, len(data), fuzzReadBound)
		}
	})
}
