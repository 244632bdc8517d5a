package record

import (
	"testing"
	"time"

	"github.com/timguard/timguard/policy"
	"github.com/timguard/timguard/rules"
	"github.com/timguard/timguard/tim"
)

// TestStateOfKeepsTheUsersActivity: a recording holds user.first_seen and
// user.messages as the rules read them (a user the store never saw is first
// seen at the event), and nothing of them when no rule read them.
func TestStateOfKeepsTheUsersActivity(t *testing.T) {
	set, err := rules.Parse("r.yaml", []byte(`version: 1
rules: [{name: newcomer, on: message, if: 'user.messages <= 2', verdict: block}]
`))
	if err != nil {
		t.Fatal(err)
	}
	body := []byte(`{"CallbackCommand":"Group.CallbackBeforeSendMsg","GroupId":"@TGS#1","Type":"Public","From_Account":"bob","Random":1,"MsgBody":[]}`)
	cb, err := tim.DecodeCallback("", body)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)
	ev := policy.NewEvent(cb, body, at)

	st := &policy.State{Counters: []int{}, Strikes: map[string]int{}, Roles: map[string]string{},
		FirstSeen: map[string]time.Time{"bob": {}}, Messages: map[string]int{"bob": 1}}
	s := stateOf(ev, set, st, nil).Subjects["bob"]
	if s.FirstSeen == nil || !s.FirstSeen.Equal(at) || s.Messages != 1 {
		t.Errorf("recorded first seen %v messages %d, want the event's time and 1", s.FirstSeen, s.Messages)
	}

	st.FirstSeen, st.Messages = nil, nil
	if s := stateOf(ev, set, st, nil).Subjects["bob"]; s.FirstSeen != nil || s.Messages != 0 {
		t.Errorf("recorded first seen %v messages %d with no activity read", s.FirstSeen, s.Messages)
	}
}
