package cli

import (
	"fmt"
	"time"
)

// progress draws a progress line on stderr: redrawn in place on a
// terminal, a line every few seconds otherwise.
type progress struct {
	e     *env
	label string
	start time.Time
	last  time.Time
	drawn bool
}

func newProgress(e *env, label string) *progress {
	return &progress{e: e, label: label, start: time.Now()}
}

// update reports done of total, with an optional detail string.
func (p *progress) update(done, total int, detail string) {
	now := time.Now()
	final := done >= total
	every := 3 * time.Second
	if p.e.stderrTTY {
		every = 100 * time.Millisecond
	}
	if !final && now.Sub(p.last) < every {
		return
	}
	p.last = now
	pct := 0.0
	if total > 0 {
		pct = 100 * float64(done) / float64(total)
	}
	line := fmt.Sprintf("%s %d/%d (%.0f%%) %.1fs %s", p.label, done, total, pct, now.Sub(p.start).Seconds(), detail)
	if p.e.stderrTTY {
		fmt.Fprintf(p.e.stderr, "\r\033[K%s", line)
		p.drawn = true
		if final {
			fmt.Fprintln(p.e.stderr)
			p.drawn = false
		}
		return
	}
	fmt.Fprintln(p.e.stderr, line)
}

// done ends the line if one is drawn.
func (p *progress) done() {
	if p.drawn {
		fmt.Fprintln(p.e.stderr)
		p.drawn = false
	}
}
