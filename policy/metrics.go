package policy

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	dto "github.com/prometheus/client_model/go"

	"github.com/timguard/timguard/internal/promcache"
	"github.com/timguard/timguard/rules"
	"github.com/timguard/timguard/tim"
)

// Metrics is the Observer that exports the decisions, rule matches, rule
// failures and store errors of the callback path.
type Metrics struct {
	reg          prometheus.Registerer
	decisions    *prometheus.CounterVec
	decisionTime *prometheus.HistogramVec
	ruleHits     *prometheus.CounterVec
	ruleErrors   *prometheus.CounterVec
	storeErrors  *prometheus.CounterVec

	// The children of the vectors the callback path counts in, by their
	// labels: WithLabelValues hashes the labels and locks the vector on
	// every call.
	decided promcache.Children[decidedLabels, decidedMetrics]
	hits    promcache.Children[hitLabels, prometheus.Counter]
}

type decidedLabels struct{ command, verdict string }

type decidedMetrics struct {
	decisions prometheus.Counter
	time      prometheus.Observer
}

type hitLabels struct {
	rule   string
	shadow bool
}

// NewMetrics registers the policy metrics on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	f := promauto.With(reg)
	return &Metrics{
		reg: reg,
		decisions: f.NewCounterVec(prometheus.CounterOpts{
			Name: "timguard_decisions_total",
			Help: "Decisions made, one per subject, by command and verdict (none when no rule decided).",
		}, []string{"command", "verdict"}),
		decisionTime: f.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "timguard_decision_duration_seconds",
			Help:    "Time from a callback's arrival to its decision, including the store round trips.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2},
		}, []string{"command"}),
		ruleHits: f.NewCounterVec(prometheus.CounterOpts{
			Name: "timguard_rule_hits_total",
			Help: "Rule matches, by rule and whether the match was in shadow mode.",
		}, []string{"rule", "shadow"}),
		ruleErrors: f.NewCounterVec(prometheus.CounterOpts{
			Name: "timguard_rule_errors_total",
			Help: "Rules that failed while they ran (an expression error), by rule; the event was decided without them.",
		}, []string{"rule"}),
		storeErrors: f.NewCounterVec(prometheus.CounterOpts{
			Name: "timguard_store_errors_total",
			Help: "Store calls that failed, by operation.",
		}, []string{"op"}),
	}
}

// Decided implements Observer.
func (m *Metrics) Decided(command string, verdict rules.Verdict, latency time.Duration) {
	v := string(verdict)
	if v == "" {
		v = "none"
	}
	if !tim.KnownCommand(command) {
		command = "other"
	}
	d := m.decided.Get(decidedLabels{command, v}, func() decidedMetrics {
		return decidedMetrics{decisions: m.decisions.WithLabelValues(command, v), time: m.decisionTime.WithLabelValues(command)}
	})
	d.decisions.Inc()
	d.time.Observe(latency.Seconds())
}

// RuleMatched implements Observer.
func (m *Metrics) RuleMatched(rule string, shadow bool) {
	m.hits.Get(hitLabels{rule, shadow}, func() prometheus.Counter {
		return m.ruleHits.WithLabelValues(rule, strconv.FormatBool(shadow))
	}).Inc()
}

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

// RuleFailed implements Observer.
func (m *Metrics) RuleFailed(rule string) { m.ruleErrors.WithLabelValues(rule).Inc() }

// StoreError implements Observer; the outbox sampler reports to it too.
func (m *Metrics) StoreError(op string) { m.storeErrors.WithLabelValues(op).Inc() }

// Spool exports spooled, the number of decisions waiting for the store
// (kept on disk with a state_dir), as timguard_spool_commits.
func (m *Metrics) Spool(spooled func() int) {
	promauto.With(m.reg).NewGaugeFunc(prometheus.GaugeOpts{
		Name: "timguard_spool_commits",
		Help: "Decisions whose strikes and actions the store has not taken yet (Redis down, full or too slow); kept in state_dir when set.",
	}, func() float64 { return float64(spooled()) })
}
