// Package plots writes the mpsearch report: one self-contained HTML page
// with interactive charts (go-echarts over Apache ECharts) and tables.
//
// The page starts with a text summary (the budgets, the returned
// configuration, its accuracy against the best uniform configuration that
// fits and keeps the fixed layers, and against float). The trade-off charts
// (accuracy, measured held-out loss and proxy objective) are drawn against
// one resource, the one the front was swept in (Report.FrontResource;
// FrontNote says which other budgets were held): the measured front (what
// the search returns at each budget) as a line, the proxy's optima as
// "proxy optimum, unverified" (unselected in the legend until clicked), the
// uniform baselines with and without the fixed layers, the verified
// candidates, RL points and the chosen configuration. Point labels hide
// where they would overlap (ECharts labelLayout hideOverlap; every name is
// in its tooltip). Then: measured loss against the proxy objective;
// per-layer sensitivity Omega_i(b), signed, on a linear axis, with ±1
// standard-error whiskers (a custom series placed by api.barLayout on the
// bars' own gaps); the chosen bits as their own chart; budget use; measured
// against predicted latency; the RL learning curve; integer-kernel
// throughput; the nodes the integer engine runs in float; tables of layers
// and verified candidates. Charts without data are left out.
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
