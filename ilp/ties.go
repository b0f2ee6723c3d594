package ilp

import "fmt"

// TieGroups partitions layers 0..len(names)-1 by the tie groups (lists of
// layer names that must take the same width; groups that share a layer
// merge): every layer is in exactly one group, a layer in no tie alone.
// Groups come in the order of their first layer, each in ascending order.
// It is the one union-find that the ILP, the RL agent and the refinement
// share. An empty tie group or an unknown name is an error.
func TieGroups(names []string, ties [][]string) ([][]int, error) {
	index := make(map[string]int, len(names))
	for i, n := range names {
		index[n] = i
	}
	parent := make([]int, len(names))
	for i := range parent {
		parent[i] = i
	}
	find := func(i int) int {
		for parent[i] != i {
			parent[i] = parent[parent[i]]
			i = parent[i]
		}
		return i
	}
	for g, tie := range ties {
		if len(tie) == 0 {
			return nil, fmt.Errorf("tie group %d is empty", g)
		}
		for _, name := range tie {
			if _, ok := index[name]; !ok {
				return nil, fmt.Errorf("tie group %d: unknown layer %q", g, name)
			}
		}
		for _, name := range tie[1:] {
			a, b := find(index[tie[0]]), find(index[name])
			if a != b {
				parent[max(a, b)] = min(a, b) // the root is the group's first layer
			}
		}
	}
	var groups [][]int
	slot := make([]int, len(names)) // root -> 1 + its index in groups
	for i := range names {
		r := find(i)
		if slot[r] == 0 {
			groups = append(groups, nil)
			slot[r] = len(groups)
		}
		groups[slot[r]-1] = append(groups[slot[r]-1], i)
	}
	return groups, nil
}
