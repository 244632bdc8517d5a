// Package metrics defines timguard's Prometheus metrics and the observers
// the other packages report to. Everything is registered on the registry
// passed in; nothing is global.
package metrics

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/timguard/timguard/rules"
	"github.com/timguard/timguard/store"
	"github.com/timguard/timguard/tim"
)

// Metrics holds every collector.
type Metrics struct {
	reg *prometheus.Registry

	callbacks      *prometheus.CounterVec
	decisions      *prometheus.CounterVec
	decisionTime   *prometheus.HistogramVec
	ruleHits       *prometheus.CounterVec
	ruleErrors     *prometheus.CounterVec
	actions        *prometheus.CounterVec
	restCalls      *prometheus.CounterVec
	restTime       *prometheus.HistogramVec
	storeErrors    *prometheus.CounterVec
	reloads        *prometheus.CounterVec
	reloadOK       prometheus.Gauge
	reloadTime     prometheus.Gauge
	rulesInfo      *prometheus.GaugeVec
	rulesLoaded    prometheus.Gauge
	scheduleRuns   *prometheus.CounterVec
	outboxReady    prometheus.Gauge
	outboxDue      prometheus.Gauge
	outboxClaimed  prometheus.Gauge
	outboxDead     prometheus.Gauge
	outboxOldest   prometheus.Gauge
	auditDropped   prometheus.Counter
	lastRulesLabel string
}

// New creates the metrics and registers them, with the Go and process
// collectors, on a new registry.
func New() *Metrics {
	reg := prometheus.NewRegistry()
	m := &Metrics{
		reg: reg,
		callbacks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "timguard_callbacks_total",
			Help: "Callbacks received, by command and HTTP status answered.",
		}, []string{"command", "status"}),
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "timguard_decisions_total",
			Help: "Decisions made, one per subject, by command and verdict (none when no rule decided).",
		}, []string{"command", "verdict"}),
		decisionTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "timguard_decision_duration_seconds",
			Help:    "Time from a callback's arrival to its decision, including the store round trips.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2},
		}, []string{"command"}),
		ruleHits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "timguard_rule_hits_total",
			Help: "Rule matches, by rule and whether the match was in shadow mode.",
		}, []string{"rule", "shadow"}),
		ruleErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "timguard_rule_errors_total",
			Help: "Rules that failed while they ran (an expression error), by rule; the event was decided without them.",
		}, []string{"rule"}),
		actions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "timguard_actions_total",
			Help: "Action results, by kind and result (done, skipped, retry, dead, dry_run).",
		}, []string{"kind", "result"}),
		restCalls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "timguard_rest_calls_total",
			Help: "IM REST API calls, by command and error code (0 = OK; transport = no answer).",
		}, []string{"command", "code"}),
		restTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "timguard_rest_call_duration_seconds",
			Help:    "IM REST API call latency, by command.",
			Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2, 3, 5},
		}, []string{"command"}),
		storeErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "timguard_store_errors_total",
			Help: "Store calls that failed, by operation.",
		}, []string{"op"}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "timguard_config_reloads_total",
			Help: "Rule reloads, by result (success, failure).",
		}, []string{"result"}),
		reloadOK: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "timguard_config_last_reload_successful",
			Help: "Whether the last reload of the rules succeeded (1) or failed (0).",
		}),
		reloadTime: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "timguard_config_last_reload_success_timestamp_seconds",
			Help: "When the rules were last loaded successfully.",
		}),
		rulesInfo: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "timguard_rules_info",
			Help: "The version (hash) of the rules in force; always 1.",
		}, []string{"version"}),
		rulesLoaded: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "timguard_rules",
			Help: "Number of rules in force.",
		}),
		scheduleRuns: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "timguard_schedule_runs_total",
			Help: "Scheduled job runs on this replica, by job and result.",
		}, []string{"job", "result"}),
		outboxReady: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "timguard_outbox_ready",
			Help: "Actions waiting in the outbox, due now or later.",
		}),
		outboxDue: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "timguard_outbox_due",
			Help: "Actions waiting in the outbox that are due now.",
		}),
		outboxClaimed: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "timguard_outbox_claimed",
			Help: "Actions held by an executor under a lease.",
		}),
		outboxDead: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "timguard_outbox_dead",
			Help: "Dead-lettered actions.",
		}),
		outboxOldest: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "timguard_outbox_oldest_age_seconds",
			Help: "Age of the oldest action that is due and not yet done (0 when none).",
		}),
		auditDropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "timguard_audit_records_dropped_total",
			Help: "Audit records dropped because the audit output did not keep up and its buffer was full.",
		}),
	}
	reg.MustRegister(
		m.callbacks, m.decisions, m.decisionTime, m.ruleHits, m.ruleErrors, m.actions, m.restCalls, m.restTime,
		m.storeErrors, m.reloads, m.reloadOK, m.reloadTime, m.rulesInfo, m.rulesLoaded, m.scheduleRuns,
		m.outboxReady, m.outboxDue, m.outboxClaimed, m.outboxDead, m.outboxOldest, m.auditDropped,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return m
}

// Registry is where the metrics are registered.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the metrics in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// commandLabel keeps the command label's values bounded: commands come from
// the request and an unauthenticated caller could send anything.
func commandLabel(command string) string {
	switch command {
	case tim.CmdBeforeApplyJoinGroup, tim.CmdBeforeInviteJoinGroup, tim.CmdAfterNewMemberJoin,
		tim.CmdAfterMemberExit, tim.CmdBeforeSendMsg, tim.CmdAfterSendMsg, tim.CmdAfterGroupDestroyed,
		tim.CmdAfterMemberFieldChanged, tim.CmdAfterChangeGroupOwner, tim.CmdRequestOverLimit:
		return command
	}
	return "other"
}

// Callback records one callback answered (handlers.Deps.Observe).
func (m *Metrics) Callback(command string, status int) {
	m.callbacks.WithLabelValues(commandLabel(command), strconv.Itoa(status)).Inc()
}

// Decided implements policy.Observer.
func (m *Metrics) Decided(command string, verdict rules.Verdict, latency time.Duration) {
	v := string(verdict)
	if v == "" {
		v = "none"
	}
	c := commandLabel(command)
	m.decisions.WithLabelValues(c, v).Inc()
	m.decisionTime.WithLabelValues(c).Observe(latency.Seconds())
}

// RuleMatched implements policy.Observer.
func (m *Metrics) RuleMatched(rule string, shadow bool) {
	m.ruleHits.WithLabelValues(rule, strconv.FormatBool(shadow)).Inc()
}

// RuleFailed implements policy.Observer.
func (m *Metrics) RuleFailed(rule string) { m.ruleErrors.WithLabelValues(rule).Inc() }

// StoreError implements policy.Observer.
func (m *Metrics) StoreError(op string) { m.storeErrors.WithLabelValues(op).Inc() }

// ActionResult records one action result (the executor's observer).
func (m *Metrics) ActionResult(kind, result string) { m.actions.WithLabelValues(kind, result).Inc() }

// SpoolGauge exports spooled, the number of decisions waiting for the store
// (kept on disk with a state_dir), as timguard_spool_commits.
func (m *Metrics) SpoolGauge(spooled func() int) {
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "timguard_spool_commits",
		Help: "Decisions whose strikes and actions the store has not taken yet (Redis down, full or too slow); kept in state_dir when set.",
	}, func() float64 { return float64(spooled()) }))
}

// AuditDropped counts one audit record dropped (audit.Options.OnDrop).
func (m *Metrics) AuditDropped() { m.auditDropped.Inc() }

// ScheduleRun records one scheduled job run.
func (m *Metrics) ScheduleRun(job, result string) { m.scheduleRuns.WithLabelValues(job, result).Inc() }

// RESTCall is tim.ClientConfig.Observe.
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

// Reloaded records a reload attempt; set is the rule set in force after it.
func (m *Metrics) Reloaded(ok bool, set *rules.Set, at time.Time) {
	if ok {
		m.reloads.WithLabelValues("success").Inc()
		m.reloadOK.Set(1)
		m.reloadTime.Set(float64(at.Unix()))
	} else {
		m.reloads.WithLabelValues("failure").Inc()
		m.reloadOK.Set(0)
	}
	if set != nil {
		if m.lastRulesLabel != "" && m.lastRulesLabel != set.Version {
			m.rulesInfo.DeleteLabelValues(m.lastRulesLabel)
		}
		m.rulesInfo.WithLabelValues(set.Version).Set(1)
		m.lastRulesLabel = set.Version
		m.rulesLoaded.Set(float64(len(set.Rules)))
	}
}

// OutboxStats is the store method the outbox sampler reads.
type OutboxStats interface {
	Stats(ctx context.Context, now time.Time) (store.OutboxStats, error)
}

// SampleOutbox updates the outbox gauges every interval until ctx is done.
func (m *Metrics) SampleOutbox(ctx context.Context, st OutboxStats, interval time.Duration, log *slog.Logger) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		m.sampleOutbox(ctx, st, log)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (m *Metrics) sampleOutbox(ctx context.Context, st OutboxStats, log *slog.Logger) {
	now := time.Now()
	sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	s, err := st.Stats(sctx, now)
	if err != nil {
		if ctx.Err() == nil {
			m.StoreError("outbox_stats")
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
