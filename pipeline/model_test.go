package pipeline

import (
	"fmt"
	"strings"
	"testing"

	"mpsearch/onnx"
)

// TestInputShapes checks which input shapes LoadModel builds a model with:
// --input-shape as given, else the data's sample shape for a first input
// with dynamic dimensions, else the declared shape.
func TestInputShapes(t *testing.T) {
	dyn := []onnx.Dim{{Value: -1, Param: "batch"}, {Value: 3}, {Value: -1, Param: "h"}, {Value: -1, Param: "w"}}
	static := []onnx.Dim{{Value: -1, Param: "batch"}, {Value: 3}, {Value: 8}, {Value: 8}}
	model := func(shape []onnx.Dim) *onnx.Model {
		return &onnx.Model{Graph: &onnx.Graph{Inputs: []onnx.ValueInfo{{Name: "x", Shape: shape}, {Name: "mask", Shape: []onnx.Dim{{Value: 1}}}}}}
	}
	for _, tc := range []struct {
		name  string
		shape []onnx.Dim
		opt   ModelOptions
		want  string // fmt of the map, or the error's text
	}{
		{"dynamic from data", dyn, ModelOptions{SampleShape: []int{3, 160, 192}}, "map[x:[1 3 160 192]]"},
		{"no shape declared", nil, ModelOptions{SampleShape: []int{3, 8, 8}}, "map[x:[1 3 8 8]]"},
		{"static ignores data", static, ModelOptions{SampleShape: []int{3, 16, 16}}, "map[]"},
		{"dynamic, no data", dyn, ModelOptions{}, "map[]"},
		{"flag wins over data", dyn, ModelOptions{InputShapes: map[string][]int{"x": {1, 3, 32, 32}}, SampleShape: []int{3, 160, 192}}, "map[x:[1 3 32 32]]"},
		{"flag on another input", static, ModelOptions{InputShapes: map[string][]int{"mask": {4}}}, "map[mask:[4]]"},
		{"unknown input", static, ModelOptions{InputShapes: map[string][]int{"image": {1, 3, 8, 8}}}, `--input-shape names input "image", which the model does not have; its inputs: x, mask`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := inputShapes(model(tc.shape), tc.opt)
			s := fmt.Sprint(got)
			if err != nil {
				s = err.Error()
			}
			if !strings.Contains(s, tc.want) {
				t.Errorf("got %s; want %s", s, tc.want)
			}
		})
	}
}
