package pipeline

import (
	"cmp"
	"context"
	"encoding/json"
	"os"
	"path/filepath"

	"mpsearch/dataset"
	"mpsearch/network"
	"mpsearch/quant"
	"mpsearch/sensitivity"
)

// Inputs is a loaded model with its calibration data and their identities
// (for provenance and cache keys).
type Inputs struct {
	Net         *network.Network
	Calib       *dataset.Dataset
	ModelName   string
	ModelSHA256 string
	DataName    string
	DataSHA256  string
	// Equalized: Net is the model after cross-layer equalization
	// (--equalize, Equalize), recorded in the cache key and the table.
	Equalized bool
}

// SensitivityRequest is what Sensitivity computes.
type SensitivityRequest struct {
	Config  sensitivity.Config
	NoCache bool
}

// cacheVersion is part of every cache key: it changes whenever a table
// computed from the same inputs and settings changes. 2: signed float-engine
// direct and quadratic values (no clamp at 0) and the direct metric's
// standard errors (Layer.Stderr); tables cached before are not reused.
const cacheVersion = 2

// cacheKey identifies a sensitivity computation: the model, the data and
// every setting that changes the table.
//
// The weight rounding is part of the key (absent for round to nearest, so
// that keys of earlier versions stay valid); a GPTQ source's codes are a
// function of the model and the calibration data, already in the key.
// So is bias correction (absent without it, as in earlier keys), and the
// option codes in groups are in cfg.Bits; so is cross-layer equalization
// (in.Equalized, absent without it). Under the KL loss (no labels) the
// fisher metric draws its labels from the float model (it was the zero
// empirical Fisher before): those keys carry FisherLabels, so tables
// cached with the zeros are not read again.
func cacheKey(in *Inputs, cfg sensitivity.Config) string {
	cfg.Progress = nil
	_, bc := cfg.Weights.(quant.BiasShifter)
	fl := ""
	if cfg.Loss == sensitivity.LossKL || (cfg.Loss == "" && !in.Calib.Labeled()) {
		fl = "drawn from the float model"
	}
	b, _ := json.Marshal(struct {
		Model, Data    string
		Samples        int
		Cfg            sensitivity.Config
		Version        int
		Quantizer      string `json:",omitempty"`
		BiasCorrection bool   `json:",omitempty"`
		Equalize       bool   `json:",omitempty"`
		FisherLabels   string `json:",omitempty"`
	}{in.ModelSHA256, in.DataSHA256, in.Calib.Len(), cfg, cacheVersion, quantizer(cfg), bc, in.Equalized, fl})
	return HashBytes(b)[:32]
}

// quantizer is the cache key's weight rounding: cfg's method, "" for
// round to nearest.
func quantizer(cfg sensitivity.Config) string {
	if cfg.Weights != nil && cfg.Weights.Method() != quant.MethodRTN {
		return cfg.Weights.Method()
	}
	return ""
}

// Sensitivity computes the sensitivity table of the inputs, or returns the
// cached one computed earlier with the same model, data and settings.
// cached reports which.
func Sensitivity(ctx context.Context, in *Inputs, req SensitivityRequest) (t *sensitivity.Table, cached bool, err error) {
	dir := ""
	if !req.NoCache && in.ModelSHA256 != "" && in.DataSHA256 != "" {
		dir = CacheDir()
	}
	var path string
	if dir != "" {
		path = filepath.Join(dir, "sens-"+cacheKey(in, req.Config)+".yaml")
		if t, err := sensitivity.ReadShardFile(path); err == nil {
			if t.Quantizer == "" { // cached before tables recorded it; the key holds it
				t.Quantizer = cmp.Or(quantizer(req.Config), quant.MethodRTN)
			}
			return t, true, nil
		}
	}
	t, err = sensitivity.Compute(ctx, in.Net, in.Calib, req.Config)
	if err != nil {
		return nil, false, err
	}
	t.Model, t.ModelSHA256 = in.ModelName, in.ModelSHA256
	t.Data, t.DataSHA256 = in.DataName, in.DataSHA256
	t.Equalized = in.Equalized
	if path != "" {
		if err := t.WriteFile(path); err != nil {
			// A cache that cannot be written is not an error of the job.
			_ = os.Remove(path)
		}
	}
	return t, false, nil
}
