package sensitivity

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

const sampleTable = `model: lenet.onnx
bits: [2, 4, 8]
layers:
  - name: conv1
    op: Conv
    params: 150
    macs: 117600
    trace: 12.3
    delta: {2: 0.91, 4: 0.11, 8: 0.0004}
    bits: 8
  - name: fc1
    op: Gemm
    params: 48000
    omega: {2: 0.5, 4: 0.01, 8: 0.0001}
    size_bytes: {2: 12000, 4: 24000, 8: 48000}
ties: [[conv1, fc1]]
`

func TestReadTable(t *testing.T) {
	tab, err := Read(strings.NewReader(sampleTable), "sens.yaml")
	if err != nil {
		t.Fatal(err)
	}
	got, ok := tab.Layers[0].OmegaAt(4)
	if want := 12.3 / 150 * 0.11; !ok || got != want {
		t.Errorf("conv1 omega at 4 bits: got %g, %v; want %g (trace/params*delta)", got, ok, want)
	}
	if got, _ := tab.Layers[1].OmegaAt(2); got != 0.5 {
		t.Errorf("fc1 omega at 2 bits: got %g; want 0.5", got)
	}
	// Round trip is stable.
	b1, err := tab.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	tab2, err := Read(bytes.NewReader(b1), "x")
	if err != nil {
		t.Fatal(err)
	}
	b2, _ := tab2.Marshal()
	if !bytes.Equal(b1, b2) {
		t.Errorf("round trip changed the table:\n%s\nvs\n%s", b1, b2)
	}
}

func TestReadTableErrors(t *testing.T) {
	for _, c := range []struct {
		name, yaml, want string
	}{
		{"unknown field", "layers:\n  - name: a\n    omegaa: {2: 1}\n", "omegaa"},
		{"unknown tie", strings.Replace(sampleTable, "[[conv1, fc1]]", "[[conv1, fc9]]", 1), `unknown layer "fc9"`},
		{"negative cost", strings.Replace(sampleTable, "2: 12000", "2: -12000", 1), "negative"},
		{"nan omega", strings.Replace(sampleTable, "2: 0.5", "2: .nan", 1), "finite"},
		{"missing bits", strings.Replace(sampleTable, "bits: [2, 4, 8]", "bits: [2, 3]", 1), "at 3 bits"},
		{"duplicate", "layers:\n  - name: a\n    omega: {2: 1}\n  - name: a\n    omega: {2: 1}\n", "twice"},
		{"empty", "", "empty"},
		{"no layers", "model: x\n", "no layers"},
		{"unknown quantizer", "quantizer: adaround\n" + sampleTable, `quantizer "adaround" is not rtn or gptq`},
	} {
		_, err := Read(strings.NewReader(c.yaml), "sens.yaml")
		if err == nil || !strings.Contains(err.Error(), c.want) || !errors.Is(err, ErrTable) {
			t.Errorf("%s: got %v; want an ErrTable mentioning %q", c.name, err, c.want)
		}
	}
}

// TestCheckQuantizer: a table is usable with the rounding it records, or
// without a record when hand-written (no model hash); another rounding,
// or no record in a table mpsearch wrote, is refused in one line naming
// the roundings and the flag.
func TestCheckQuantizer(t *testing.T) {
	const provenance = "model_sha256: abc\n"
	for _, c := range []struct {
		name, head, q, want string // want "": accepted
	}{
		{"same", "quantizer: gptq\n" + provenance, "gptq", ""},
		{"same rtn", "quantizer: rtn\n" + provenance, "rtn", ""},
		{"hand-written", "", "gptq", ""},
		{"other", "quantizer: rtn\n" + provenance, "gptq", "was measured with weights rounded by rtn, not gptq: pass --quantizer rtn"},
		{"other, hand-written", "quantizer: gptq\n", "rtn", "rounded by gptq, not rtn: pass --quantizer gptq"},
		{"unrecorded", provenance, "gptq", "does not record the weight rounding"},
	} {
		tab, err := Read(strings.NewReader(c.head+sampleTable), "sens.yaml")
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		q := c.q
		err = tab.CheckQuantizer("sens.yaml", q)
		if c.want == "" {
			if err != nil {
				t.Errorf("%s: CheckQuantizer(%s): got %v; want nil", c.name, q, err)
			}
			continue
		}
		if err == nil || !errors.Is(err, ErrTable) || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "sens.yaml") || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: CheckQuantizer(%s): got %v; want one ErrTable line naming sens.yaml and containing %q", c.name, q, err, c.want)
		}
	}
}
