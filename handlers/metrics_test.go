package handlers

import (
	"maps"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/timguard/timguard/tim"
)

// The cached counters label a callback as the vector looked up per call
// did: a known command by its name, any other as "other", the status as
// its number; a series appears once it is counted.
func TestCallbackMetricsLabelAsTheVectorDoes(t *testing.T) {
	calls := []struct {
		command string
		status  int
	}{
		{tim.CmdBeforeSendMsg, 200}, {tim.CmdBeforeSendMsg, 200}, {tim.CmdAfterSendMsg, 200},
		{tim.CmdBeforeSendMsg, 401}, {"", 401}, {"Group.Nope", 400}, {tim.CmdAfterMemberExit, 413},
		{tim.CmdAfterChangeGroupOwner, 500}, {tim.CmdRequestOverLimit, 200}, {"C2C.CallbackBeforeSendMsg", 200},
		{tim.CmdAfterGroupDestroyed, 200}, {tim.CmdAfterGroupDestroyed, 200},
	}
	want := map[string]float64{}
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	for _, c := range calls {
		label := c.command
		if !tim.KnownCommand(label) {
			label = "other"
		}
		want[label+"|"+strconv.Itoa(c.status)]++
		m.Callback(c.command, c.status)
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range families {
		for _, s := range f.GetMetric() {
			var labels []string
			for _, l := range s.GetLabel() {
				labels = append(labels, l.GetValue())
			}
			got[strings.Join(labels, "|")] = s.GetCounter().GetValue()
		}
	}
	if !maps.Equal(got, want) {
		t.Errorf("series %v; want %v", got, want)
	}
}

func BenchmarkMetricsCallback(b *testing.B) {
	m := NewMetrics(prometheus.NewRegistry())
	b.Run("cached", func(b *testing.B) {
		for b.Loop() {
			m.Callback(tim.CmdBeforeSendMsg, http.StatusOK)
		}
	})
	b.Run("vector", func(b *testing.B) {
		for b.Loop() {
			m.callbacks.WithLabelValues(tim.CmdBeforeSendMsg, strconv.Itoa(http.StatusOK)).Inc()
		}
	})
}
