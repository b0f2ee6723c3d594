package dataset

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"fmt"
	"io"

	"mpsearch/tensor"
)

// idxUbyte is the IDX element type code of unsigned bytes, the only one the
// MNIST family uses.
const idxUbyte = 0x08

// idxReader returns a reader of the IDX stream in r, decompressing it when it
// starts with the gzip magic bytes.
func idxReader(r io.Reader, name string) (io.Reader, error) {
	br := bufio.NewReader(r)
	head, _ := br.Peek(2)
	if !bytes.Equal(head, gzipMagic) {
		return br, nil
	}
	zr, err := gzip.NewReader(br)
	if err != nil {
		return nil, formatErr("dataset: %s: bad gzip stream: %v", name, err)
	}
	return zr, nil
}

// readIDXHeader reads the magic number and the dimensions of an IDX stream.
func readIDXHeader(r io.Reader, name string) ([]int, error) {
	var magic [4]byte
	if _, err := io.ReadFull(r, magic[:]); err != nil {
		return nil, readErr(err, name, "truncated IDX header")
	}
	if magic[0] != 0 || magic[1] != 0 {
		return nil, formatErr("dataset: %s: not an IDX file (magic %x)", name, magic)
	}
	if magic[2] != idxUbyte {
		return nil, formatErr("dataset: %s: IDX element type 0x%02x is not supported; want 0x08 (unsigned byte)", name, magic[2])
	}
	nd := int(magic[3])
	if nd == 0 {
		return nil, formatErr("dataset: %s: IDX file with 0 dimensions", name)
	}
	b := make([]byte, 4*nd)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, readErr(err, name, "truncated IDX dimensions")
	}
	dims := make([]int, nd)
	for i := range dims {
		dims[i] = int(binary.BigEndian.Uint32(b[4*i:]))
		if dims[i] == 0 {
			return nil, formatErr("dataset: %s: IDX dimension %d is 0 (dims %v)", name, i, dims[:i+1])
		}
	}
	return dims, nil
}

// idxRecords returns a reader of the rows of rowBytes bytes of an IDX body
// of the given dims, delivering the first keep rows and then checking that
// the others are present and that nothing follows.
func idxRecords(r io.Reader, name string, dims []int, keep, rowBytes int) (*records, error) {
	total, ok := mulInt(dims[0], rowBytes)
	if !ok {
		return nil, formatErr("dataset: %s: IDX dims %v are too large", name, dims)
	}
	return &records{r: r, name: name, row: rowBytes, rows: dims[0], keep: keep,
		truncated: func(got int64) string {
			return fmt.Sprintf("IDX data truncated: dims %v need %d bytes, got %d", dims, total, got)
		},
		trailing: fmt.Sprintf("unexpected data after the %v IDX array", dims)}, nil
}

// idxImageRecords reads the header of an IDX images file (gzipped or not)
// and returns its dimensions [N, H, W] and a reader of its first limit
// images (all when limit is 0), H×W bytes each.
func idxImageRecords(r io.Reader, name string, limit int) ([]int, *records, error) {
	r, err := idxReader(r, name)
	if err != nil {
		return nil, nil, err
	}
	dims, err := readIDXHeader(r, name)
	if err != nil {
		return nil, nil, err
	}
	switch len(dims) {
	case 3:
	case 1:
		return nil, nil, formatErr("dataset: %s is an IDX labels file (dims %v); give it as the labels, with the images as the data", name, dims)
	default:
		return nil, nil, formatErr("dataset: %s: IDX images must have 3 dimensions [N,H,W]; got %v", name, dims)
	}
	hw, ok := mulInt(dims[1], dims[2])
	if !ok {
		return nil, nil, formatErr("dataset: %s: IDX dims %v are too large", name, dims)
	}
	keep := dims[0]
	if limit > 0 && limit < keep {
		keep = limit
	}
	rec, err := idxRecords(r, name, dims, keep, hw)
	return dims, rec, err
}

// readIDXImages reads an IDX images file (gzipped or not) into [N,1,H,W]
// values in [0,1], keeping the first limit images when limit > 0. fullN is
// the number of images in the file. It is the whole-file form of
// idxImageRecords.
func readIDXImages(r io.Reader, name string, limit int) (x *tensor.Tensor, fullN int, err error) {
	dims, rec, err := idxImageRecords(r, name, limit)
	if err != nil {
		return nil, 0, err
	}
	raw, err := rec.read(rec.keep)
	if err != nil {
		return nil, 0, err
	}
	x = tensor.New(rec.keep, 1, dims[1], dims[2])
	decodeBytes(x.Data, raw)
	return x, dims[0], nil
}

// idxLabelRecords reads the header of an IDX labels file (gzipped or not)
// and returns a reader of all its labels, one byte each.
func idxLabelRecords(r io.Reader, name string) (*records, error) {
	r, err := idxReader(r, name)
	if err != nil {
		return nil, err
	}
	dims, err := readIDXHeader(r, name)
	if err != nil {
		return nil, err
	}
	if len(dims) != 1 {
		return nil, formatErr("dataset: %s: IDX labels must have 1 dimension [N]; got %v", name, dims)
	}
	return idxRecords(r, name, dims, dims[0], 1)
}

// readIDXLabels reads an IDX labels file (gzipped or not).
func readIDXLabels(r io.Reader, name string) ([]int, error) {
	rec, err := idxLabelRecords(r, name)
	if err != nil {
		return nil, err
	}
	raw, err := rec.read(rec.keep)
	if err != nil {
		return nil, err
	}
	y := make([]int, len(raw))
	for i, b := range raw {
		y[i] = int(b)
	}
	return y, nil
}
