// Package profiles ships mpsearch's hardware profiles (YAML, read by
// package costmodel): one measured on the development CPU and one analytic
// AVX2 profile for CPUs that have none. See README.md here.
package profiles

import (
	"embed"
	"sort"
	"strings"
)

//go:embed *.yaml
var files embed.FS

// Analytic is the name of the analytic AVX2 profile, the fallback.
const Analytic = "avx2-analytic"

// Names lists the shipped profiles, sorted.
func Names() []string {
	ents, _ := files.ReadDir(".")
	var out []string
	for _, e := range ents {
		out = append(out, strings.TrimSuffix(e.Name(), ".yaml"))
	}
	sort.Strings(out)
	return out
}

// Get returns a shipped profile's YAML by name.
func Get(name string) ([]byte, bool) {
	b, err := files.ReadFile(name + ".yaml")
	return b, err == nil
}
