package ortrun

import (
	"testing"

	"mpsearch/internal/citest"
)

// ForTest returns a Runner for a test. When ONNX Runtime is missing the test
// is skipped with the reason, except in CI (the environment variable CI is
// set, as CI services set it), where the comparisons must run: there it
// fails.
func ForTest(t testing.TB) *Runner {
	t.Helper()
	r, err := New()
	if err != nil {
		if InCI() {
			t.Fatalf("CI: %v", err)
		}
		t.Skip(err)
	}
	return r
}

// InCI tells whether the tests run in CI (citest.InCI).
func InCI() bool { return citest.InCI() }
