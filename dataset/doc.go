// Package dataset loads calibration and evaluation data into tensors:
// NPY and NPZ arrays, IDX files of the MNIST family (gzipped or not), and
// folders of class sub-folders of PNG/JPEG images; it resizes, converts to
// gray and normalises them, and cuts them into batches. It also writes NPY
// (NPYFloat32, NPYFloat64: byte for byte as numpy.save) and reads an NPY
// array as stored (ReadNPY), for model outputs.
//
// The form of a file is detected from its content (NPY, zip, gzip and IDX
// magic numbers), never from its name. Pixels stored as bytes (IDX, uint8
// NPY/NPZ, 8-bit images) are scaled to [0, 1] by 1/255 before the optional
// per-channel normalisation (x - mean) / std; float arrays are taken as they
// are. Images are laid out NCHW.
//
// Invariants of a loaded Dataset: at least one sample; X.Shape[0] samples,
// each of SampleShape(); Y nil or one non-negative label per sample; every
// value finite. Batch and Subset return views sharing memory with the
// Dataset. Loading is deterministic: the same files and Options give the
// same values bit for bit (folders are read in sorted name order).
//
// Parsers check every size claimed by a header against overflow and read
// data incrementally, so a corrupt or hostile header cannot make them
// allocate much more than the input holds; every problem is returned as a
// one-line error naming the file, wrapping ErrFormat (bad content),
// ErrOption (options that do not fit the data) or the os error of a file
// that cannot be opened.
package dataset
