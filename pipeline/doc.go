// Package pipeline is mpsearch's end-to-end job as a library: it loads a
// model and data, evaluates, computes sensitivities and costs, searches bit
// widths, quantizes, exports and reports. The command-line package and the
// tests both drive it; it never prints (progress goes through callbacks).
//
// Invariants: a search whose context ends returns an error and no result;
// an ILP solution not proven optimal is labelled "best found, proven gap
// X%", never "optimum"; every candidate measured or returned keeps the
// layers fixed by the table or KeepEnds (plain uniform configurations that
// override them are ReferenceOnly); WriteFiles replaces all outputs or
// none, and CheckOutDir/CheckOutFile let callers refuse a bad --out before
// the job runs.
package pipeline
