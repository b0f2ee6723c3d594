package plots

import (
	"bytes"
	"context"
	"encoding/json"
	stdhtml "html"
	"image/png"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"mpsearch/internal/citest"
)

// chromiumPath is Debian's chromium; CI installs it (apt-get install chromium).
const chromiumPath = "/usr/bin/chromium"

// chromiumTimeout bounds each browser run; a run takes about 2 s here.
const chromiumTimeout = 60 * time.Second

// minInkFraction is the least fraction of non-white pixels a 1280×2400
// screenshot of the fixture report must have. The fixture's rendered page
// measures about 9 %; a page whose charts failed to draw (headings and
// tables only) measures under 2 %.
const minInkFraction = 0.03

// minColorFraction is the least fraction of strongly coloured pixels (series
// marks; text, axes and grid lines are grey). The fixture measures about
// 3 %; with no chart drawn it is 0.
const minColorFraction = 0.005

// chromium runs headless Chromium on args with networking cut off (every
// host name resolves to nothing) and returns its stdout and stderr.
func chromium(t *testing.T, dir string, args ...string) (stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), chromiumTimeout)
	defer cancel()
	base := []string{
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir=" + filepath.Join(dir, "profile"),
		"--enable-logging=stderr", "--v=0",
		"--host-resolver-rules=MAP * ~NOTFOUND",
		"--virtual-time-budget=5000",
	}
	cmd := exec.CommandContext(ctx, chromiumPath, append(base, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium %v: %v\n%s", args, err, tail(errb.String(), 2000))
	}
	return out.String(), errb.String()
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// consoleLines returns the page's console output and uncaught errors from
// Chromium's log (Chromium logs every console level as INFO:CONSOLE).
func consoleLines(log string) []string {
	var lines []string
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, ":CONSOLE") || strings.Contains(l, "Uncaught") {
			lines = append(lines, l)
		}
	}
	return lines
}

var netURL = regexp.MustCompile(`"url":"(https?://[^"]*)"`)

// browserHosts are contacted by Chromium itself (time, update, account
// services) whatever the page; the page must contact nothing else.
var browserHosts = []string{"google.com", "googleapis.com", "gvt1.com", "gstatic.com"}

func pageRequests(netlog string) []string {
	var page []string
	for _, m := range netURL.FindAllStringSubmatch(netlog, -1) {
		u, err := url.Parse(m[1])
		if err != nil {
			page = append(page, m[1])
			continue
		}
		own := false
		for _, h := range browserHosts {
			own = own || u.Hostname() == h || strings.HasSuffix(u.Hostname(), "."+h)
		}
		if !own {
			page = append(page, m[1])
		}
	}
	return page
}

func TestChromium(t *testing.T) {
	if _, err := os.Stat(chromiumPath); err != nil {
		citest.Missing(t, "%s not installed (apt-get install chromium, or scripts/setup.sh --test)", chromiumPath)
	}
	dir := t.TempDir()
	report := filepath.Join(dir, "report.html")
	if err := WriteFile(report, fixture()); err != nil {
		t.Fatal(err)
	}
	html, err := os.ReadFile(report)
	if err != nil {
		t.Fatal(err)
	}
	ids := []string{}
	for id := range options(t, string(html)) {
		ids = append(ids, id)
	}
	pageURL := (&url.URL{Scheme: "file", Path: report}).String()

	shot := filepath.Join(dir, "shot.png")
	netlog := filepath.Join(dir, "net.json")
	_, log := chromium(t, dir, "--screenshot="+shot, "--window-size=1280,2400", "--log-net-log="+netlog, pageURL)
	if lines := consoleLines(log); len(lines) > 0 {
		t.Errorf("console output while rendering the report:\n%s", strings.Join(lines, "\n"))
	}
	if nl, err := os.ReadFile(netlog); err != nil {
		t.Errorf("no network log: %v", err)
	} else if reqs := pageRequests(string(nl)); len(reqs) > 0 {
		t.Errorf("the report requested network resources: %q", reqs)
	}
	ink, color := inkFractions(t, shot)
	t.Logf("screenshot: %.1f %% non-white, %.1f %% coloured pixels", 100*ink, 100*color)
	if ink < minInkFraction {
		t.Errorf("screenshot non-white fraction = %.4f; want >= %.2f (charts not drawn?)", ink, minInkFraction)
	}
	if color < minColorFraction {
		t.Errorf("screenshot coloured fraction = %.4f; want >= %.3f (no series drawn?)", color, minColorFraction)
	}
	if keep := os.Getenv("PLOTS_SCREENSHOT"); keep != "" {
		if b, err := os.ReadFile(shot); err == nil {
			os.WriteFile(keep, b, 0o644)
		}
	}

	dom, log := chromium(t, dir, "--dump-dom", pageURL)
	if lines := consoleLines(log); len(lines) > 0 {
		t.Errorf("console output while dumping the DOM:\n%s", strings.Join(lines, "\n"))
	}
	if got := strings.Count(dom, "<canvas"); got < len(ids) {
		t.Errorf("DOM has %d canvas elements; want at least %d (one per chart)", got, len(ids))
	}
	for _, id := range ids {
		i := strings.Index(dom, `id="`+id+`"`)
		if i < 0 {
			t.Errorf("chart %s: container missing from the DOM", id)
			continue
		}
		el := dom[i:]
		if end := strings.Index(el, "</script>"); end >= 0 {
			el = el[:end]
		}
		if !strings.Contains(el, "_echarts_instance_") || !strings.Contains(el, "<canvas") {
			t.Errorf("chart %s: ECharts did not initialise its container (no instance or canvas)", id)
		}
	}
}

// inkFractions returns the fractions of pixels that are not near-white and
// that are strongly coloured (channel spread above 60 of 255).
func inkFractions(t *testing.T, path string) (ink, color float64) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("screenshot missing: %v", err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("decode screenshot: %v", err)
	}
	b := img.Bounds()
	var nInk, nColor int
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			r, g, bl = r>>8, g>>8, bl>>8
			if r < 240 || g < 240 || bl < 240 {
				nInk++
			}
			if max(r, g, bl)-min(r, g, bl) > 60 {
				nColor++
			}
		}
	}
	n := float64(b.Dx() * b.Dy())
	return float64(nInk) / n, float64(nColor) / n
}

// labelCheckJS, appended to a copy of the report, writes for every chart
// the number of data items its series hold and every pair of visible
// series labels whose boxes overlap by more than a pixel each way, as JSON
// in <pre id="label-check">, read back from Chromium's --dump-dom. Labels
// hidden by ECharts' labelLayout (hideOverlap) are not visible.
const labelCheckJS = `<script>
window.addEventListener("load", function () {
  setTimeout(function () {
    var out = [];
    document.querySelectorAll(".chart .item").forEach(function (el) {
      var c = echarts.getInstanceByDom(el);
      if (!c) { out.push({id: el.id, error: "no instance"}); return; }
      var points = 0;
      c.getModel().getSeries().forEach(function (s) { points += s.getData().count(); });
      var boxes = [];
      c.getZr().storage.getDisplayList(true).forEach(function (d) {
        // A label's text is drawn as tspans of a text element attached to
        // the data item's element (its host); titles, axes and legends
        // have no host.
        var text = d.parent, host = text && text.__hostTarget;
        if (d.type !== "tspan" || !host || text.ignore || text.invisible || d.invisible || !d.style || !d.style.text) { return; }
        var r = d.getBoundingRect().clone();
        if (d.transform) { r.applyTransform(d.transform); }
        boxes.push({text: String(d.style.text), x: r.x, y: r.y, w: r.width, h: r.height});
      });
      var overlaps = [];
      for (var i = 0; i < boxes.length; i++) {
        for (var j = i + 1; j < boxes.length; j++) {
          var a = boxes[i], b = boxes[j];
          var ox = Math.min(a.x + a.w, b.x + b.w) - Math.max(a.x, b.x);
          var oy = Math.min(a.y + a.h, b.y + b.h) - Math.max(a.y, b.y);
          if (ox > 1 && oy > 1) { overlaps.push([a.text, b.text]); }
        }
      }
      out.push({id: el.id, points: points, labels: boxes.length, overlaps: overlaps});
    });
    var pre = document.createElement("pre");
    pre.id = "label-check";
    pre.textContent = JSON.stringify(out);
    document.body.appendChild(pre);
  }, 500);
});
</script>`

// chartLabels is labelCheckJS's result for one chart.
type chartLabels struct {
	ID       string      `json:"id"`
	Error    string      `json:"error"`
	Points   int         `json:"points"`
	Labels   int         `json:"labels"`
	Overlaps [][2]string `json:"overlaps"`
}

var labelCheckPattern = regexp.MustCompile(`<pre id="label-check">(.*?)</pre>`)

// checkLabels renders html with labelCheckJS in Chromium and returns the
// per-chart result.
func checkLabels(t *testing.T, dir, html string) []chartLabels {
	t.Helper()
	i := strings.LastIndex(html, "</body>")
	page := filepath.Join(dir, "labels.html")
	if err := os.WriteFile(page, []byte(html[:i]+labelCheckJS+html[i:]), 0o644); err != nil {
		t.Fatal(err)
	}
	dom, log := chromium(t, dir, "--dump-dom", "--window-size=1280,2400", (&url.URL{Scheme: "file", Path: page}).String())
	if lines := consoleLines(log); len(lines) > 0 {
		t.Errorf("console output while checking labels:\n%s", strings.Join(lines, "\n"))
	}
	m := labelCheckPattern.FindStringSubmatch(dom)
	if m == nil {
		t.Fatalf("label check wrote no result")
	}
	var out []chartLabels
	if err := json.Unmarshal([]byte(stdhtml.UnescapeString(m[1])), &out); err != nil {
		t.Fatalf("label check result %q: %v", m[1], err)
	}
	return out
}

// TestChromiumLabels: in the headless browser every chart of the fixture
// report draws data and no two visible labels overlap. The same page with
// the label layout removed must show overlaps, so the check can fail.
func TestChromiumLabels(t *testing.T) {
	if _, err := os.Stat(chromiumPath); err != nil {
		citest.Missing(t, "%s not installed (apt-get install chromium, or scripts/setup.sh --test)", chromiumPath)
	}
	dir := t.TempDir()
	html := renderHTML(t, fixture())
	ids := options(t, html)
	got := checkLabels(t, dir, html)
	if len(got) != len(ids) {
		t.Errorf("label check saw %d charts; want %d", len(got), len(ids))
	}
	labels := 0
	for _, c := range got {
		if c.Error != "" || c.Points == 0 {
			t.Errorf("chart %s: %d data items (%s); want a drawn chart", c.ID, c.Points, c.Error)
		}
		for _, o := range c.Overlaps {
			t.Errorf("chart %s: labels %q and %q overlap", c.ID, o[0], o[1])
		}
		labels += c.Labels
	}
	if labels == 0 {
		t.Errorf("no visible series label in any chart; the check measured nothing")
	}
	control := checkLabels(t, dir, strings.ReplaceAll(html, `"labelLayout":{"hideOverlap":true}`, `"labelLayout":{}`))
	overlaps := 0
	for _, c := range control {
		overlaps += len(c.Overlaps)
	}
	if overlaps == 0 {
		t.Errorf("without hideOverlap the fixture shows no overlapping labels; the check cannot fail")
	}
	t.Logf("%d charts, %d visible labels, none overlapping; %d overlaps without the label layout", len(got), labels, overlaps)
}
