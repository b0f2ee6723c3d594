//go:build !amd64 || purego

package costmodel

// cpuidCaches is the CPUID fallback of DetectCPU; without CPUID the
// caches are unknown (zero).
func cpuidCaches() (CacheInfo, int) { return CacheInfo{}, 0 }
