package cli

import (
	"flag"
	"os"
	"strings"
	"testing"

	"mpsearch/network"
)

var updateREADME = flag.Bool("update", false, "rewrite the supported-operator list of ../README.md from network.SupportedOps()")

const (
	readmePath    = "../README.md"
	opsBeginMark  = "<!-- supported-ops:"
	opsEndMark    = "<!-- end supported-ops -->"
	readmeColumns = 110 // the README's line width
)

// operatorList renders ops as the README shows them: backquoted, comma
// separated, wrapped at readmeColumns, ending with a full stop.
func operatorList(ops []string) string {
	var b strings.Builder
	line := 0
	for i, op := range ops {
		w := "`" + op + "`"
		if i < len(ops)-1 {
			w += ","
		} else {
			w += "."
		}
		if line > 0 && line+1+len(w) > readmeColumns {
			b.WriteString("\n")
			line = 0
		} else if line > 0 {
			b.WriteString(" ")
			line++
		}
		b.WriteString(w)
		line += len(w)
	}
	return b.String() + "\n"
}

// TestREADMEOperators is issue 10's must-show 4: the README's list of
// supported operators is the registry's (network.SupportedOps), generated,
// not written by hand. Run with -update to rewrite it.
func TestREADMEOperators(t *testing.T) {
	raw, err := os.ReadFile(readmePath)
	if err != nil {
		t.Fatal(err)
	}
	s := string(raw)
	i := strings.Index(s, opsBeginMark)
	j := strings.Index(s, opsEndMark)
	if i < 0 || j < i {
		t.Fatalf("%s: no %q ... %q section", readmePath, opsBeginMark, opsEndMark)
	}
	i += strings.Index(s[i:], "\n") + 1
	want := operatorList(network.SupportedOps())
	if got := s[i:j]; got != want {
		if *updateREADME {
			if err := os.WriteFile(readmePath, []byte(s[:i]+want+s[j:]), 0o644); err != nil {
				t.Fatal(err)
			}
			t.Logf("rewrote the operator list of %s", readmePath)
			return
		}
		t.Errorf("%s lists the operators\n%s\nnetwork.SupportedOps() has\n%s\nrun: go test ./cli -run TestREADMEOperators -update", readmePath, got, want)
	}
}

// TestUnsupportedOperatorErrorListsRegistry checks the other half of
// must-show 4: the error for an unknown operator lists the registry.
func TestUnsupportedOperatorErrorListsRegistry(t *testing.T) {
	p := writeTemp(t, "m.onnx", unsupportedModel(t, "NoSuchOperator", 1))
	code, _, errs := run(t, "run", "--model", p, "--data", writeTemp(t, "x.npy", npyBytes("<f4", []int{1, 4}, make([]byte, 16))), "--out", p+".npy")
	if code != 1 {
		t.Fatalf("exit %d; want 1 (%s)", code, errs)
	}
	want := "supported operators: " + strings.Join(network.SupportedOps(), ", ")
	if !strings.Contains(errs, want) || !strings.Contains(errs, "NoSuchOperator") {
		t.Errorf("error %q; want it to name NoSuchOperator and end with %q", errs, want)
	}
	if _, err := os.Stat(p + ".npy"); err == nil {
		t.Error("a failed run wrote its output file")
	}
}
