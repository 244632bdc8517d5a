package actions

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/timguard/timguard/store"
	"github.com/timguard/timguard/tim"
)

// Metrics exports the executor's work: action results, the IM REST calls
// and the outbox's size.
type Metrics struct {
	actions       *prometheus.CounterVec
	restCalls     *prometheus.CounterVec
	restTime      *prometheus.HistogramVec
	outboxReady   prometheus.Gauge
	outboxDue     prometheus.Gauge
	outboxClaimed prometheus.Gauge
	outboxDead    prometheus.Gauge
	outboxOldest  prometheus.Gauge
}

// NewMetrics registers the executor's metrics on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	f := promauto.With(reg)
	return &Metrics{
		actions: f.NewCounterVec(prometheus.CounterOpts{
			Name: "timguard_actions_total",
			Help: "Action results, by kind and result (done, skipped, retry, dead, dry_run).",
		}, []string{"kind", "result"}),
		restCalls: f.NewCounterVec(prometheus.CounterOpts{
			Name: "timguard_rest_calls_total",
			Help: "IM REST API calls, by command and error code (0 = OK; transport = no answer).",
		}, []string{"command", "code"}),
		restTime: f.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "timguard_rest_call_duration_seconds",
			Help:    "IM REST API call latency, by command.",
			Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2, 3, 5},
		}, []string{"command"}),
		outboxReady: f.NewGauge(prometheus.GaugeOpts{
			Name: "timguard_outbox_ready",
			Help: "Actions waiting in the outbox, due now or later.",
		}),
		outboxDue: f.NewGauge(prometheus.GaugeOpts{
			Name: "timguard_outbox_due",
			Help: "Actions waiting in the outbox that are due now.",
		}),
		outboxClaimed: f.NewGauge(prometheus.GaugeOpts{
			Name: "timguard_outbox_claimed",
			Help: "Actions held by an executor under a lease.",
		}),
		outboxDead: f.NewGauge(prometheus.GaugeOpts{
			Name: "timguard_outbox_dead",
			Help: "Dead-lettered actions.",
		}),
		outboxOldest: f.NewGauge(prometheus.GaugeOpts{
			Name: "timguard_outbox_oldest_age_seconds",
			Help: "Age of the oldest action that is due and not yet done (0 when none).",
		}),
	}
}

// ActionResult records one action result (Config.Observe).
func (m *Metrics) ActionResult(kind, result string) { m.actions.WithLabelValues(kind, result).Inc() }

// RESTCall records one IM REST call (tim.ClientConfig.Observe).
func (m *Metrics) RESTCall(command string, err error, took time.Duration) {
	code := "0"
	if err != nil {
		var api *tim.APIError
		if errors.As(err, &api) && api.Code != 0 {
			code = strconv.Itoa(api.Code)
		} else if errors.As(err, &api) {
			code = "http_" + strconv.Itoa(api.HTTPStatus)
		} else {
			code = "transport"
		}
	}
	m.restCalls.WithLabelValues(command, code).Inc()
	m.restTime.WithLabelValues(command).Observe(took.Seconds())
}

// OutboxStats is the store method the outbox sampler reads.
type OutboxStats interface {
	Stats(ctx context.Context, now time.Time) (store.OutboxStats, error)
}

// SampleOutbox updates the outbox gauges every interval until ctx is done.
// A failed read is reported to storeError (op "outbox_stats"), when set.
func (m *Metrics) SampleOutbox(ctx context.Context, st OutboxStats, interval time.Duration, log *slog.Logger, storeError func(op string)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		m.sampleOutbox(ctx, st, log, storeError)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (m *Metrics) sampleOutbox(ctx context.Context, st OutboxStats, log *slog.Logger, storeError func(op string)) {
	now := time.Now()
	sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	s, err := st.Stats(sctx, now)
	if err != nil {
		if ctx.Err() == nil {
			if storeError != nil {
				storeError("outbox_stats")
			}
			log.Debug("outbox stats", "err", err)
		}
		return
	}
	m.outboxReady.Set(float64(s.Ready))
	m.outboxDue.Set(float64(s.Due))
	m.outboxClaimed.Set(float64(s.Claimed))
	m.outboxDead.Set(float64(s.Dead))
	if s.Oldest.IsZero() {
		m.outboxOldest.Set(0)
	} else {
		m.outboxOldest.Set(now.Sub(s.Oldest).Seconds())
	}
}
