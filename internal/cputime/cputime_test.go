package cputime

import (
	"runtime"
	"testing"
)

func TestThreadAdvances(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	a, ok := Thread()
	if !ok {
		t.Skip("no thread CPU clock on this platform")
	}
	x := 0.0
	for i := 0; i < 5_000_000; i++ {
		x += float64(i) * 1e-9
	}
	b, _ := Thread()
	if b <= a || x == 0 {
		t.Errorf("thread CPU time went from %v to %v over a busy loop", a, b)
	}
}
