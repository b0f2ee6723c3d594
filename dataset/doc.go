// Package dataset reads calibration and evaluation data into tensors:
// NPY and NPZ arrays, IDX files of the MNIST family (gzipped or not), and
// folders of class sub-folders of PNG/JPEG images; it resizes, converts to
// gray and normalises them, and cuts them into batches. It also writes NPY
// (NPYFloat32, NPYFloat64: byte for byte as numpy.save; NPYFloat32Writer
// piece by piece with the same bytes) and reads an NPY array as stored
// (ReadNPY), for model outputs.
//
// Open returns a Stream, which reads the samples in mini-batches without
// holding the set: an NPY file is read row batch by row batch (the rows
// after --limit are checked by the file's size, not read), NPZ members
// sequentially (a stored member in place, a deflated one decompressed as
// it is read), IDX files sequentially (gzipped or not), an image folder one
// file per sample, decoded when its batch is read. A Stream keeps only the
// shapes, the options and, for a folder, its list of files, their header
// sizes and labels. Labels stream alongside the samples. Load (and
// FromNPZBytes) is one pass of one batch over the same Stream: there is one
// decoder per format, and a Stream's batches, concatenated, are Load's
// values bit for bit for any batch size (Gray, Resize, normalisation and
// the finiteness check are per sample). A column-major (Fortran-order) NPY
// array, whose rows are not contiguous, is the exception: it is read and
// reordered whole when a pass starts. Header errors and options that do not
// fit the data are reported by Open; errors in a body (truncation, bytes
// after the end, a non-finite value, a bad label, an unreadable image) by
// the Next that reaches them, with Load's message: of the defects a batch
// meets, the one at the lowest sample is reported (data before labels at
// one sample, a file's end after all), so the message does not depend on
// the batch sizes; the end of each file is checked before the last batch
// is returned. Source is what a single-pass
// consumer takes: a Stream, or a loaded Dataset (whose batches are views).
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
// data incrementally (a batch's values are allocated once its bytes were
// read), so a corrupt or hostile header cannot make them allocate much
// more than the input holds; every problem is returned as a
// one-line error naming the file, wrapping ErrFormat (bad content),
// ErrOption (options that do not fit the data) or the os error of a file
// that cannot be opened.
package dataset
