// Package citest decides what a test does when something it needs is not
// installed (Fashion-MNIST, Chromium, onnxruntime-node, python3-torchvision,
// a model or fixture file): on a developer's machine the test is skipped
// with the reason; in CI (the environment variable CI set, as CI services
// set it, to anything but "", "false" or "0") it fails, so that a missing
// dependency can never turn a comparison into a silent skip there.
//
// Skips that do not depend on an installation (-short, a CPU without the
// instruction set a test exercises, running as root) do not use it.
package citest

import (
	"os"
	"testing"
)

// InCI tells whether the tests run in CI.
func InCI() bool {
	v := os.Getenv("CI")
	return v != "" && v != "false" && v != "0"
}

// Missing ends the test for a missing dependency: t.Fatalf in CI, else
// t.Skipf, with the reason (which should say what to install).
func Missing(t testing.TB, format string, args ...any) {
	t.Helper()
	if InCI() {
		t.Fatalf("CI: "+format, args...)
	}
	t.Skipf(format, args...)
}
