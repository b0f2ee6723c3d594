package quant

import (
	"context"
	"fmt"
	"slices"
	"sync"

	"mpsearch/network"
	"mpsearch/tensor"
)

// codesUnit is one weight parameter to quantize and the layers reading it.
type codesUnit struct {
	param  int
	layers []int // indices into net.Layers(), in order
	node   string
	bytes  int64 // the Hessians of its layers
}

// NewGPTQCodes returns the GPTQ source of net's weights: every layer
// weight quantized by GPTQ with one scale per output channel (GroupSize 0,
// scales max|w|/qmax of the original row as round-to-nearest takes them,
// codes in the ONNX weight layout, so every per-channel consumer takes
// them unchanged) at each width of opt.Widths. H = ∑ x xᵀ of each layer's
// inputs comes from one pass of the float network (as it is now, no
// activation quantization) over the batches (AccumulateHessians); a weight
// parameter that several layers share gets the sum of their Hessians, so
// one set of codes serves them all. The Cholesky factor of a layer's
// damped H⁻¹ is computed once and serves every width; Hessians and factors
// are released as soon as their weight is done, so the source keeps only
// the codes.
//
// The result does not depend on opt.Threads (layers are independent and
// each is computed by one goroutine). A ctx that ends stops the work
// between layers and widths and returns its error.
func NewGPTQCodes(ctx context.Context, net *network.Network, batches []*tensor.Tensor, opt CodesOptions) (WeightCodes, error) {
	widths := slices.Clone(opt.Widths)
	slices.Sort(widths)
	widths = slices.Compact(widths)
	if len(widths) == 0 {
		return nil, fmt.Errorf("quant: GPTQ codes for no bit width: %w", ErrBits)
	}
	for _, b := range widths {
		if b < 1 || b > 8 {
			return nil, fmt.Errorf("quant: GPTQ codes at %d bits: %w (1 to 8)", b, ErrBits)
		}
	}
	if len(batches) == 0 {
		return nil, fmt.Errorf("quant: GPTQ needs calibration batches for the Hessians of the layer inputs")
	}
	units, err := codesUnits(net)
	if err != nil {
		return nil, err
	}
	limit := opt.HessianBytes
	if limit <= 0 {
		limit = DefaultHessianBytes
	}
	src := &gptqCodes{net: net, widths: widths, codes: map[int]map[int]*WeightQuant{}, means: make([]*LayerHessian, len(net.Layers()))}
	w := floatWeights(net)
	var chunks [][2]int // units [lo, hi) whose Hessians fit in limit together
	for lo := 0; lo < len(units); {
		hi, sum := lo+1, units[lo].bytes
		for hi < len(units) && sum+units[hi].bytes <= limit {
			sum += units[hi].bytes
			hi++
		}
		chunks = append(chunks, [2]int{lo, hi})
		lo = hi
	}
	pr := &codesProgress{f: opt.Progress, total: len(units) + len(chunks)*len(batches)}
	for _, c := range chunks {
		if err := src.quantizeUnits(ctx, net, batches, units[c[0]:c[1]], w, opt, pr); err != nil {
			return nil, err
		}
	}
	return src, nil
}

// codesUnits groups net's layers by weight parameter, in the order of each
// parameter's first layer, with the size of their Hessians.
func codesUnits(net *network.Network) ([]codesUnit, error) {
	var units []codesUnit
	at := map[int]int{}
	for li, l := range net.Layers() {
		w := net.Params()[l.Weight].Value
		groups := 1
		if l.Op == "Conv" {
			g, err := convGroups(net, l.Node)
			if err != nil {
				return nil, err
			}
			groups = g
		}
		cols := int64(w.Size() / w.Shape[l.ChannelAxis])
		bytes := int64(groups) * cols * cols * 8
		if i, ok := at[l.Weight]; ok {
			first := net.Layers()[units[i].layers[0]]
			if first.ChannelAxis != l.ChannelAxis {
				return nil, fmt.Errorf("quant: layers %q and %q share weight %q with channels on axes %d and %d; GPTQ needs one channel axis", first.Node, l.Node, net.Params()[l.Weight].Name, first.ChannelAxis, l.ChannelAxis)
			}
			units[i].layers = append(units[i].layers, li)
			units[i].bytes += bytes
			continue
		}
		at[l.Weight] = len(units)
		units = append(units, codesUnit{param: l.Weight, layers: []int{li}, node: l.Node, bytes: bytes})
	}
	return units, nil
}

// codesProgress reports NewGPTQCodes' progress: one step per batch of
// each Hessian pass (the float network's forward, most of the time on
// large models) and one per weight quantized.
type codesProgress struct {
	mu          sync.Mutex
	f           func(done, total int, detail string)
	done, total int
}

func (p *codesProgress) step(detail string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done++
	if p.f != nil {
		p.f(p.done, p.total, detail)
	}
}

// quantizeUnits accumulates the Hessians of the units' layers in one pass
// and quantizes the units on opt.Threads goroutines.
func (s *gptqCodes) quantizeUnits(ctx context.Context, net *network.Network, batches []*tensor.Tensor, units []codesUnit, w map[int][]float64, opt CodesOptions, pr *codesProgress) error {
	var layers []int
	for _, u := range units {
		layers = append(layers, u.layers...)
	}
	batch := 0
	hs, err := accumulate(ctx, net, batches, layers, nil, false, func() {
		batch++
		pr.step(fmt.Sprintf("Hessians of %d layers' inputs, batch %d of %d", len(layers), batch, len(batches)))
	})
	if err != nil {
		return err
	}
	for i, li := range layers { // the input sums, before shared weights add theirs
		s.means[li] = hs[i].meansOnlyCopy()
	}
	unitH := make([][]*LayerHessian, len(units)) // per unit, its layers' Hessians
	for i, u := range units {
		unitH[i], hs = hs[:len(u.layers)], hs[len(u.layers):]
	}
	results := make([]map[int]*WeightQuant, len(units))
	errs := make([]error, len(units))
	jobs := make(chan int)
	var wg sync.WaitGroup
	for range max(1, min(opt.Threads, len(units))) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				u := units[i]
				h := unitH[i][0]
				for _, o := range unitH[i][1:] {
					if errs[i] = h.addFrom(o); errs[i] != nil {
						break
					}
				}
				if errs[i] == nil {
					p := net.Params()[u.param].Value
					results[i], errs[i] = gptqLayer(ctx, w[u.param], p.Shape, net.Layers()[u.layers[0]].ChannelAxis, h, s.widths, opt.Damp)
				}
				unitH[i] = nil // the Hessians are no longer needed
				pr.step(u.node)
			}
		}()
	}
	for i := range units {
		if ctx.Err() != nil {
			break
		}
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return err
	}
	for i, u := range units {
		if errs[i] != nil {
			return errs[i]
		}
		s.codes[u.param] = results[i]
	}
	return nil
}

// gptqLayer quantizes the weight tensor w (shape, channel axis) of the
// layer h was accumulated for by per-channel GPTQ at each width: per conv
// group one Cholesky factor of the damped H⁻¹, then one column pass per
// width. h's matrices are consumed.
func gptqLayer(ctx context.Context, w []float64, shape []int, axis int, h *LayerHessian, widths []int, damp float64) (map[int]*WeightQuant, error) {
	m, rows, cols := ToMatrix(w, shape, axis)
	if cols != h.Cols || rows%h.Groups != 0 {
		return nil, fmt.Errorf("quant: layer %q: weight %v has a %d×%d matrix view; the Hessian has %d columns and %d groups", h.Node, shape, rows, cols, h.Cols, h.Groups)
	}
	if _, err := checkMatrix(m, rows, cols, widths[0], 0); err != nil {
		return nil, fmt.Errorf("layer %q: %w", h.Node, err)
	}
	perm := make([]int, cols)
	for i := range perm {
		perm[i] = i
	}
	rg := rows / h.Groups
	all := map[int]*GroupQuant{}
	for g := 0; g < h.Groups; g++ {
		u, err := invCholesky(h.symmetric(g), cols, perm, damp)
		h.h[g] = nil
		if err != nil {
			return nil, fmt.Errorf("layer %q: %w", h.Node, err)
		}
		for _, b := range widths {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			q := gptqFactored(m[g*rg*cols:(g+1)*rg*cols], rg, cols, cols, u, perm, GPTQOptions{Bits: b})
			if a, ok := all[b]; ok {
				a.Scales = append(a.Scales, q.Scales...)
				a.Q = append(a.Q, q.Q...)
				continue
			}
			all[b] = q
		}
	}
	out := make(map[int]*WeightQuant, len(widths))
	for _, b := range widths {
		gq := all[b]
		gq.Rows = rows
		wq, err := gq.WeightQuant(shape, axis)
		if err != nil {
			return nil, fmt.Errorf("layer %q: %w", h.Node, err)
		}
		out[b] = wq
	}
	return out, nil
}
