package demo

import (
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
)

var (
	//go:embed model.onnx
	model string
	//go:embed calib.npz
	calib string
	//go:embed test.npz
	test string
	//go:embed meta.json
	meta string
)

// ErrInvalidMeta is returned (wrapped) by Meta when the embedded meta.json
// cannot be parsed or is inconsistent; it means the demo files were built
// wrongly and scripts/train_demo.py should be rerun.
var ErrInvalidMeta = errors.New("demo: invalid embedded meta.json")

// Metadata describes the demo model and data, as written by scripts/train_demo.py.
type Metadata struct {
	// Mean and Std are the per-channel normalization: x = (pixel/255 - Mean)/Std.
	// The images in CalibNPZ and TestNPZ are already normalized.
	Mean []float64 `json:"mean"`
	Std  []float64 `json:"std"`
	// InputShape is the shape of one sample, [C,H,W].
	InputShape []int `json:"input_shape"`
	// FloatTestAccuracyFull is PyTorch's top-1 accuracy (a fraction) on all
	// 10000 Fashion-MNIST test images; FloatTestAccuracyDemo on the images of TestNPZ.
	FloatTestAccuracyFull float64 `json:"float_test_accuracy_full"`
	FloatTestAccuracyDemo float64 `json:"float_test_accuracy_demo"`
	// ONNXMaxLogitDiff is the largest |logit| difference between PyTorch and an
	// independent float64 numpy evaluation of model.onnx on the TestNPZ images.
	ONNXMaxLogitDiff float64 `json:"onnx_numpy_max_logit_diff"`
	// Classes are the class names, indexed by label.
	Classes []string `json:"classes"`
	// Params is the number of trainable parameters of the PyTorch model
	// (weights, biases and BatchNormalization scales and shifts).
	Params int `json:"params"`
	// CalibImages and TestImages are the numbers of samples in CalibNPZ and TestNPZ.
	CalibImages int `json:"calib_images"`
	TestImages  int `json:"test_images"`
	// Nodes lists the ONNX nodes as "name (op)", in graph order.
	Nodes []string `json:"nodes"`
	// TrainedWith records the framework and training settings.
	TrainedWith string `json:"trained_with"`
}

// Model returns the demo network as ONNX protobuf bytes.
func Model() []byte { return []byte(model) }

// CalibNPZ returns the calibration set as an NPZ archive with arrays "x"
// (float32 [512,1,28,28], normalized) and "y" (int64 [512]).
func CalibNPZ() []byte { return []byte(calib) }

// TestNPZ returns the held-out test set as an NPZ archive with arrays "x"
// (float32 [1000,1,28,28], normalized) and "y" (int64 [1000]).
func TestNPZ() []byte { return []byte(test) }

// Meta parses and checks the embedded meta.json.
func Meta() (Metadata, error) {
	var m Metadata
	if err := json.Unmarshal([]byte(meta), &m); err != nil {
		return Metadata{}, fmt.Errorf("%w: %v", ErrInvalidMeta, err)
	}
	if err := m.check(); err != nil {
		return Metadata{}, fmt.Errorf("%w: %v", ErrInvalidMeta, err)
	}
	return m, nil
}

func (m *Metadata) check() error {
	switch {
	case len(m.Mean) == 0 || len(m.Mean) != len(m.Std):
		return fmt.Errorf("mean has %d values and std %d; want the same non-zero count", len(m.Mean), len(m.Std))
	case len(m.InputShape) != 3 || m.InputShape[0] != len(m.Mean):
		return fmt.Errorf("input_shape %v; want [C,H,W] with C = %d normalization channels", m.InputShape, len(m.Mean))
	case len(m.Classes) < 2:
		return fmt.Errorf("%d classes; want at least 2", len(m.Classes))
	case m.CalibImages <= 0 || m.TestImages <= 0:
		return fmt.Errorf("calib_images %d, test_images %d; want both positive", m.CalibImages, m.TestImages)
	}
	for i, s := range m.Std {
		if !(s > 0) {
			return fmt.Errorf("std[%d] = %v; want > 0", i, s)
		}
	}
	for _, a := range []float64{m.FloatTestAccuracyFull, m.FloatTestAccuracyDemo} {
		if !(a >= 0 && a <= 1) {
			return fmt.Errorf("accuracy %v; want a fraction in [0,1]", a)
		}
	}
	return nil
}
