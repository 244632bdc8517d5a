package record

import (
	"testing"
	"time"

	"github.com/timguard/timguard/policy"
	"github.com/timguard/timguard/rules"
	"github.com/timguard/timguard/tim"
)

func benchRecorded(b *testing.B) policy.Recorded {
	set, err := rules.Parse("r.yaml", []byte(`version: 1
counters: [{name: user_msgs_10s, on: [message], key: 'group.id + "/" + user.id', window: 10s}]
rules: [{name: flood, on: message, if: 'counters.user_msgs_10s > 5', verdict: block}]
`))
	if err != nil {
		b.Fatal(err)
	}
	body := []byte(`{"CallbackCommand":"Group.CallbackBeforeSendMsg","GroupId":"@TGS#1","Type":"Public","From_Account":"bob","Random":1,"MsgBody":[{"MsgType":"TIMTextElem","MsgContent":{"Text":"hello there, how are you all doing today?"}}]}`)
	cb, err := tim.DecodeCallback("", body)
	if err != nil {
		b.Fatal(err)
	}
	ev := policy.NewEvent(cb, body, time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC))
	st := &policy.State{Counters: []int{3}, Strikes: map[string]int{"bob": 1}, Roles: map[string]string{}}
	return policy.Recorded{Event: ev, Rules: set, State: st, Outcome: policy.Evaluate(set, ev, st, policy.Options{})}
}

// BenchmarkRecord is what recording costs the callback path: copying the
// body and the state and handing them to the writer (here a goroutine that
// throws them away).
func BenchmarkRecord(b *testing.B) {
	r, err := newRecorder(Config{Dir: b.TempDir(), Keep: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	stop := make(chan struct{})
	go func() {
		for {
			select {
			case <-r.q:
			case <-stop:
				return
			}
		}
	}()
	defer close(stop)
	rec := benchRecorded(b)
	b.ReportAllocs()
	for b.Loop() {
		r.Record(rec)
	}
}

// BenchmarkWriteHashed is the writer's work for one entry with its texts
// hashed: hash, encode, append to the hour's file.
func BenchmarkWriteHashed(b *testing.B) {
	r, err := newRecorder(Config{Dir: b.TempDir(), Keep: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	defer r.closeFile()
	rec := benchRecorded(b)
	e := &Entry{V: Version, Time: rec.Event.Received, Command: rec.Event.Command, Body: rec.Event.Raw,
		State: stateOf(rec.Event, rec.Rules, rec.State, rec.Outcome.Decisions)}
	b.ReportAllocs()
	for b.Loop() {
		c := *e
		r.write(&c)
	}
}
