package record

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/timguard/timguard/policy"
	"github.com/timguard/timguard/rules"
	"github.com/timguard/timguard/tim"
)

// TestRecordNeverWaitsForTheWriter: with the writer not running, Record
// returns at once whatever the queue holds; what does not fit is dropped
// and counted, and what fits is written once the writer runs.
func TestRecordNeverWaitsForTheWriter(t *testing.T) {
	dir := t.TempDir()
	r, err := newRecorder(Config{Dir: dir, Keep: time.Hour, Queue: 4, Text: TextKeep})
	if err != nil {
		t.Fatal(err)
	}
	set, err := rules.Parse("r.yaml", []byte("version: 1\nrules: [{name: spam, on: message, if: 'message.text == \"x\"', verdict: block}]\n"))
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)
	body := []byte(`{"CallbackCommand":"Group.CallbackBeforeSendMsg","GroupId":"@TGS#1","From_Account":"bob","MsgBody":[]}`)
	cb, err := tim.DecodeCallback("", body)
	if err != nil {
		t.Fatal(err)
	}
	ev := policy.NewEvent(cb, body, at)
	for range 10 {
		r.Record(policy.Recorded{Event: ev, Rules: set, Outcome: policy.Outcome{Reply: tim.OK()}})
	}
	if n := value(r.dropped.WithLabelValues(dropQueueFull)); n != 6 {
		t.Errorf("dropped for a full queue: %v, want 6", n)
	}
	go r.run()
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if n := value(r.written); n != 4 {
		t.Errorf("written %v, want the 4 queued", n)
	}
}

func value(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		return -1
	}
	return m.GetCounter().GetValue()
}
