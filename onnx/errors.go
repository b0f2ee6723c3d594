package onnx

import (
	"errors"
	"fmt"
)

// Sentinel errors. Errors returned by this package wrap one of them (or an
// os / io error) so callers can tell the cases apart with errors.Is.
var (
	// ErrMalformed reports a file that is not a valid ONNX model or tensor:
	// bad protobuf, missing graph, shapes that do not match their data,
	// unknown data types, external data outside the model directory.
	ErrMalformed = errors.New("onnx: malformed model")

	// ErrUnsupportedOpset reports a default-domain opset outside the
	// range the reader accepts (MinOpset to MaxOpset unless LoadOptions
	// say otherwise).
	ErrUnsupportedOpset = errors.New("onnx: unsupported opset")

	// ErrUnsupported reports valid ONNX that this package cannot represent
	// in its IR: string, complex and 8-bit float tensors, sparse tensors,
	// non-tensor graph inputs, type-proto attributes, segmented tensors.
	ErrUnsupported = errors.New("onnx: unsupported feature")

	// ErrNotRepresentable reports, from Save and Marshal, a float64 value
	// that the initializer's element type cannot hold exactly.
	ErrNotRepresentable = errors.New("onnx: value not representable")

	// ErrNonFinite reports, from Graph.CheckFinite, a NaN or infinite value.
	ErrNonFinite = errors.New("onnx: non-finite value")
)

// sentinelError is a one-line message that unwraps to a sentinel without
// repeating the sentinel's text.
type sentinelError struct {
	msg      string
	sentinel error
}

func (e *sentinelError) Error() string { return e.msg }
func (e *sentinelError) Unwrap() error { return e.sentinel }

// errorf formats a message and ties it to sentinel.
func errorf(sentinel error, format string, args ...any) error {
	return &sentinelError{msg: fmt.Sprintf(format, args...), sentinel: sentinel}
}

// malformed formats an ErrMalformed error.
func malformed(format string, args ...any) error {
	return errorf(ErrMalformed, format, args...)
}

// unsupported formats an ErrUnsupported error.
func unsupported(format string, args ...any) error {
	return errorf(ErrUnsupported, format, args...)
}
