// Package onnx reads and writes ONNX model files and holds the
// protobuf-independent IR (Model, Graph, Node, Attribute) that the rest of
// mpsearch works on. The protobuf bindings live in internal/onnxpb and
// never leave this package.
//
// # Reading
//
// Load and Parse decode a ModelProto into the IR:
//   - Model.Opset is the opset of the default domain ("" or "ai.onnx");
//     it must lie in MinOpset..MaxOpset (6..21) unless LoadOptions widen
//     the range, else the error wraps ErrUnsupportedOpset. Other domains'
//     opsets are kept in Model.OtherOpsets.
//   - Graph.Inputs are the graph inputs that are not initializers. A
//     dimension given by dim_value is fixed; dim_param, a missing value or
//     a negative dim_value make it dynamic (Value -1, Param the name if any).
//     A nil Shape means the file gives no shape; an empty one is a scalar.
//   - Nodes are in file order with all their attributes, including tensor
//     (decoded to float64), graph (converted recursively), tensors and
//     graphs attributes. Sparse-tensor and type-proto attributes are
//     refused with ErrUnsupported.
//   - Every initializer becomes a float64 tensor.Tensor, whatever its
//     storage: raw_data (little-endian), the typed fields (float_data,
//     int32_data, int64_data, double_data, uint64_data) or external data.
//     Supported element types: FLOAT, DOUBLE, FLOAT16, BFLOAT16, INT8,
//     UINT8, INT16, UINT16, INT32, UINT32, INT64, UINT64, BOOL, INT4 and
//     UINT4 (packed two per byte, low nibble first). The conversion is
//     exact except for 64-bit integers beyond 2^53, which round to the
//     nearest float64 (math.MaxInt64, Slice's "to the end", reads as 2^63).
//
// External data (location/offset/length) is read relative to the model's
// directory through os.Root, so neither "..", absolute paths nor symbolic
// links can reach outside it. The amount of data is checked against the
// shape before anything is allocated: a file cannot make the reader
// allocate more than a small multiple of its own size (plus its external
// data).
//
// Errors are one line, name the file, initializer, node or attribute at
// fault, and wrap ErrMalformed (the file is not valid ONNX),
// ErrUnsupported (valid ONNX this package cannot represent),
// ErrUnsupportedOpset, or the underlying os error. Reading never panics on
// bad input.
//
// ReadTensor and ParseTensor decode single serialized TensorProtos, such
// as the input_N.pb and output_N.pb files of the ONNX conformance tests,
// with the same decoder.
//
// # Writing
//
// Save and Marshal encode the IR. Each initializer is written as raw_data
// of its Graph.InitTypes element type (FLOAT when absent); a value the type
// cannot hold exactly is an error wrapping ErrNotRepresentable, so a
// quantized model is written exactly as the IR says or not at all. The
// output is deterministic: initializers in InitOrder (then any others by
// name), attributes by name, other opset domains by name, and
// proto.MarshalOptions{Deterministic: true}. ir_version is 10 for opset 21
// and above (INT4 needs it), else 8, unless SaveOptions say otherwise.
// Dynamic dimensions are written as their Param, or as unknown dimensions
// when unnamed. All data is written inline. Save replaces the file
// atomically (temporary file in the same directory, then rename).
//
// For every model Load accepts, Load -> Save -> Load gives the same IR
// apart from IRVersion, and encoding a reloaded model gives the same bytes.
//
// # Invariants of a Graph from Load
//
// Every initializer name appears exactly once in InitOrder and has an
// InitTypes entry; len(t.Data) == tensor.Size(t.Shape) for every tensor;
// a scalar tensor has a nil Shape; Node.Attrs is non-nil and each
// Attribute's Name equals its key.
package onnx
