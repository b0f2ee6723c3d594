package onnx

import (
	"math"
	"slices"

	"mpsearch/tensor"
)

// Has reports whether n has an attribute called name.
func (n *Node) Has(name string) bool {
	_, ok := n.Attrs[name]
	return ok
}

// Int returns the INT attribute name, or def when n has no INT attribute
// of that name.
func (n *Node) Int(name string, def int64) int64 {
	if a, ok := n.Attrs[name]; ok && a.Type == AttrInt {
		return a.I
	}
	return def
}

// Ints returns a copy of the INTS attribute name, or def when n has no
// INTS attribute of that name.
func (n *Node) Ints(name string, def []int64) []int64 {
	if a, ok := n.Attrs[name]; ok && a.Type == AttrInts {
		return slices.Clone(a.Ints)
	}
	return def
}

// Float returns the FLOAT attribute name, or def when n has no FLOAT
// attribute of that name.
func (n *Node) Float(name string, def float32) float32 {
	if a, ok := n.Attrs[name]; ok && a.Type == AttrFloat {
		return a.F
	}
	return def
}

// Str returns the STRING attribute name, or def when n has no STRING
// attribute of that name.
func (n *Node) Str(name, def string) string {
	if a, ok := n.Attrs[name]; ok && a.Type == AttrString {
		return a.S
	}
	return def
}

// CheckFinite returns an error wrapping ErrNonFinite that names the first
// initializer (in InitOrder, then by name for any not listed there) or
// node tensor attribute holding a NaN or infinity, and nil when every
// value is finite. Subgraphs are not inspected.
func (g *Graph) CheckFinite() error {
	seen := make(map[string]bool, len(g.InitOrder))
	check := func(name string) error {
		seen[name] = true
		if i, v, bad := firstNonFinite(g.Initializers[name]); bad {
			return errorf(ErrNonFinite, "onnx: initializer %q: value %v at index %d", name, v, i)
		}
		return nil
	}
	for _, name := range g.InitOrder {
		if err := check(name); err != nil {
			return err
		}
	}
	for _, name := range sortedKeys(g.Initializers) {
		if !seen[name] {
			if err := check(name); err != nil {
				return err
			}
		}
	}
	for k := range g.Nodes {
		n := &g.Nodes[k]
		for _, an := range sortedKeys(n.Attrs) {
			a := n.Attrs[an]
			ts := a.Tensors
			if a.T != nil {
				ts = append([]*tensor.Tensor{a.T}, ts...)
			}
			for _, t := range ts {
				if i, v, bad := firstNonFinite(t); bad {
					return errorf(ErrNonFinite, "onnx: %s: attribute %q: value %v at index %d", nodeLabel(k, n.Name, n.OpType), an, v, i)
				}
			}
		}
	}
	return nil
}

// firstNonFinite returns the index and value of the first NaN or infinity
// in t.
func firstNonFinite(t *tensor.Tensor) (int, float64, bool) {
	if t == nil {
		return 0, 0, false
	}
	for i, v := range t.Data {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return i, v, true
		}
	}
	return 0, 0, false
}
