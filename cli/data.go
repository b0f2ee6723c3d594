package cli

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"sort"
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
	// inputShapes holds the --input-shape values by input name.
	inputShapes shapesFlag
	precision   string
	// equalize is --equalize (registerEqualize): loadModel equalizes the
	// model across layers when it is true.
	equalize optBool
}

// defaultEqualize is --equalize's default on the commands that quantize
// (sensitivity, search, pareto): off. With one weight scale per output
// channel it gained in 6 of 24 uniform W8/W4/W3 cells on the four
// Fashion-MNIST CNNs (by at most 0.26 point) and cost the
// depthwise-separable one most (GPTQ W3: 85.40% -> 81.37%; to nearest
// 80.51% -> 75.70%) (TestEqualizeEvidence in package equalize; the README).
const defaultEqualize = false

// registerEqualize adds --equalize; followsBits says its default comes
// from bits.yaml (eval and run --bits), else it is defaultEqualize.
func (m *modelFlags) registerEqualize(fs *flag.FlagSet, followsBits bool) {
	if followsBits {
		fs.Var(&m.equalize, "equalize", "with --bits: equalize the weight ranges of Conv/Gemm chains across layers first (default: as bits.yaml records)")
		return
	}
	m.equalize.v = defaultEqualize
	fs.Var(&m.equalize, "equalize", "equalize the weight ranges of Conv/Gemm chains (through ReLU and pooling) across layers before quantizing (cross-layer equalization; the float function is unchanged); the metrics, verification and export all use the equalized weights")
}

func (m *modelFlags) register(fs *flag.FlagSet, withData bool) {
	fs.StringVar(&m.model, "model", "", "ONNX model `file` (default: the built-in Fashion-MNIST demo)")
	m.threads = runtime.NumCPU()
	fs.Var(threadsFlag{&m.threads}, "threads", "threads for the engines (matrix products, mini-batches, direct-metric chunks); results do not depend on it (default: the number of CPUs; capped at it)")
	fs.StringVar(&m.precision, "precision", "f32", "arithmetic of the float engine's matrix products (Conv, Gemm, MatMul): f32 (sgemm) or f64 (the exact reference)")
	fs.Var(&m.inputShapes, "input-shape", "fix a model input's shape, `NAME=1x3x224x224` (batch first, its value ignored); repeatable; default: dynamic dimensions come from the data")
	if !withData {
		return
	}
	fs.StringVar(&m.data, "data", "", "data: .npz (x, y), .npy, IDX images file, or a folder of class folders of PNG/JPEG")
	fs.StringVar(&m.labels, "labels", "", "labels `file` (.npy or IDX) for --data given as .npy or IDX images; \"none\" ignores labels (losses then use the float model's own outputs)")
	fs.StringVar(&m.mean, "mean", "", "per-channel mean subtracted after scaling pixels to [0,1], comma-separated")
	fs.StringVar(&m.std, "std", "", "per-channel standard deviation divided by after --mean, comma-separated")
	fs.StringVar(&m.resize, "resize", "", "resize images of a folder to `HxW`")
	fs.Var(limitFlag{&m.limit}, "limit", fmt.Sprintf("use only the first `N` samples (0: all; at most %d)", maxLimit))
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

// options converts the data flags to dataset options for data loaded whole.
func (m *modelFlags) options() (dataset.Options, error) { return m.optionsFor(false) }

// optionsFor converts the data flags to dataset options. streamed says the
// data will be read batch by batch (eval, run): the memory check of a
// resized folder then counts one batch of --batch images, not the folder.
func (m *modelFlags) optionsFor(streamed bool) (dataset.Options, error) {
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
				limit := m.limit
				if streamed && (limit == 0 || limit > m.batch) {
					limit = m.batch
				}
				if err := checkResizeMemory(m.data, h, w, limit); err != nil {
					return opt, err
				}
			}
		}
		opt.Resize = [2]int{h, w}
	}
	opt.Limit = m.limit
	if m.labels != "none" {
		opt.Labels = m.labels
	}
	return opt, nil
}

// sampleShaper is data whose sample shape is known: a *dataset.Dataset or
// a *dataset.Stream.
type sampleShaper interface{ SampleShape() []int }

// loadModel loads --model, or the demo. ds, when not nil, is the data the
// model will run on: its sample shape resolves the dimensions the model
// leaves dynamic, unless --input-shape is given.
func (m *modelFlags) loadModel(ds sampleShaper) (*network.Network, error) {
	if err := m.check(); err != nil {
		return nil, err
	}
	network.SetBLASThreads(m.threads)
	prec, _ := network.ParsePrecision(m.precision) // checked by check
	opt := pipeline.ModelOptions{InputShapes: m.inputShapes, Precision: prec}
	if ds != nil {
		opt.SampleShape = ds.SampleShape()
	}
	var net *network.Network
	var err error
	if m.model == "" {
		net, err = pipeline.ParseModel(demo.Model(), "built-in demo model", opt)
	} else {
		net, err = pipeline.LoadModel(m.model, opt)
	}
	if err != nil || !m.equalize.v {
		return net, err
	}
	net, _, err = pipeline.Equalize(net)
	return net, err
}

// check validates the flags every command shares.
func (m *modelFlags) check() error {
	if m.threads < 1 {
		return usagef("--threads: %d is below 1", m.threads)
	}
	if _, err := network.ParsePrecision(m.precision); err != nil {
		return usagef("--%v", err)
	}
	return nil
}

// shapesFlag collects repeated --input-shape NAME=DxDx...xD values.
type shapesFlag map[string][]int

func (s *shapesFlag) String() string {
	if s == nil || len(*s) == 0 {
		return ""
	}
	names := make([]string, 0, len(*s))
	for k := range *s {
		names = append(names, k)
	}
	sort.Strings(names)
	parts := make([]string, len(names))
	for i, k := range names {
		parts[i] = k + "=" + formatDims((*s)[k])
	}
	return strings.Join(parts, ",")
}

// Set parses NAME=DxDx...xD strictly: a non-empty name, then positive
// decimal dimensions separated by 'x', nothing else.
func (s *shapesFlag) Set(v string) error {
	i := strings.LastIndex(v, "=")
	if i <= 0 {
		return fmt.Errorf("%q: want NAME=DxDx...xD, e.g. input=1x3x224x224", v)
	}
	name, dims := v[:i], v[i+1:]
	var shape []int
	for _, d := range strings.Split(dims, "x") {
		n, err := strconv.Atoi(d)
		if err != nil || n <= 0 || strings.TrimLeft(d, "0123456789") != "" {
			return fmt.Errorf("%q: dimension %q is not a positive integer; want NAME=DxDx...xD, e.g. %s=1x3x224x224", v, d, name)
		}
		shape = append(shape, n)
	}
	if *s == nil {
		*s = shapesFlag{}
	}
	if _, dup := (*s)[name]; dup {
		return fmt.Errorf("%q: input %q is given twice", v, name)
	}
	(*s)[name] = shape
	return nil
}

func formatDims(shape []int) string {
	parts := make([]string, len(shape))
	for i, d := range shape {
		parts[i] = strconv.Itoa(d)
	}
	return strings.Join(parts, "x")
}

// demoOptions returns the options for the demo's data, which is stored
// already normalized.
func demoOptions(limit int) (dataset.Options, error) {
	if _, err := demo.Meta(); err != nil {
		return dataset.Options{}, err
	}
	return dataset.Options{Limit: limit}, nil
}

// loadData loads --data whole; with no --data and no --model it loads the
// demo's test set (calib=false) or calibration set (calib=true).
func (m *modelFlags) loadData(calib bool) (*dataset.Dataset, error) {
	s, err := m.openData(calib, false)
	if err != nil {
		return nil, err
	}
	return s.Load()
}

// openData opens --data (or the demo's set, as loadData) for reading in
// mini-batches; streamed says it will be read so (eval, run), not loaded
// whole. With --labels none its batches carry no labels: the losses then
// use the float model's own outputs.
func (m *modelFlags) openData(calib, streamed bool) (*dataset.Stream, error) {
	if err := m.check(); err != nil {
		return nil, err
	}
	if m.batch < 1 || m.batch > maxBatch {
		return nil, usagef("--batch: %d is not in 1..%d", m.batch, maxBatch)
	}
	var s *dataset.Stream
	if m.data == "" {
		if m.model != "" {
			return nil, usagef("--data is required with --model")
		}
		opt, err := demoOptions(m.limit)
		if err != nil {
			return nil, err
		}
		if calib {
			s, err = dataset.OpenNPZBytes(demo.CalibNPZ(), "built-in demo calibration set", opt)
		} else {
			s, err = dataset.OpenNPZBytes(demo.TestNPZ(), "built-in demo test set", opt)
		}
		if err != nil {
			return nil, err
		}
	} else {
		opt, err := m.optionsFor(streamed)
		if err != nil {
			return nil, err
		}
		if s, err = dataset.Open(m.data, opt); err != nil {
			return nil, err
		}
	}
	if m.labels == "none" {
		s = s.WithoutLabels()
	}
	return s, nil
}

// inputs loads the calibration data, then the model (whose dynamic
// dimensions the data's shape resolves), with their hashes.
func (m *modelFlags) inputs() (*pipeline.Inputs, error) {
	calib, err := m.loadData(true)
	if err != nil {
		return nil, err
	}
	net, err := m.loadModel(calib)
	if err != nil {
		return nil, err
	}
	in := &pipeline.Inputs{Net: net, Calib: calib, Equalized: m.equalize.v}
	if m.model == "" {
		in.ModelName = "built-in demo"
		in.ModelSHA256 = pipeline.HashBytes(demo.Model())
	} else {
		in.ModelName = m.model
		if in.ModelSHA256, err = pipeline.HashPath(m.model); err != nil {
			return nil, err
		}
	}
	if len(m.inputShapes) > 0 {
		// The shapes given change the network, so the identity too.
		in.ModelSHA256 = pipeline.HashBytes([]byte(in.ModelSHA256 + "|input-shape " + m.inputShapes.String()))
	}
	if net.Precision() != network.F64 {
		// So does the arithmetic (cached tables made in float64 keep their key).
		in.ModelSHA256 = pipeline.HashBytes([]byte(in.ModelSHA256 + "|precision " + net.Precision().String()))
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

// inferBudget is the memory the activations of one forward-only batch may
// take when --batch is not given (eval, run): 512 MiB leaves room for the
// garbage collector's headroom (up to the live heap again) and the data
// set under the 3 GiB that an ImageNet-scale run is allowed.
const inferBudget = 512 << 20

// autoBatch makes --batch memory-aware for forward-only commands: unless
// the flag was given, the batch is the largest up to 256 whose activations
// (network.ActivationBytesPerSample, from the layer shapes) fit in
// inferBudget. It must be called after registering the flags, with the
// parsed flag set and the built network.
func (m *modelFlags) autoBatch(fs *flag.FlagSet, net *network.Network) {
	given := false
	fs.Visit(func(f *flag.Flag) { given = given || f.Name == "batch" })
	if !given {
		m.batch = net.InferBatch(inferBudget, m.batch)
	}
}

// autoBatchUsage rewrites --batch's help for commands that use autoBatch.
func autoBatchUsage(fs *flag.FlagSet) {
	f := fs.Lookup("batch")
	f.Usage = "samples per forward pass; auto: 256, or fewer when one batch's activations, estimated from the layer shapes as 3 float64 copies of the widest layer input or output per sample, would pass 512 MiB"
	f.DefValue = "auto"
}
