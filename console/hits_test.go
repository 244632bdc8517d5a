package console

import (
	"testing"
	"time"
)

func TestHitsCountTheLastHourFromTheMinuteSamples(t *testing.T) {
	h := newHitWindow(time.Hour)
	t0 := time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)
	if got, since := h.since(map[string]float64{"flood": 3}); got["flood"] != 3 || !since.IsZero() {
		t.Fatalf("before any sample: %v since %v, want the totals since start", got, since)
	}
	h.sample(t0, map[string]float64{"flood": 10})
	h.sample(t0.Add(30*time.Second), map[string]float64{"flood": 11}) // within the minute: ignored
	h.sample(t0.Add(30*time.Minute), map[string]float64{"flood": 20, "raid": 1})
	got, since := h.since(map[string]float64{"flood": 25, "raid": 1})
	if got["flood"] != 15 || got["raid"] != 1 || !since.Equal(t0) {
		t.Fatalf("after 30m: %v since %v", got, since)
	}
	h.sample(t0.Add(90*time.Minute), map[string]float64{"flood": 40, "raid": 1})
	got, since = h.since(map[string]float64{"flood": 40, "raid": 1})
	if got["flood"] != 20 || got["raid"] != 0 || !since.Equal(t0.Add(30*time.Minute)) {
		t.Fatalf("after 90m: %v since %v, want the hits since the sample of t0+30m", got, since)
	}
}
