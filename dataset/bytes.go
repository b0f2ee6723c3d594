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
	if err := checkOptions(opt); err != nil {
		return nil, err
	}
	if opt.Labels != "" {
		return nil, optionErr("dataset: %s: labels come from the archive's \"y\"; drop the labels file %s", name, opt.Labels)
	}
	r, err := npz.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		return nil, formatErr("dataset: %s is not a valid NPZ (zip) archive: %v", name, err)
	}
	defer r.Close()
	x, y, _, err := readNPZArrays(r, name, opt.Limit)
	if err != nil {
		return nil, err
	}
	d := &Dataset{X: x, Y: y, Source: name}
	if err := transform(d, name, opt); err != nil {
		return nil, err
	}
	return d, nil
}
