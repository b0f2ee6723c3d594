package dataset

import (
	"bytes"

	"codeberg.org/sbinet/npyio/npz"
)

// FromNPZBytes reads an NPZ archive held in memory (such as the built-in
// demo's embedded data), named name in messages, with the same arrays,
// options and errors as Load. opt.Labels must be empty: the archive's "y"
// holds the labels.
func FromNPZBytes(data []byte, name string, opt Options) (*Dataset, error) {
	s, err := OpenNPZBytes(data, name, opt)
	if err != nil {
		return nil, err
	}
	return readAll(s)
}

// OpenNPZBytes opens an NPZ archive held in memory as a Stream, with the
// arrays, options and errors of FromNPZBytes.
func OpenNPZBytes(data []byte, name string, opt Options) (*Stream, error) {
	if err := checkOptions(opt); err != nil {
		return nil, err
	}
	if opt.Labels != "" {
		return nil, optionErr("dataset: %s: labels come from the archive's \"y\"; drop the labels file %s", name, opt.Labels)
	}
	return newStream(name, opt, nil, func() (*parts, error) {
		r, err := npz.NewReader(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			return nil, formatErr("dataset: %s is not a valid NPZ (zip) archive: %v", name, err)
		}
		p := &parts{}
		if _, err := npzParts(p, r, name, opt); err != nil {
			p.close()
			return nil, err
		}
		return p, nil
	})
}
