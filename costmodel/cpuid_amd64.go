//go:build amd64 && !purego

package costmodel

// cpuid executes the CPUID instruction with EAX = leaf and ECX = sub.
func cpuid(leaf, sub uint32) (a, b, c, d uint32)

// cpuidCaches reads the cache geometry from this processor's CPUID.
func cpuidCaches() (CacheInfo, int) { return cachesFromCPUID(cpuid) }
