package replay_test

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/timguard/timguard/record"
	"github.com/timguard/timguard/replay"
	"github.com/timguard/timguard/rules"
)

func mustRules(t testing.TB, src string) *rules.Set {
	t.Helper()
	set, err := rules.Parse("rules.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	return set
}

const counters = `version: 1
counters:
  - {name: user_msgs_10s, on: [message], key: 'group.id + "/" + user.id', window: 10s}
`

const flood = counters + `rules:
  - {name: flood, on: message, if: 'counters.user_msgs_10s > 5', verdict: block, reply: {code: 10101, text: "Slow down."}, actions: [{mute: 10m}]}
  - {name: repeat-offender, on: message, if: 'user.strikes >= 3', verdict: block, actions: [{kick: "Repeated violations"}]}
`

var at = time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)

func msg(user, text string) json.RawMessage {
	return json.RawMessage(`{"CallbackCommand":"Group.CallbackBeforeSendMsg","GroupId":"@TGS#1","Type":"Public","From_Account":"` + user +
		`","MsgBody":[{"MsgType":"TIMTextElem","MsgContent":{"Text":"` + text + `"}}]}`)
}

// entry is a recorded message from user with the state given.
func entry(user string, count, strikes int, role string) record.Entry {
	return record.Entry{
		V: record.Version, Time: at, Command: "Group.CallbackBeforeSendMsg", Text: record.TextKeep, Body: msg(user, "hi"),
		State: &record.State{Subjects: map[string]record.Subject{user: {Counters: map[string]int{"user_msgs_10s": count}, Strikes: strikes, Role: role}}},
	}
}

// bare is the same message as a callback body alone.
func bare(user string) record.Entry {
	return record.Entry{Command: "Group.CallbackBeforeSendMsg", Body: msg(user, "hi"), Bare: true}
}

func TestRecordedStateMakesRateAndEscalationRulesDecideAsTheyDid(t *testing.T) {
	set := mustRules(t, flood)
	cases := []struct {
		name    string
		e       record.Entry
		verdict string
		rules   []string
		assumed bool
	}{
		{"a recorded 6th message in 10s matches the flood rule", entry("bob", 6, 0, ""), "block", []string{"flood"}, false},
		{"the same body alone reads its counter as 1 and matches nothing", bare("bob"), "none", []string{}, true},
		{"a recorded 5th message does not match", entry("bob", 5, 0, ""), "none", []string{}, false},
		{"a recorded third strike matches the escalation rule", entry("bob", 1, 3, ""), "block", []string{"repeat-offender"}, false},
		{"a recorded admin is exempt", entry("bob", 9, 5, string(rules.RoleAdmin)), "none", []string{}, false},
	}
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			res, err := replay.Evaluate(set, tt.e, replay.Options{Now: at}, nil)
			if err != nil {
				t.Fatal(err)
			}
			v := replay.ViewOf(res, 0)
			if v.Verdict != tt.verdict || !slices.Equal(v.Rules, tt.rules) || res.Assumed != tt.assumed {
				t.Errorf("verdict %s rules %v assumed %v, want %s %v %v", v.Verdict, v.Rules, res.Assumed, tt.verdict, tt.rules, tt.assumed)
			}
		})
	}
}

func TestDiffFindsTheRateRuleChangeOnlyWithRecordedCounters(t *testing.T) {
	current := mustRules(t, counters+"rules: []\n")
	candidate := mustRules(t, flood)
	src := replay.NewEntries(entry("bob", 6, 0, ""), bare("bob"), entry("ann", 2, 0, ""))
	rep, err := replay.Run(current, candidate, src, replay.Options{Now: at})
	if err != nil {
		t.Fatal(err)
	}
	s := rep.Summary
	if s.Events != 3 || s.Decisions != 3 || s.Changed != 1 || s.Assumed != 1 || s.Skipped != 0 {
		t.Errorf("summary %+v, want 3 events, 1 change, 1 with assumed state", s)
	}
	if len(rep.Changes) != 1 {
		t.Fatalf("changes %+v", rep.Changes)
	}
	c := rep.Changes[0]
	if c.User != "bob" || c.Line != 1 || c.AssumedState {
		t.Errorf("change %+v, want bob's recorded message", c)
	}
	want := []string{"verdict none -> block", `reply ok -> 10101 "Slow down."`, "rules [] -> [flood]", "actions [] -> [mute 10m0s]"}
	if !slices.Equal(c.Changes, want) || !slices.Equal(c.Fields, []string{"verdict", "reply", "rules", "actions"}) {
		t.Errorf("changes %q fields %v, want %q", c.Changes, c.Fields, want)
	}
	if c.Current.Verdict != "none" || c.Candidate.Verdict != "block" || c.Candidate.ReplyCode != 10101 || c.Candidate.ReplyText != "Slow down." {
		t.Errorf("side by side %+v | %+v", c.Current, c.Candidate)
	}
}

func TestAChangeOfReplyAloneIsReported(t *testing.T) {
	cases := []struct {
		name, candidate, want string
	}{
		{"the text", `reply: {code: 10101, text: "Please slow down."}`, `reply 10101 "Slow down." -> 10101 "Please slow down."`},
		{"the code", `reply: {code: 10102, text: "Slow down."}`, `reply 10101 "Slow down." -> 10102 "Slow down."`},
		{"the reply removed", `reply: null`, `reply 10101 "Slow down." -> 1`},
	}
	current := mustRules(t, flood)
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			src := strings.Replace(flood, `reply: {code: 10101, text: "Slow down."}`, tt.candidate, 1)
			candidate := mustRules(t, src)
			rep, err := replay.Run(current, candidate, replay.NewEntries(entry("bob", 6, 0, "")), replay.Options{})
			if err != nil {
				t.Fatal(err)
			}
			if rep.Summary.Changed != 1 || len(rep.Changes) != 1 {
				t.Fatalf("summary %+v: a reply change must count as a change", rep.Summary)
			}
			c := rep.Changes[0]
			if !slices.Equal(c.Fields, []string{"reply"}) || !slices.Equal(c.Changes, []string{tt.want}) {
				t.Errorf("fields %v changes %q, want [reply] %q", c.Fields, c.Changes, tt.want)
			}
		})
	}
}

func TestShadowAndRewriteChangesAreReported(t *testing.T) {
	current := mustRules(t, "version: 1\nrules: [{name: a, on: message, if: 'message.text == \"hi\"', verdict: rewrite, rewrite: {text: '\"hello\"'}}]\n")
	candidate := mustRules(t, "version: 1\nrules: [{name: a, on: message, if: 'message.text == \"hi\"', verdict: rewrite, rewrite: {text: '\"hey\"'}}, {name: b, on: message, if: 'true', shadow: true, actions: [{strike: 1}]}]\n")
	rep, err := replay.Run(current, candidate, replay.NewEntries(entry("bob", 1, 0, "")), replay.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Changes) != 1 {
		t.Fatalf("changes %+v", rep.Changes)
	}
	if got := rep.Changes[0].Fields; !slices.Equal(got, []string{"shadow", "rewrite"}) {
		t.Errorf("fields %v (%q), want shadow and rewrite", got, rep.Changes[0].Changes)
	}
}

func TestCountersTheRecordingLacksAreNamed(t *testing.T) {
	current := mustRules(t, flood)
	cases := []struct {
		name, candidate string
	}{
		{"a counter the candidate adds", flood + "  - {name: x, on: message, if: 'counters.burst > 1', verdict: block}\n" +
			"" /* the counter itself is declared below */},
		{"a counter whose window the candidate changes", strings.Replace(flood, "window: 10s", "window: 1m", 1)},
	}
	cases[0].candidate = strings.Replace(cases[0].candidate, "counters:\n", "counters:\n  - {name: burst, on: [message], key: group.id, window: 1s}\n", 1)
	want := []string{"burst", "user_msgs_10s"}
	for i, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			rep, err := replay.Run(current, mustRules(t, tt.candidate), replay.NewEntries(entry("bob", 6, 0, "")), replay.Options{})
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(rep.Summary.Unrecorded, want[i:i+1]) {
				t.Errorf("unrecorded %v, want %v", rep.Summary.Unrecorded, want[i:i+1])
			}
		})
	}
	// The changed window: the recorded 6 is not trusted, the counter
	// reads 1, and flood no longer matches.
	rep, _ := replay.Run(current, mustRules(t, cases[1].candidate), replay.NewEntries(entry("bob", 6, 0, "")), replay.Options{})
	if rep.Summary.Changed != 1 || rep.Changes[0].Candidate.Verdict != "none" {
		t.Errorf("with the window changed: %+v", rep.Changes)
	}
}

func TestRecordedDecisionsTheReplayDoesNotReproduceAreCounted(t *testing.T) {
	set := mustRules(t, flood)
	same := entry("bob", 6, 0, "")
	same.RulesVersion = set.Version
	same.Decided = []record.Decided{{User: "bob", Verdict: "block", Rules: []string{"flood"}, Actions: []string{"mute 10m0s"}}}
	differs := entry("ann", 1, 0, "")
	differs.RulesVersion = set.Version
	differs.Decided = []record.Decided{{User: "ann", Verdict: "block", Rules: []string{"flood"}, Actions: []string{"mute 10m0s"}}}
	other := differs
	other.RulesVersion = "another-version"
	rep, err := replay.Run(set, set, replay.NewEntries(same, differs, other), replay.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Summary.Mismatched != 1 || rep.Summary.Changed != 0 {
		t.Errorf("summary %+v, want 1 mismatch (ann, recorded under these rules) and no change", rep.Summary)
	}
}

func TestSinceAndUntilSelectEntriesByArrival(t *testing.T) {
	set := mustRules(t, flood)
	var es []record.Entry
	for h := range 5 {
		e := entry("bob", 1, 0, "")
		e.Time = at.Add(time.Duration(h) * time.Hour)
		es = append(es, e)
	}
	rep, err := replay.Run(set, set, replay.NewEntries(es...), replay.Options{Since: at.Add(time.Hour), Until: at.Add(3 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if s := rep.Summary; s.Events != 2 || !s.First.Equal(at.Add(time.Hour)) || !s.Last.Equal(at.Add(2*time.Hour)) {
		t.Errorf("summary %+v, want the 11:00 and 12:00 entries", s)
	}
}

func TestRunKeepsAtMostMaxChanges(t *testing.T) {
	current := mustRules(t, counters+"rules: []\n")
	candidate := mustRules(t, flood)
	var es []record.Entry
	for range 5 {
		es = append(es, entry("bob", 9, 0, ""))
	}
	rep, err := replay.Run(current, candidate, replay.NewEntries(es...), replay.Options{MaxChanges: 2})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Summary.Changed != 5 || len(rep.Changes) != 2 || !rep.Truncated {
		t.Errorf("changed %d kept %d truncated %v, want 5, 2, true", rep.Summary.Changed, len(rep.Changes), rep.Truncated)
	}
}

func TestSkippedLinesAndUndecodableBodiesAreCounted(t *testing.T) {
	set := mustRules(t, flood)
	in := strings.Join([]string{
		string(msg("bob", "hi")),
		"not json",
		`{"v":1,"command":"Group.CallbackBeforeSendMsg","body":{"GroupId":5}}`,
		`{"CallbackCommand":"Group.CallbackAfterGroupInfoChanged","GroupId":"@TGS#1"}`,
		"",
	}, "\n")
	rep, err := replay.Run(set, set, replay.NewReader("in.jsonl", strings.NewReader(in)), replay.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if s := rep.Summary; s.Events != 1 || s.Skipped != 2 {
		t.Errorf("summary %+v, want 1 event (a command rules do not see is passed over) and 2 lines skipped", s)
	}
}

// TestReportJSONNamesTheFieldsTheConsoleReads pins the JSON shape of a
// report.
func TestReportJSONNamesTheFieldsTheConsoleReads(t *testing.T) {
	current := mustRules(t, counters+"rules: []\n")
	candidate := mustRules(t, flood)
	rep, err := replay.Run(current, candidate, replay.NewEntries(entry("bob", 6, 0, "")), replay.Options{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{`"summary":{`, `"current_version":`, `"candidate_version":`, `"changed":1`, `"changes":[{`, `"event_id":`,
		`"fields":["verdict","reply","rules","actions"]`, `"current":{"verdict":"none","rules":[],"actions":[]}`,
		`"candidate":{"verdict":"block","reply_code":10101,"reply_text":"Slow down.","rules":["flood"],"actions":["mute 10m0s"]}`} {
		if !strings.Contains(string(b), key) {
			t.Errorf("report JSON lacks %s:\n%s", key, b)
		}
	}
}

// TestRecordedActivityMakesTrustRulesDecideAsTheyDid: user.first_seen and
// user.messages come from the recording; without them a user reads as first
// seen now, with this message their first.
func TestRecordedActivityMakesTrustRulesDecideAsTheyDid(t *testing.T) {
	set := mustRules(t, `version: 1
rules:
  - {name: newcomer, on: message, if: 'now - user.first_seen < duration("24h") && user.messages <= 2', verdict: block}
`)
	seen := func(ago time.Duration, messages int) record.Entry {
		e := entry("bob", 1, 0, "")
		first := at.Add(-ago)
		e.State.Subjects = map[string]record.Subject{"bob": {FirstSeen: &first, Messages: messages}}
		return e
	}
	cases := []struct {
		name    string
		e       record.Entry
		verdict string
	}{
		{"recorded first seen an hour ago, second message", seen(time.Hour, 2), "block"},
		{"recorded first seen two days ago", seen(48*time.Hour, 2), "none"},
		{"recorded as a talker", seen(time.Hour, 40), "none"},
		{"no activity recorded: first seen now", entry("bob", 1, 0, ""), "block"},
		{"a body alone: first seen now", bare("bob"), "block"},
	}
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			res, err := replay.Evaluate(set, tt.e, replay.Options{Now: at}, nil)
			if err != nil {
				t.Fatal(err)
			}
			if v := replay.ViewOf(res, 0); v.Verdict != tt.verdict {
				t.Errorf("verdict %s, want %s", v.Verdict, tt.verdict)
			}
		})
	}
}
