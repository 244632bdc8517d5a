package handlers

import (
	"net/http"
	"strconv"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/timguard/timguard/tim"
)

// Metrics counts the callbacks answered; its Callback is Deps.Observe.
type Metrics struct {
	callbacks *prometheus.CounterVec
	// cached holds the counters of the commands and statuses callbacks
	// are answered with, each found once: looking a child up by its
	// label values hashes them and formats the status on every callback.
	// A slot is filled on first use, so that /metrics shows only the
	// series that happened, as before.
	cached [len(metricCommands)][len(metricStatuses)]atomic.Pointer[prometheus.Counter]
}

// metricCommands are the command labels: the known commands, then "other"
// for the rest. commandIndex finds a command's.
var metricCommands = [...]string{
	tim.CmdBeforeApplyJoinGroup, tim.CmdBeforeInviteJoinGroup, tim.CmdAfterNewMemberJoin,
	tim.CmdAfterMemberExit, tim.CmdBeforeSendMsg, tim.CmdAfterSendMsg, tim.CmdAfterGroupDestroyed,
	tim.CmdAfterMemberFieldChanged, tim.CmdAfterChangeGroupOwner, tim.CmdRequestOverLimit,
	"other",
}

// metricStatuses are the statuses whose counters are cached.
var metricStatuses = [...]int{http.StatusOK, http.StatusBadRequest, http.StatusUnauthorized, http.StatusRequestEntityTooLarge}

// commandIndex is the index of command's label in metricCommands: the
// commands tim.KnownCommand knows have their own, any other is "other".
func commandIndex(command string) int {
	switch command {
	case tim.CmdBeforeApplyJoinGroup:
		return 0
	case tim.CmdBeforeInviteJoinGroup:
		return 1
	case tim.CmdAfterNewMemberJoin:
		return 2
	case tim.CmdAfterMemberExit:
		return 3
	case tim.CmdBeforeSendMsg:
		return 4
	case tim.CmdAfterSendMsg:
		return 5
	case tim.CmdAfterGroupDestroyed:
		return 6
	case tim.CmdAfterMemberFieldChanged:
		return 7
	case tim.CmdAfterChangeGroupOwner:
		return 8
	case tim.CmdRequestOverLimit:
		return 9
	}
	return len(metricCommands) - 1
}

func statusIndex(status int) int {
	switch status {
	case http.StatusOK:
		return 0
	case http.StatusBadRequest:
		return 1
	case http.StatusUnauthorized:
		return 2
	case http.StatusRequestEntityTooLarge:
		return 3
	}
	return -1
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
	ci := commandIndex(command)
	si := statusIndex(status)
	if si < 0 {
		m.callbacks.WithLabelValues(metricCommands[ci], strconv.Itoa(status)).Inc()
		return
	}
	slot := &m.cached[ci][si]
	c := slot.Load()
	if c == nil {
		// Two callbacks may both look the child up: the vector gives
		// them the same one.
		child := m.callbacks.WithLabelValues(metricCommands[ci], strconv.Itoa(status))
		c = &child
		slot.Store(c)
	}
	(*c).Inc()
}
