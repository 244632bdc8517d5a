package record_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/timguard/timguard/policy"
	"github.com/timguard/timguard/record"
	"github.com/timguard/timguard/rules"
	"github.com/timguard/timguard/tim"
)

const testRules = `version: 1
counters:
  - {name: user_msgs_10s, on: [message], key: 'group.id + "/" + user.id', window: 10s}
  - {name: group_joins_1m, on: [join_request], key: group.id, window: 1m}
rules:
  - {name: flood, on: message, if: 'counters.user_msgs_10s > 5', verdict: block, exempt: none, actions: [{mute: 10m}]}
  - {name: raid, on: join_request, if: 'counters.group_joins_1m > 30', verdict: reject}
`

func mustRules(t testing.TB, src string) *rules.Set {
	t.Helper()
	set, err := rules.Parse("rules.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	return set
}

func msgBody(user, text string) []byte {
	return []byte(`{"CallbackCommand":"Group.CallbackBeforeSendMsg","GroupId":"@TGS#1","Type":"Public","From_Account":"` + user +
		`","Random":4294967295,"CloudCustomData":"secret data","MsgBody":[{"MsgType":"TIMTextElem","MsgContent":{"Text":"` + text +
		`"}},{"MsgType":"TIMFaceElem","MsgContent":{"Index":7,"Data":"smile"}}]}`)
}

// recorded evaluates body under set with the given counter value and
// strikes, as the engine would after enriching it.
func recorded(t testing.TB, set *rules.Set, body []byte, at time.Time, count, strikes int, role string) policy.Recorded {
	t.Helper()
	cb, err := tim.DecodeCallback("", body)
	if err != nil {
		t.Fatal(err)
	}
	ev := policy.NewEvent(cb, body, at)
	st := &policy.State{Counters: make([]int, len(set.Counters)), Strikes: map[string]int{}, Roles: map[string]string{}}
	for _, cu := range set.Plan(ev.Kind).Counters {
		st.Counters[cu.Counter.Index] = count
	}
	for _, u := range ev.Subjects {
		st.Strikes[u] = strikes
		if role != "" {
			st.Roles[u] = role
		}
	}
	out := policy.Evaluate(set, ev, st, policy.Options{})
	return policy.Recorded{Event: ev, Rules: set, State: st, Outcome: out}
}

func readEntries(t testing.TB, path string) []record.Entry {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r := record.NewReader(f)
	var out []record.Entry
	for {
		e, err := r.Next()
		if err != nil {
			if err.Error() == "EOF" {
				return out
			}
			t.Fatalf("%s: %v", path, err)
		}
		out = append(out, e)
	}
}

func counterValue(t testing.TB, reg *prometheus.Registry, name, reason string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if reason == "" || labelIs(m, "reason", reason) {
				return m.GetCounter().GetValue()
			}
		}
	}
	return -1
}

func labelIs(m *dto.Metric, name, value string) bool {
	for _, l := range m.GetLabel() {
		if l.GetName() == name && l.GetValue() == value {
			return true
		}
	}
	return false
}

func TestRecorderWritesEachCallbackWithTheStateItsRulesRead(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "rec")
	reg := prometheus.NewRegistry()
	r, err := record.New(record.Config{Dir: dir, Keep: time.Hour, Text: record.TextKeep, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	set := mustRules(t, testRules)
	at := time.Date(2026, 12, 4, 10, 30, 0, 0, time.UTC)
	body := msgBody("bob", "hello")
	r.Record(recorded(t, set, body, at, 6, 2, string(rules.RoleAdmin)))
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "callbacks-20261204T10.jsonl")
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("recording file %s: %v, mode %v; want it readable by the bot only", path, err, fi)
	}
	if fi, _ := os.Stat(dir); fi.Mode().Perm() != 0o700 {
		t.Errorf("directory mode %v, want 0700", fi.Mode().Perm())
	}
	es := readEntries(t, path)
	if len(es) != 1 {
		t.Fatalf("%d entries, want 1", len(es))
	}
	e := es[0]
	if e.V != record.Version || !e.Time.Equal(at) || e.Command != tim.CmdBeforeSendMsg || e.Text != record.TextKeep || e.RulesVersion != set.Version || e.EventID == "" {
		t.Errorf("entry header %+v", e)
	}
	var got, want any
	if err := json.Unmarshal(e.Body, &got); err != nil {
		t.Fatal(err)
	}
	_ = json.Unmarshal(body, &want)
	gb, _ := json.Marshal(got)
	wb, _ := json.Marshal(want)
	if !bytes.Equal(gb, wb) {
		t.Errorf("body\n%s\nwant\n%s", e.Body, body)
	}
	s := e.State.Subjects["bob"]
	if s.Counters["user_msgs_10s"] != 6 || s.Strikes != 2 || s.Role != string(rules.RoleAdmin) {
		t.Errorf("bob's recorded state %+v, want user_msgs_10s 6, 2 strikes, admin", s)
	}
	if _, ok := s.Counters["group_joins_1m"]; ok {
		t.Errorf("a counter no message rule reads was recorded: %+v", s.Counters)
	}
	if len(e.Decided) != 1 || e.Decided[0].Verdict != "block" || !slices.Equal(e.Decided[0].Rules, []string{"flood"}) || !slices.Equal(e.Decided[0].Actions, []string{"mute 10m0s"}) {
		t.Errorf("decided %+v, want the flood block and mute", e.Decided)
	}
	if e.ReplyCode != tim.CodeRefuse {
		t.Errorf("reply code %d, want %d", e.ReplyCode, tim.CodeRefuse)
	}
	if n := counterValue(t, reg, "timguard_record_entries_total", ""); n != 1 {
		t.Errorf("timguard_record_entries_total = %v, want 1", n)
	}
}

func TestRecorderKeepsACopyOfTheBody(t *testing.T) {
	dir := t.TempDir()
	r, err := record.New(record.Config{Dir: dir, Keep: time.Hour, Text: record.TextKeep})
	if err != nil {
		t.Fatal(err)
	}
	set := mustRules(t, testRules)
	at := time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)
	rec := recorded(t, set, msgBody("bob", "hello"), at, 1, 0, "")
	r.Record(rec)
	// The callback handler reuses its buffer once the callback is answered.
	for i := range rec.Event.Raw {
		rec.Event.Raw[i] = 'x'
	}
	_ = r.Close()
	es := readEntries(t, filepath.Join(dir, record.FileName(at)))
	if len(es) != 1 || !strings.Contains(string(es[0].Body), "hello") {
		t.Fatalf("entries %+v; want the body as it was when recorded", es)
	}
}

func TestRecorderStartsAFileEachHour(t *testing.T) {
	dir := t.TempDir()
	r, err := record.New(record.Config{Dir: dir, Keep: 24 * time.Hour, Text: record.TextKeep,
		Now: func() time.Time { return time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC) }})
	if err != nil {
		t.Fatal(err)
	}
	set := mustRules(t, testRules)
	times := []time.Time{
		time.Date(2026, 12, 4, 10, 59, 59, 0, time.UTC),
		time.Date(2026, 12, 4, 11, 0, 0, 0, time.UTC),
		time.Date(2026, 12, 4, 11, 30, 0, 0, time.UTC),
		// Shanghai 19:45 is 11:45 UTC: files are named in UTC.
		time.Date(2026, 12, 4, 19, 45, 0, 0, time.FixedZone("CST", 8*3600)),
	}
	for i, at := range times {
		r.Record(recorded(t, set, msgBody("u"+string(rune('a'+i)), "hi"), at, 1, 0, ""))
	}
	_ = r.Close()
	files, err := record.Files(dir, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	names := make([]string, len(files))
	for i, f := range files {
		names[i] = filepath.Base(f)
	}
	if want := []string{"callbacks-20261204T10.jsonl", "callbacks-20261204T11.jsonl"}; !slices.Equal(names, want) {
		t.Fatalf("files %v, want %v", names, want)
	}
	if n := len(readEntries(t, files[0])); n != 1 {
		t.Errorf("10:00 file holds %d entries, want 1", n)
	}
	if n := len(readEntries(t, files[1])); n != 3 {
		t.Errorf("11:00 file holds %d entries, want 3", n)
	}
}

func TestRecorderRemovesFilesPastTheirRetention(t *testing.T) {
	dir := t.TempDir()
	now := time.Date(2026, 12, 4, 12, 10, 0, 0, time.UTC)
	for _, name := range []string{
		"callbacks-20261204T08.jsonl", // ended 09:00: more than 3h ago
		"callbacks-20261204T09.jsonl", // ended 10:00: within 3h
		"callbacks-20261204T12.jsonl",
		"notes.txt",
		"callbacks-garbage.jsonl",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("{}\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	reg := prometheus.NewRegistry()
	clock := now
	r, err := record.New(record.Config{Dir: dir, Keep: 3 * time.Hour, Registerer: reg, Now: func() time.Time { return clock }})
	if err != nil {
		t.Fatal(err)
	}
	left := func() []string {
		des, _ := os.ReadDir(dir)
		var out []string
		for _, de := range des {
			out = append(out, de.Name())
		}
		return out
	}
	want := []string{"callbacks-20261204T09.jsonl", "callbacks-20261204T12.jsonl", "callbacks-garbage.jsonl", "notes.txt"}
	if got := left(); !slices.Equal(got, want) {
		t.Errorf("at start: files %v, want %v", got, want)
	}
	// The first callback of a new hour starts a file and prunes again.
	clock = time.Date(2026, 12, 4, 13, 30, 0, 0, time.UTC)
	r.Record(recorded(t, mustRules(t, testRules), msgBody("bob", "hi"), clock, 1, 0, ""))
	_ = r.Close()
	want = []string{"callbacks-20261204T12.jsonl", "callbacks-20261204T13.jsonl", "callbacks-garbage.jsonl", "notes.txt"}
	if got := left(); !slices.Equal(got, want) {
		t.Errorf("after a new hour: files %v, want %v", got, want)
	}
	if n := counterValue(t, reg, "timguard_record_files_pruned_total", ""); n != 2 {
		t.Errorf("timguard_record_files_pruned_total = %v, want 2", n)
	}
}

func TestRecorderHashesTextsMembersWrote(t *testing.T) {
	dir := t.TempDir()
	r, err := record.New(record.Config{Dir: dir, Keep: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	set := mustRules(t, testRules)
	at := time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)
	r.Record(recorded(t, set, msgBody("bob", "my phone is 555-0199"), at, 1, 0, ""))
	r.Record(recorded(t, set, msgBody("ann", "my phone is 555-0199"), at, 1, 0, ""))
	apply := []byte(`{"CallbackCommand":"Group.CallbackBeforeApplyJoinGroup","GroupId":"@TGS#1","Type":"Public","Requestor_Account":"cid","ApplyMsg":"I am Carol Smith"}`)
	r.Record(recorded(t, set, apply, at, 1, 0, ""))
	_ = r.Close()
	path := filepath.Join(dir, record.FileName(at))
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{"555-0199", "secret data", "smile", "Carol"} {
		if bytes.Contains(raw, []byte(secret)) {
			t.Errorf("the recording holds %q in clear:\n%s", secret, raw)
		}
	}
	es := readEntries(t, path)
	if len(es) != 3 {
		t.Fatalf("%d entries, want 3", len(es))
	}
	var texts []string
	for _, e := range es[:2] {
		if e.Text != record.TextHash {
			t.Errorf("entry text mode %q, want hash", e.Text)
		}
		cb, err := tim.DecodeCallback(e.Command, e.Body)
		if err != nil {
			t.Fatalf("a hashed body does not decode: %v\n%s", err, e.Body)
		}
		m := cb.(*tim.BeforeSendMsg)
		if m.Random != 4294967295 || len(m.MsgBody) != 2 || m.MsgBody[0].MsgType != tim.ElemText || m.MsgBody[1].MsgType != "TIMFaceElem" {
			t.Errorf("hashing changed more than texts: %s", e.Body)
		}
		texts = append(texts, strings.Join(tim.Texts(m.MsgBody), ""))
	}
	h := record.NewHasher("").Text("my phone is 555-0199")
	if texts[0] != h || texts[1] != h || !strings.HasPrefix(h, "sha256:") {
		t.Errorf("hashed texts %q, want both %q: equal texts hash equal", texts, h)
	}
	if k := record.NewHasher("key").Text("my phone is 555-0199"); k == h || !strings.HasPrefix(k, "hmac-sha256:") {
		t.Errorf("keyed hash %q, want an HMAC that differs from the plain hash", k)
	}
}

func TestRecorderRecordsOnlyTheKindsConfigured(t *testing.T) {
	dir := t.TempDir()
	r, err := record.New(record.Config{Dir: dir, Keep: time.Hour, Kinds: []rules.Kind{rules.JoinRequest}})
	if err != nil {
		t.Fatal(err)
	}
	set := mustRules(t, testRules)
	at := time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)
	r.Record(recorded(t, set, msgBody("bob", "hi"), at, 1, 0, ""))
	r.Record(recorded(t, set, []byte(`{"CallbackCommand":"Group.CallbackBeforeApplyJoinGroup","GroupId":"@TGS#1","Type":"Public","Requestor_Account":"cid"}`), at, 31, 0, ""))
	_ = r.Close()
	es := readEntries(t, filepath.Join(dir, record.FileName(at)))
	if len(es) != 1 || es[0].Command != tim.CmdBeforeApplyJoinGroup {
		t.Fatalf("entries %+v, want the join request only", es)
	}
	if got := es[0].State.Subjects["cid"].Counters["group_joins_1m"]; got != 31 {
		t.Errorf("group_joins_1m recorded %d, want 31", got)
	}
}

func TestRecorderCountsWhatItCouldNotWrite(t *testing.T) {
	dir := t.TempDir()
	at := time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)
	// A directory where the hour's file should be: opening it fails.
	if err := os.Mkdir(filepath.Join(dir, record.FileName(at)), 0o700); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	r, err := record.New(record.Config{Dir: dir, Keep: time.Hour, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	set := mustRules(t, testRules)
	r.Record(recorded(t, set, msgBody("bob", "hi"), at, 1, 0, ""))
	r.Record(recorded(t, set, msgBody("bob", "hi"), at.Add(time.Hour), 1, 0, ""))
	_ = r.Close()
	if n := counterValue(t, reg, "timguard_record_dropped_total", "write_error"); n != 1 {
		t.Errorf("write errors counted %v, want 1", n)
	}
	if n := counterValue(t, reg, "timguard_record_entries_total", ""); n != 1 {
		t.Errorf("entries written %v, want 1 (the next hour's file works)", n)
	}
}
