package dataset

import (
	"bytes"
	"errors"
	"testing"
)

func TestIDX(t *testing.T) {
	dir := t.TempDir()
	pix := seq(3 * 2 * 4) // 3 images 2x4, bytes 0..23
	lab := []byte{4, 0, 9}
	plain := writeFile(t, dir, "images", idxBytes([]int{3, 2, 4}, pix))
	gz := writeFile(t, dir, "images.idx", gzipBytes(idxBytes([]int{3, 2, 4}, pix))) // gzip without .gz
	labels := writeFile(t, dir, "labels.gz", gzipBytes(idxBytes([]int{3}, lab)))
	labelsPlain := writeFile(t, dir, "labels", idxBytes([]int{3}, lab))

	for _, c := range []struct {
		name   string
		path   string
		opt    Options
		n      int
		labels []int
	}{
		{"plain", plain, Options{}, 3, nil},
		{"gzip", gz, Options{Labels: labels}, 3, []int{4, 0, 9}},
		{"plain labels", plain, Options{Labels: labelsPlain}, 3, []int{4, 0, 9}},
		{"limit", gz, Options{Labels: labels, Limit: 2}, 2, []int{4, 0}},
		{"limit above N", plain, Options{Limit: 10}, 3, nil},
	} {
		d, err := Load(c.path, c.opt)
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if !equalInts(d.X.Shape, []int{c.n, 1, 2, 4}) || !equalInts(d.Y, c.labels) || (d.Y == nil) != (c.labels == nil) {
			t.Errorf("%s: shape %v labels %v; want [%d 1 2 4] %v", c.name, d.X.Shape, d.Y, c.n, c.labels)
			continue
		}
		for i, v := range d.X.Data {
			if v != float64(i)/255 {
				t.Errorf("%s: x[%d] = %v; want %d/255", c.name, i, v, i)
				break
			}
		}
	}
}

func TestIDXErrors(t *testing.T) {
	good := idxBytes([]int{2, 2, 2}, seq(8))
	for _, c := range []struct {
		name string
		file []byte
	}{
		{"empty", nil},
		{"short magic", []byte{0, 0, 8}},
		{"bad magic", append([]byte{1, 0}, good[2:]...)},
		{"int32 code", append([]byte{0, 0, 0x0c}, good[3:]...)},
		{"0 dims", []byte{0, 0, 8, 0}},
		{"short dims", good[:10]},
		{"zero dim", idxBytes([]int{2, 0, 2}, nil)},
		{"2 dims", idxBytes([]int{2, 4}, seq(8))},
		{"4 dims", idxBytes([]int{1, 2, 2, 2}, seq(8))},
		{"truncated", good[:len(good)-1]},
		{"trailing", append(append([]byte(nil), good...), 0)},
		{"huge claim", idxBytes([]int{1 << 31, 1 << 31, 1 << 31}, seq(8))},
		{"truncated gzip", gzipBytes(good)[:20]},
		{"bad gzip header", []byte{0x1f, 0x8b, 0, 0, 0}},
	} {
		x, _, err := readIDXImages(bytes.NewReader(c.file), c.name, 0)
		if !errors.Is(err, ErrFormat) {
			t.Errorf("%s: got %v, error %v; want ErrFormat", c.name, x, err)
		}
	}
	// A gzip stream whose CRC does not match its content.
	z := gzipBytes(good)
	z[len(z)-8] ^= 1
	if _, _, err := readIDXImages(bytes.NewReader(z), "crc", 1); !errors.Is(err, ErrFormat) {
		t.Errorf("bad gzip CRC: error %v; want ErrFormat", err)
	}
	if _, err := readIDXLabels(bytes.NewReader(good), "images as labels"); !errors.Is(err, ErrFormat) {
		t.Errorf("images as labels: error %v; want ErrFormat", err)
	}
}
