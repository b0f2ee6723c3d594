package onnx

import (
	"os"
	"testing"
)

func BenchmarkParseLenet(b *testing.B) {
	data, err := os.ReadFile("testdata/lenet.onnx")
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := Parse(data, ""); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkMarshalLenet(b *testing.B) {
	m, err := Load("testdata/lenet.onnx")
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := Marshal(m, SaveOptions{}); err != nil {
			b.Fatal(err)
		}
	}
}
