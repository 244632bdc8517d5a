package console

import (
	"sync"
	"time"
)

// hitWindow turns the rule-hit counters (totals since start) into hits
// over the last span: it keeps a sample a minute and subtracts the oldest
// sample within the span from the newest totals.
type hitWindow struct {
	span time.Duration

	mu      sync.Mutex
	samples []hitSample
}

type hitSample struct {
	at     time.Time
	totals map[string]float64
}

func newHitWindow(span time.Duration) *hitWindow { return &hitWindow{span: span} }

// sample records totals at now, at most one sample a minute, and forgets
// those older than the span.
func (h *hitWindow) sample(now time.Time, totals map[string]float64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if n := len(h.samples); n > 0 && now.Sub(h.samples[n-1].at) < time.Minute {
		return
	}
	h.samples = append(h.samples, hitSample{at: now, totals: totals})
	i := 0
	for i < len(h.samples)-1 && now.Sub(h.samples[i+1].at) >= h.span {
		i++
	}
	h.samples = h.samples[i:]
}

// since returns each rule's hits from the oldest sample kept to totals, and
// when that sample was taken (zero when there is none yet: then the totals
// since start are returned).
func (h *hitWindow) since(totals map[string]float64) (map[string]float64, time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.samples) == 0 {
		return totals, time.Time{}
	}
	base := h.samples[0]
	out := make(map[string]float64, len(totals))
	for rule, n := range totals {
		out[rule] = max(n-base.totals[rule], 0)
	}
	return out, base.at
}
