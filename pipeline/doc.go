// Package pipeline is mpsearch's end-to-end job as a library: it loads a
// model and data, evaluates, computes sensitivities and costs, searches bit
// widths, quantizes, exports and reports. The command-line package and the
// tests both drive it; it never prints (progress goes through callbacks).
package pipeline
