package handlers

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/timguard/timguard/internal/promcache"
	"github.com/timguard/timguard/tim"
)

// Metrics counts the callbacks answered; its Callback is Deps.Observe.
type Metrics struct {
	callbacks *prometheus.CounterVec
	// counters are the children of callbacks by command and status,
	// each looked up once.
	counters promcache.Children[callbackLabels, prometheus.Counter]
}

type callbackLabels struct {
	command string
	status  int
}

// NewMetrics registers the HTTP metrics on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	return &Metrics{
		callbacks: promauto.With(reg).NewCounterVec(prometheus.CounterOpts{
			Name: "timguard_callbacks_total",
			Help: "Callbacks received, by command and HTTP status answered.",
		}, []string{"command", "status"}),
	}
}

// Callback records one callback answered.
func (m *Metrics) Callback(command string, status int) {
	if !tim.KnownCommand(command) {
		command = "other"
	}
	m.counters.Get(callbackLabels{command, status}, func() prometheus.Counter {
		return m.callbacks.WithLabelValues(command, strconv.Itoa(status))
	}).Inc()
}
