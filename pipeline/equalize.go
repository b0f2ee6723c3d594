package pipeline

import (
	"fmt"

	"mpsearch/equalize"
	"mpsearch/network"
)

// Equalize returns net with cross-layer equalization applied
// (equalize.Model of net.Model, BatchNorm already folded), rebuilt with
// net's input shape and precision, and what was done. The float function
// is unchanged; every later stage (ranges, Hessians, sensitivities, the
// integer engine, the export, which writes the new net.Model) sees the
// equalized weights. net itself is not modified.
func Equalize(net *network.Network) (*network.Network, equalize.Report, error) {
	m, rep, err := equalize.Model(net.Model)
	if err != nil {
		return nil, rep, err
	}
	opt := network.Options{Precision: net.Precision(), NoFold: true}
	if net.SampleShape != nil {
		opt.InputShapes = map[string][]int{net.InputName: append([]int{1}, net.SampleShape...)}
	}
	eq, err := network.Build(m, opt)
	if err != nil {
		return nil, rep, fmt.Errorf("--equalize: rebuilding the equalized model: %w", err)
	}
	return eq, rep, nil
}
