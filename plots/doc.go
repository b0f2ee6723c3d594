// Package plots writes the mpsearch report: one self-contained HTML page
// with interactive charts (go-echarts over Apache ECharts) and tables.
//
// The page shows, for whatever data the Report carries: the Pareto front
// of the proxy objective against predicted latency and against weight size,
// with the RL points, the uniform-bit-width baselines, the verified
// candidates and the chosen configuration as distinct series; accuracy
// against latency and size when accuracies are known; measured loss against
// the proxy objective; per-layer sensitivity Omega_i(b) on a logarithmic axis
// with the chosen bits; budget use as a percentage of each limit; measured
// against predicted latency; the RL learning curve; integer-kernel
// throughput; and tables of layers and verified candidates. Charts without
// data are left out.
//
// Invariants:
//   - Self-contained: the ECharts library (assets/echarts.min.js, Apache-2.0,
//     vendored from npm, see assets/README.md) is inlined in a <script>
//     element; the page references no external script, style sheet or image
//     and renders offline.
//   - Deterministic: equal Reports give byte-identical output. Chart IDs are
//     fixed (go-echarts would draw random ones), map keys are sorted, and the
//     package never reads the clock; provenance text comes in Report.Generated.
//   - No NaN or infinity reaches the page: unknown values are dropped from
//     scatter and line series, shown as ECharts' missing value "-" in bar
//     series, and as an em dash in tables.
//   - User strings (layer names, labels) cannot end a <script> element: "</"
//     inside chart scripts is written as "<\/".
//
// The package only renders; it neither prints nor exits.
package plots
