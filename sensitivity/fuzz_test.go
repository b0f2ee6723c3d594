package sensitivity

import (
	"bytes"
	"strings"
	"testing"
)

// FuzzRead feeds arbitrary bytes to the table reader (tables come from
// users and from other machines' shards). Properties: no panic; an error
// is one line; a table that reads back marshals to bytes that read to the
// same bytes again (the round trip is stable).
func FuzzRead(f *testing.F) {
	f.Add([]byte(sampleTable))
	f.Add([]byte("layers:\n  - name: a\n    omega: {2: 1}\n"))
	f.Add([]byte("layers: []\n"))
	f.Add([]byte("shard: {index: 0, count: 2}\n"))
	f.Add([]byte("\x00\xff"))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, read := range []func() (*Table, error){
			func() (*Table, error) { return Read(bytes.NewReader(data), "fuzz.yaml") },
			func() (*Table, error) { return ReadShard(bytes.NewReader(data), "fuzz.yaml") },
		} {
			tab, err := read()
			if err != nil {
				if strings.Contains(err.Error(), "\n") {
					t.Fatalf("error of %d lines; want one: %q", strings.Count(err.Error(), "\n")+1, err)
				}
				continue
			}
			b1, err := tab.Marshal()
			if err != nil {
				t.Fatalf("a table that was read does not marshal: %v", err)
			}
			tab2, err := ReadShard(bytes.NewReader(b1), "again.yaml")
			if err != nil {
				t.Fatalf("a marshalled table does not read back: %v\n%s", err, b1)
			}
			b2, err := tab2.Marshal()
			if err != nil || !bytes.Equal(b1, b2) {
				t.Fatalf("round trip not stable (err %v):\n%s\nvs\n%s", err, b1, b2)
			}
		}
	})
}
