// Package onnxpb holds the Go protobuf bindings of the ONNX schema
// (onnx.proto, proto2, from the ONNX project under the Apache License 2.0:
// see LICENSE-onnx). onnx.pb.go is generated and committed so that builds
// need no protoc; regenerate it with `go generate` after installing protoc
// and protoc-gen-go v1.36.12
// (go install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12).
//
// The package is internal: the rest of mpsearch sees ONNX models only
// through the IR of package mpsearch/onnx.
package onnxpb

//go:generate protoc --go_out=. --go_opt=paths=source_relative --go_opt=Monnx.proto=mpsearch/onnx/internal/onnxpb onnx.proto
