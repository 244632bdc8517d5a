package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// RuleHitTotals returns every rule's matches since the start, shadow ones
// included, from timguard_rule_hits_total (for the console's hits of the
// last hour).
func (m *Metrics) RuleHitTotals() map[string]float64 {
	ch := make(chan prometheus.Metric, 64)
	go func() {
		m.ruleHits.Collect(ch)
		close(ch)
	}()
	out := map[string]float64{}
	for metric := range ch {
		var pb dto.Metric
		if err := metric.Write(&pb); err != nil || pb.GetCounter() == nil {
			continue
		}
		for _, l := range pb.GetLabel() {
			if l.GetName() == "rule" {
				out[l.GetValue()] += pb.GetCounter().GetValue()
			}
		}
	}
	return out
}
