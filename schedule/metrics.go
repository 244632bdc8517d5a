package schedule

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Metrics counts the scheduled job runs; its ScheduleRun is Config.Observe.
type Metrics struct {
	runs *prometheus.CounterVec
}

// NewMetrics registers the scheduler's metrics on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	return &Metrics{
		runs: promauto.With(reg).NewCounterVec(prometheus.CounterOpts{
			Name: "timguard_schedule_runs_total",
			Help: "Scheduled job runs on this replica, by job and result.",
		}, []string{"job", "result"}),
	}
}

// ScheduleRun records one scheduled job run.
func (m *Metrics) ScheduleRun(job, result string) { m.runs.WithLabelValues(job, result).Inc() }
