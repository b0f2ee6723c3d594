package citest

import "testing"

func TestInCI(t *testing.T) {
	for _, c := range []struct {
		v    string
		want bool
	}{{"", false}, {"false", false}, {"0", false}, {"true", true}, {"1", true}, {"yes", true}} {
		t.Setenv("CI", c.v)
		if got := InCI(); got != c.want {
			t.Errorf("CI=%q: InCI() = %v; want %v", c.v, got, c.want)
		}
	}
}

// TestMissingFailsInCI runs Missing on a recorder under CI=true and with
// CI empty: the first must fail (not skip), the second skip.
func TestMissingFailsInCI(t *testing.T) {
	for _, c := range []struct {
		ci         string
		wantFailed bool
	}{{"true", true}, {"", false}} {
		t.Setenv("CI", c.ci)
		inner := &recorder{}
		func() {
			defer func() { _ = recover() }()
			Missing(inner, "dependency %s missing", "x")
		}()
		if inner.failed != c.wantFailed || inner.skipped == c.wantFailed {
			t.Errorf("CI=%q: failed %v, skipped %v; want failed %v", c.ci, inner.failed, inner.skipped, c.wantFailed)
		}
	}
}

// recorder is a testing.TB that records Fatalf and Skipf (each panics to
// end the call, as FailNow and SkipNow end the goroutine).
type recorder struct {
	testing.TB
	failed, skipped bool
}

func (r *recorder) Helper() {}
func (r *recorder) Fatalf(string, ...any) {
	r.failed = true
	panic("fatal")
}
func (r *recorder) Skipf(string, ...any) {
	r.skipped = true
	panic("skip")
}
