package network

import (
	"mpsearch/onnx"
	"mpsearch/tensor"
)

// foldBatchNorms rewrites every BatchNormalization whose input is the only
// use of a Conv's (or a Gemm's with transB=1) output, whose parameters are
// initializers, into that Conv/Gemm: the weight and bias are replaced by
// folded tensors under new initializer names, and the BatchNormalization
// node is removed (its output is produced by the Conv/Gemm instead).
// Anything else stays a BatchNormalization node and is executed.
func foldBatchNorms(g *onnx.Graph) {
	uses := map[string]int{}
	for _, n := range g.Nodes {
		for _, in := range n.Inputs {
			uses[in]++
		}
	}
	for _, o := range g.Outputs {
		uses[o.Name]++
	}
	producer := map[string]int{}
	for i, n := range g.Nodes {
		for _, o := range n.Outputs {
			producer[o] = i
		}
	}
	isInit := func(name string) bool { _, ok := g.Initializers[name]; return ok && name != "" }
	drop := map[int]bool{}
	for i, bn := range g.Nodes {
		if bn.OpType != "BatchNormalization" || len(bn.Inputs) < 5 || len(bn.Outputs) < 1 {
			continue
		}
		if len(bn.Outputs) > 1 && bn.Outputs[1] != "" && uses[bn.Outputs[1]] > 0 {
			continue
		}
		if a, ok := bn.Attrs["training_mode"]; ok && a.I != 0 {
			continue
		}
		pi, ok := producer[bn.Inputs[0]]
		if !ok || uses[bn.Inputs[0]] != 1 {
			continue
		}
		pr := &g.Nodes[pi]
		if pr.OpType != "Conv" && pr.OpType != "Gemm" {
			continue
		}
		if pr.OpType == "Gemm" && !gemmFoldable(pr) {
			continue
		}
		if len(pr.Inputs) < 2 || !isInit(pr.Inputs[1]) || (len(pr.Inputs) > 2 && pr.Inputs[2] != "" && !isInit(pr.Inputs[2])) {
			continue
		}
		if uses[pr.Inputs[1]] != 1 || (len(pr.Inputs) > 2 && pr.Inputs[2] != "" && uses[pr.Inputs[2]] != 1) {
			continue // weights shared with another node: folding would change it too
		}
		ok = true
		for _, name := range bn.Inputs[1:5] {
			ok = ok && isInit(name)
		}
		if !ok {
			continue
		}
		eps := 1e-5
		if a, has := bn.Attrs["epsilon"]; has {
			eps = float64(a.F)
		}
		w := g.Initializers[pr.Inputs[1]]
		var b *tensor.Tensor
		if len(pr.Inputs) > 2 && pr.Inputs[2] != "" {
			b = g.Initializers[pr.Inputs[2]]
		}
		if w.Rank() < 1 || (b != nil && b.Size() != w.Shape[0]) {
			continue
		}
		sizesOK := true
		for _, name := range bn.Inputs[1:5] {
			sizesOK = sizesOK && g.Initializers[name].Size() == w.Shape[0]
		}
		for _, v := range g.Initializers[bn.Inputs[4]].Data {
			sizesOK = sizesOK && v+eps > 0
		}
		if !sizesOK {
			continue // left to the executed BatchNormalization, which reports it
		}
		fw, fb := FoldBatchNorm(w, b, g.Initializers[bn.Inputs[1]], g.Initializers[bn.Inputs[2]], g.Initializers[bn.Inputs[3]], g.Initializers[bn.Inputs[4]], eps)
		wName := pr.Inputs[1]
		bName := bn.Name + ".folded_bias"
		if b != nil {
			bName = pr.Inputs[2]
		}
		g.Initializers[wName] = fw
		if _, exists := g.Initializers[bName]; !exists {
			g.InitOrder = append(g.InitOrder, bName)
		}
		g.Initializers[bName] = fb
		g.InitTypes[bName] = g.InitTypes[wName]
		in := append([]string(nil), pr.Inputs[:2]...)
		pr.Inputs = append(in, bName)
		pr.Outputs = []string{bn.Outputs[0]}
		drop[i] = true
	}
	if len(drop) == 0 {
		return
	}
	kept := g.Nodes[:0]
	for i, n := range g.Nodes {
		if !drop[i] {
			kept = append(kept, n)
		}
	}
	g.Nodes = kept
	pruneInitializers(g)
}

// gemmFoldable reports whether a Gemm's per-output scaling can be folded
// into its weight rows: transB=1 (weight [out,in]), alpha and beta 1, no
// transA.
func gemmFoldable(n *onnx.Node) bool {
	if a, ok := n.Attrs["transB"]; !ok || a.I == 0 {
		return false
	}
	if a, ok := n.Attrs["transA"]; ok && a.I != 0 {
		return false
	}
	for _, k := range []string{"alpha", "beta"} {
		if a, ok := n.Attrs[k]; ok && a.F != 1 {
			return false
		}
	}
	return true
}

// pruneInitializers drops initializers no node uses any more.
func pruneInitializers(g *onnx.Graph) {
	used := map[string]bool{}
	for _, n := range g.Nodes {
		for _, in := range n.Inputs {
			used[in] = true
		}
	}
	order := g.InitOrder[:0]
	for _, name := range g.InitOrder {
		if used[name] {
			order = append(order, name)
		} else {
			delete(g.Initializers, name)
			delete(g.InitTypes, name)
		}
	}
	g.InitOrder = order
}
