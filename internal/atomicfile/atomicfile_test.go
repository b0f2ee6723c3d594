package atomicfile

import (
	"os"
	"path/filepath"
	"testing"
)

func TestWriteReplacesWholeFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "out.txt")
	for _, s := range []string{"first version, long", "second"} {
		if err := Write(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(p)
		if err != nil || string(got) != s {
			t.Fatalf("got %q, %v; want %q", got, err, s)
		}
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Errorf("directory holds %d entries; want 1 (no temporary files left)", len(ents))
	}
	if err := Write(filepath.Join(dir, "missing", "x"), nil, 0o644); err == nil {
		t.Error("write into a missing directory: got no error")
	}
}

// TestCreateCommitAbort checks the piecewise form: nothing at the path
// before Commit, the whole content after it, nothing left after Abort.
func TestCreateCommitAbort(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "out.bin")
	f, err := Create(p, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte("ab"))
	if _, err := os.Stat(p); !os.IsNotExist(err) {
		t.Errorf("before Commit: stat %v; want no file at the path", err)
	}
	f.Write([]byte("cd"))
	if err := f.Commit(); err != nil {
		t.Fatal(err)
	}
	f.Abort() // no effect after Commit
	if got, err := os.ReadFile(p); err != nil || string(got) != "abcd" {
		t.Errorf("after Commit: %q, %v; want \"abcd\"", got, err)
	}
	if st, _ := os.Stat(p); st.Mode().Perm() != 0o600 {
		t.Errorf("mode %v; want 0600", st.Mode().Perm())
	}
	g, err := Create(p, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	g.Write([]byte("partial"))
	g.Abort()
	if got, _ := os.ReadFile(p); string(got) != "abcd" {
		t.Errorf("after Abort: %q; want the committed \"abcd\"", got)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("%d entries in the folder; want 1 (no temporary file left)", len(ents))
	}
}
