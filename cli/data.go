package cli

import (
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"

	"mpsearch/dataset"
	"mpsearch/demo"
	"mpsearch/network"
	"mpsearch/pipeline"
)

// modelFlags are the flags naming a model and its data.
type modelFlags struct {
	model   string
	data    string
	labels  string
	mean    string
	std     string
	resize  string
	limit   int
	batch   int
	threads int
}

func (m *modelFlags) register(fs *flag.FlagSet, withData bool) {
	fs.StringVar(&m.model, "model", "", "ONNX model `file` (default: the built-in Fashion-MNIST demo)")
	m.threads = 1
	fs.Var(threadsFlag{&m.threads}, "threads", "threads for the float engine (BLAS and mini-batches), capped at the CPUs available")
	if !withData {
		return
	}
	fs.StringVar(&m.data, "data", "", "data: .npz (x, y), .npy, IDX images file, or a folder of class folders of PNG/JPEG")
	fs.StringVar(&m.labels, "labels", "", "labels `file` (.npy or IDX) for --data given as .npy or IDX images; \"none\" ignores labels (losses then use the float model's own outputs)")
	fs.StringVar(&m.mean, "mean", "", "per-channel mean subtracted after scaling pixels to [0,1], comma-separated")
	fs.StringVar(&m.std, "std", "", "per-channel standard deviation divided by after --mean, comma-separated")
	fs.StringVar(&m.resize, "resize", "", "resize images of a folder to `HxW`")
	fs.IntVar(&m.limit, "limit", 0, "use only the first `N` samples (0: all)")
	fs.IntVar(&m.batch, "batch", 256, "batch size")
}

func parseFloats(name, s string) ([]float64, error) {
	if s == "" {
		return nil, nil
	}
	var out []float64
	for _, f := range strings.Split(s, ",") {
		v, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
		if err != nil {
			return nil, usagef("--%s: %q is not a number", name, f)
		}
		out = append(out, v)
	}
	return out, nil
}

// options converts the data flags to dataset options.
func (m *modelFlags) options() (dataset.Options, error) {
	var opt dataset.Options
	var err error
	if opt.Mean, err = parseFloats("mean", m.mean); err != nil {
		return opt, err
	}
	if opt.Std, err = parseFloats("std", m.std); err != nil {
		return opt, err
	}
	for _, s := range opt.Std {
		if s <= 0 {
			return opt, usagef("--std: %g is not positive", s)
		}
	}
	if m.resize != "" {
		h, w, err := parseResize(m.resize)
		if err != nil {
			return opt, err
		}
		if m.data != "" {
			if st, err := os.Stat(m.data); err == nil && st.IsDir() {
				if err := checkResizeMemory(m.data, h, w, m.limit); err != nil {
					return opt, err
				}
			}
		}
		opt.Resize = [2]int{h, w}
	}
	if m.limit < 0 {
		return opt, usagef("--limit: %d is negative", m.limit)
	}
	opt.Limit = m.limit
	if m.labels != "none" {
		opt.Labels = m.labels
	}
	return opt, nil
}

// loadModel loads --model, or the demo.
func (m *modelFlags) loadModel() (*network.Network, error) {
	if m.threads < 1 {
		return nil, usagef("--threads: %d is below 1", m.threads)
	}
	network.SetBLASThreads(m.threads)
	if m.model == "" {
		return pipeline.ParseModel(demo.Model(), "built-in demo model")
	}
	return pipeline.LoadModel(m.model)
}

// demoOptions returns the options for the demo's data, which is stored
// already normalized.
func demoOptions(limit int) (dataset.Options, error) {
	if _, err := demo.Meta(); err != nil {
		return dataset.Options{}, err
	}
	return dataset.Options{Limit: limit}, nil
}

// loadData loads --data; with no --data and no --model it loads the demo's
// test set (calib=false) or calibration set (calib=true).
func (m *modelFlags) loadData(calib bool) (*dataset.Dataset, error) {
	if m.batch < 1 || m.batch > maxBatch {
		return nil, usagef("--batch: %d is not in 1..%d", m.batch, maxBatch)
	}
	if m.data == "" {
		if m.model != "" {
			return nil, usagef("--data is required with --model")
		}
		opt, err := demoOptions(m.limit)
		if err != nil {
			return nil, err
		}
		var ds *dataset.Dataset
		if calib {
			ds, err = dataset.FromNPZBytes(demo.CalibNPZ(), "built-in demo calibration set", opt)
		} else {
			ds, err = dataset.FromNPZBytes(demo.TestNPZ(), "built-in demo test set", opt)
		}
		if err == nil && m.labels == "none" {
			ds.Y = nil
		}
		return ds, err
	}
	opt, err := m.options()
	if err != nil {
		return nil, err
	}
	ds, err := dataset.Load(m.data, opt)
	if err != nil {
		return nil, err
	}
	if m.labels == "none" {
		ds.Y = nil // unlabelled: losses use the float model's own outputs
	}
	return ds, nil
}

// inputs loads the model and calibration data with their hashes.
func (m *modelFlags) inputs() (*pipeline.Inputs, error) {
	net, err := m.loadModel()
	if err != nil {
		return nil, err
	}
	in := &pipeline.Inputs{Net: net}
	if m.model == "" {
		in.ModelName = "built-in demo"
		in.ModelSHA256 = pipeline.HashBytes(demo.Model())
	} else {
		in.ModelName = m.model
		if in.ModelSHA256, err = pipeline.HashPath(m.model); err != nil {
			return nil, err
		}
	}
	if in.Calib, err = m.loadData(true); err != nil {
		return nil, err
	}
	if m.data == "" {
		in.DataName = "built-in demo calibration set"
		in.DataSHA256 = pipeline.HashBytes(demo.CalibNPZ())
	} else {
		in.DataName = m.data
		h, err := pipeline.HashPath(m.data)
		if err != nil {
			return nil, err
		}
		if m.labels != "" && m.labels != "none" {
			hl, err := pipeline.HashPath(m.labels)
			if err != nil {
				return nil, err
			}
			h = pipeline.HashBytes([]byte(h + hl))
		}
		// Options that change the samples change the identity too.
		in.DataSHA256 = pipeline.HashBytes([]byte(fmt.Sprintf("%s|%s|%s|%s|%d", h, m.mean, m.std, m.resize, m.limit)))
	}
	return in, nil
}
