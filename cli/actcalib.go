package cli

import (
	"cmp"
	"fmt"

	"mpsearch/pipeline"
	"mpsearch/quant"
)

// actCalibUsage is --act-calib's help.
const actCalibUsage = "activation ranges from the calibration data: minmax (every observed value), percentile[:P] (each side's P-th percentile of magnitudes, 99.99 by default), mse (the clipping of least quantization MSE) or kl (TensorRT's entropy calibration); the metrics, verification, the integer engine and export all use them"

// parseActCalib reads an --act-calib value; a bad one is a usage error.
func parseActCalib(s string) (quant.ActCalib, error) {
	c, err := quant.ParseActCalib(s)
	if err != nil {
		return quant.ActCalib{}, usagef("--act-calib: %v", err)
	}
	return c, nil
}

// bitsActCalib is eval and run --bits' activation calibration: flag when
// given (already checked), else the one bits.yaml (read from path)
// records, else minmax (files of earlier versions).
func bitsActCalib(flag, path string, f *pipeline.BitsFile) (quant.ActCalib, error) {
	if flag != "" {
		return parseActCalib(flag)
	}
	c, err := quant.ParseActCalib(cmp.Or(f.ActCalib, quant.CalibMinMax))
	if err != nil {
		return quant.ActCalib{}, fmt.Errorf("%s: %v (correct act_calib, or pass --act-calib)", path, err)
	}
	return c, nil
}

// actCalibNote is ", activation ranges by METHOD" for the results' first
// line.
func actCalibNote(c quant.ActCalib) string {
	return ", activation ranges by " + c.String()
}
