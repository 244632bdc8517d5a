package handlers

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/timguard/timguard/tim"
)

// Metrics counts the callbacks answered; its Callback is Deps.Observe.
type Metrics struct {
	callbacks *prometheus.CounterVec
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
	m.callbacks.WithLabelValues(command, strconv.Itoa(status)).Inc()
}
