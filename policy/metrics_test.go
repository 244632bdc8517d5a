package policy

import (
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/timguard/timguard/rules"
	"github.com/timguard/timguard/tim"
)

func TestMetricsCountByTheirLabels(t *testing.T) {
	m := NewMetrics(prometheus.NewRegistry())
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 25 {
				m.Decided(tim.CmdBeforeSendMsg, rules.None, time.Millisecond)
				m.Decided(tim.CmdBeforeSendMsg, rules.Block, time.Millisecond)
				m.Decided("Group.CallbackSomethingNew", rules.None, time.Millisecond)
				m.RuleMatched("flood", false)
				m.RuleMatched("flood", true)
				m.RuleMatched("spam-words", false)
			}
		})
	}
	wg.Wait()
	tests := []struct {
		name string
		c    prometheus.Counter
		want float64
	}{
		{"no verdict is counted as none", m.decisions.WithLabelValues(tim.CmdBeforeSendMsg, "none"), 100},
		{"a verdict is counted by its name", m.decisions.WithLabelValues(tim.CmdBeforeSendMsg, "block"), 100},
		{"an unknown command is counted as other", m.decisions.WithLabelValues("other", "none"), 100},
		{"a match", m.ruleHits.WithLabelValues("flood", "false"), 100},
		{"a shadow match", m.ruleHits.WithLabelValues("flood", "true"), 100},
		{"another rule", m.ruleHits.WithLabelValues("spam-words", "false"), 100},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var pb dto.Metric
			if err := tt.c.Write(&pb); err != nil {
				t.Fatal(err)
			}
			if got := pb.GetCounter().GetValue(); got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
	ch := make(chan prometheus.Metric, 16)
	m.decisionTime.Collect(ch)
	close(ch)
	if n := len(ch); n != 2 {
		t.Errorf("decision time has %d series, want 2 (message and other)", n)
	}
	if got := m.RuleHitTotals(); got["flood"] != 200 || got["spam-words"] != 100 {
		t.Errorf("RuleHitTotals = %v", got)
	}
}

func BenchmarkMetricsDecided(b *testing.B) {
	m := NewMetrics(prometheus.NewRegistry())
	b.ReportAllocs()
	for b.Loop() {
		m.Decided(tim.CmdBeforeSendMsg, rules.None, time.Millisecond)
		m.RuleMatched("flood", false)
	}
}
