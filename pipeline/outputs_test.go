package pipeline

import (
	"os"
	"path/filepath"
	"testing"
)

// TestWriteFilesAllOrNothing checks that WriteFiles replaces every file or
// none: when a later file cannot be written, the earlier ones keep their
// previous content and no temporary directory is left behind (issue 12:
// files were renamed into place one by one).
func TestWriteFilesAllOrNothing(t *testing.T) {
	for _, existing := range []bool{true, false} {
		parent := t.TempDir()
		dir := filepath.Join(parent, "out")
		if existing {
			if err := WriteFiles(dir, map[string][]byte{"a.txt": []byte("old a")}, []string{"a.txt"}); err != nil {
				t.Fatal(err)
			}
		}
		// "no/such/dir/b.txt" cannot be created: its directory does not exist.
		err := WriteFiles(dir, map[string][]byte{"a.txt": []byte("new a"), "no/such/dir/b.txt": []byte("b")}, []string{"a.txt", "no/such/dir/b.txt"})
		if err == nil {
			t.Fatalf("existing=%v: got nil error; want a failure on b.txt", existing)
		}
		got, rerr := os.ReadFile(filepath.Join(dir, "a.txt"))
		switch {
		case existing && (rerr != nil || string(got) != "old a"):
			t.Errorf("existing out: a.txt is %q, %v after a failed write; want the previous \"old a\"", got, rerr)
		case !existing && !os.IsNotExist(rerr):
			t.Errorf("fresh out: a.txt exists (%q) after a failed write; want nothing written", got)
		}
		for _, d := range []string{parent, dir} {
			entries, _ := os.ReadDir(d)
			for _, e := range entries {
				if e.Name() != "out" && e.Name() != "a.txt" {
					t.Errorf("existing=%v: %s left in %s", existing, e.Name(), d)
				}
			}
		}
		if err := WriteFiles(dir, map[string][]byte{"a.txt": []byte("new a")}, []string{"a.txt"}); err != nil {
			t.Fatal(err)
		}
		if got, _ := os.ReadFile(filepath.Join(dir, "a.txt")); string(got) != "new a" {
			t.Errorf("existing=%v: a.txt is %q after a successful write; want \"new a\"", existing, got)
		}
	}
}
