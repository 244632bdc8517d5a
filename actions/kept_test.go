package actions

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/timguard/timguard/audit"
	"github.com/timguard/timguard/internal/redisproc"
	"github.com/timguard/timguard/rules"
	"github.com/timguard/timguard/store"
	"github.com/timguard/timguard/store/memory"
	"github.com/timguard/timguard/store/redis"
	"github.com/timguard/timguard/store/spool"
	"github.com/timguard/timguard/tim"
	"github.com/timguard/timguard/tim/timtest"
)

// crashRedis is a private redis-server with an append-only file fsynced
// on every write, which the test can kill (SIGKILL) and start again on the
// same port with every write it acknowledged, as production's Redis with
// appendfsync always.
type crashRedis struct {
	*redisproc.Server
	url string
}

func newCrashRedis(t *testing.T) *crashRedis {
	t.Helper()
	srv, err := redisproc.Start(t.TempDir(), redisproc.Options{Persist: true})
	if errors.Is(err, redisproc.ErrNotInstalled) && os.Getenv("TIMGUARD_REQUIRE_REDIS") != "1" {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	return &crashRedis{Server: srv, url: srv.URL()}
}

// start starts the killed server again.
func (r *crashRedis) start(t testing.TB) {
	t.Helper()
	if err := r.Start(); err != nil {
		t.Fatal(err)
	}
}

// open is one process's handle on the store.
func (r *crashRedis) open(t testing.TB) *redis.Store {
	t.Helper()
	s, err := redis.New(context.Background(), redis.Options{URL: r.url, KeyPrefix: "kept:", Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// afterCallClient is a REST client that runs after once, after the first
// call that changes something returned (whether it succeeded or not): the
// store goes away between the call and the recording of its outcome.
type afterCallClient struct {
	*tim.Client
	once  sync.Once
	after func()
}

func (c *afterCallClient) done() { c.once.Do(c.after) }

func (c *afterCallClient) ForbidSendMsg(ctx context.Context, req tim.ForbidSendMsgRequest) error {
	defer c.done()
	return c.Client.ForbidSendMsg(ctx, req)
}

func (c *afterCallClient) DeleteGroupMember(ctx context.Context, req tim.DeleteGroupMemberRequest) error {
	defer c.done()
	return c.Client.DeleteGroupMember(ctx, req)
}

// clock is a test clock that can jump ahead of the wall clock.
type clock struct{ ahead atomic.Int64 }

func (c *clock) now() time.Time       { return time.Now().Add(time.Duration(c.ahead.Load())) }
func (c *clock) jump(d time.Duration) { c.ahead.Add(int64(d)) }
func (c *clock) set(cfg *Config)      { cfg.Now = c.now }

func openJournal(t testing.TB, dir string) *spool.Journal {
	t.Helper()
	j, _, bad, err := spool.Open(dir, spool.Options{BatchDelay: time.Millisecond})
	if err != nil || len(bad) > 0 {
		t.Fatalf("open the journal: %v, bad entries %v", err, bad)
	}
	return j
}

func keptOf(j *spool.Journal) []KeptOutcome {
	var out []KeptOutcome
	for _, o := range j.Outcomes() {
		out = append(out, KeptOutcome{ID: o.ID, Data: o.Data})
	}
	return out
}

// An action whose REST call was made just before Redis crashed cannot
// record its outcome: it is kept in state_dir and audited
// once. Whether the same executor goes on or the process is killed and a
// new one starts on the same state_dir, the outcome is recorded before the
// next claim, so that the action, whose lease has long run out by then, is
// not claimed and carried out again. A dead letter is kept the same way.
func TestAnOutcomeTheStoreCannotRecordIsKeptAndTheActionNotRepeated(t *testing.T) {
	all := []string{store.RoleOwner, store.RoleAdmin, string(rules.RoleAppAdmin)}
	tests := []struct {
		name    string
		action  store.Action
		command string
		fail    bool // the call is refused for good (a dead letter)
		restart bool // the process is killed while the store is down
		result  string
		muted   bool // the mute is recorded
	}{
		{"a mute, the same executor going on", act("m1", string(rules.ActMute), grp, tim.GroupPublic, "carol", 600, ""), tim.CommandForbidSendMsg, false, false, audit.ResultDone, true},
		{"a mute, the process killed and another started", act("m1", string(rules.ActMute), grp, tim.GroupPublic, "carol", 600, ""), tim.CommandForbidSendMsg, false, true, audit.ResultDone, true},
		{"a kick, the process killed and another started", act("k1", string(rules.ActKick), grp, tim.GroupPublic, "carol", 0, "spam"), tim.CommandDeleteGroupMember, false, true, audit.ResultDone, false},
		{"a dead letter, the process killed and another started", act("m1", string(rules.ActMute), grp, tim.GroupPublic, "carol", 600, ""), tim.CommandForbidSendMsg, true, true, audit.ResultDead, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newCrashRedis(t)
			s := r.open(t)
			a := tt.action
			a.Roles = all
			enqueue(t, s, time.Now(), a)

			rig := newIMRig(t, 100, timtest.Options{})
			rig.im.AddGroup(timtest.Group{ID: grp, Type: "Public", Owner: "olga", Members: []string{"carol"}})
			if tt.fail {
				rig.im.FailNext(tim.CommandForbidSendMsg, tim.CodeBadParameter, 1)
			}
			client := &afterCallClient{Client: rig.client(t, s), after: r.Kill}
			dir := filepath.Join(t.TempDir(), "state")
			j := openJournal(t, dir)
			t.Cleanup(func() { _ = j.Close() })
			log := &auditLog{}
			var clk clock
			e := newTestExecutor(t, s, client, log, func(c *Config) { clk.set(c); c.Journal = j })

			if n, err := e.RunOnce(context.Background()); n != 1 || err != nil {
				t.Fatalf("first round: %d claimed, %v; want the action", n, err)
			}
			if got := e.KeptOutcomes(); got != 1 {
				t.Fatalf("%d outcomes kept, want 1; records %+v", got, log.records(t))
			}
			if n, err := e.RunOnce(context.Background()); n != 0 || !errors.Is(err, errOutcomesWait) {
				t.Fatalf("a round while the store is down: %d claimed, %v; want none, and the outcome waiting", n, err)
			}

			// Long after the lease: the action would be due again.
			clk.jump(time.Hour)
			if tt.restart {
				// The process dies: what it kept is in the file.
				if err := j.Close(); err != nil {
					t.Fatal(err)
				}
				r.start(t)
				j = openJournal(t, dir)
				if got := len(j.Outcomes()); got != 1 {
					t.Fatalf("the journal holds %d outcomes after the restart, want 1", got)
				}
				s = r.open(t)
				kept := keptOf(j)
				e = newTestExecutor(t, s, rig.client(t, s), log, func(c *Config) { clk.set(c); c.Journal, c.Kept = j, kept })
			} else {
				r.start(t)
			}
			if n, err := e.RunOnce(context.Background()); n != 0 || err != nil {
				t.Fatalf("the round after the store came back: %d claimed, %v; want the outcome recorded and nothing claimed", n, err)
			}

			if got := len(rig.im.CallsTo(tt.command)); got != 1 {
				t.Errorf("%d calls to the IM server for the action, want 1", got)
			}
			recs := log.byAction(t)[a.ID]
			if len(recs) != 1 || recs[0].Result != tt.result || !strings.Contains(recs[0].Error, "kept in state_dir") {
				t.Errorf("records of the action: %+v; want one %s record naming state_dir", recs, tt.result)
			}
			if got := e.KeptOutcomes(); got != 0 {
				t.Errorf("%d outcomes still kept after the store came back", got)
			}
			st, err := s.Stats(context.Background(), clk.now())
			if err != nil || st.Ready != 0 || st.Claimed != 0 {
				t.Errorf("the outbox after the outcome was recorded: %+v, %v; want nothing waiting or claimed", st, err)
			}
			if tt.fail && (err != nil || st.Dead != 1) {
				t.Errorf("dead letters: %d, want the action", st.Dead)
			}
			mutes, err := s.ListMutes(context.Background(), grp)
			if err != nil {
				t.Fatal(err)
			}
			if muted := len(mutes) == 1 && mutes[0].User == "carol"; muted != tt.muted {
				t.Errorf("recorded mutes %+v; want the mute recorded: %v", mutes, tt.muted)
			}
			if err := j.Close(); err != nil {
				t.Fatal(err)
			}
			j = openJournal(t, dir)
			if got := len(j.Outcomes()); got != 0 {
				t.Errorf("the journal still holds %d outcomes after they were recorded", got)
			}
		})
	}
}

// An outcome in state_dir that does not read back (another version, a disk
// that lied) is logged and removed at start; the others are kept.
func TestAKeptOutcomeThatDoesNotDecodeIsDroppedAtStart(t *testing.T) {
	dir := t.TempDir()
	j := openJournal(t, dir)
	t.Cleanup(func() { _ = j.Close() })
	good, err := json.Marshal(keptOutcome{V: keptVersion, Claim: store.Claimed{Action: act("m1", string(rules.ActMute), grp, tim.GroupPublic, "carol", 600, "")}, At: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	for _, data := range [][]byte{good, []byte("{not json"), []byte(`{"v":9,"claim":{"id":"x"}}`), []byte(`{"v":1,"claim":{"id":"y"},"follow_up":{"op":"fly"}}`)} {
		if _, err := j.AddOutcome(data); err != nil {
			t.Fatal(err)
		}
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	j = openJournal(t, dir)
	e := newTestExecutor(t, memory.New(memory.Options{}), nil, &auditLog{}, func(c *Config) { c.Journal, c.Kept = j, keptOf(j) })
	if got := e.KeptOutcomes(); got != 1 {
		t.Errorf("%d outcomes kept at start, want the one that decodes", got)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	j = openJournal(t, dir)
	if got := len(j.Outcomes()); got != 1 {
		t.Errorf("the journal holds %d outcomes, want the one that decodes", got)
	}
}

// FuzzDecodeKept: whatever an outcome entry holds, decodeKept returns an
// outcome that names an action and a known follow-up, or an error.
func FuzzDecodeKept(f *testing.F) {
	good, err := json.Marshal(keptOutcome{V: keptVersion, Claim: store.Claimed{Action: act("m1", string(rules.ActMute), grp, tim.GroupPublic, "carol", 600, "")},
		FollowUp: &keptFollowUp{Op: "mute", Seconds: 600}, At: time.Now()})
	if err != nil {
		f.Fatal(err)
	}
	for _, seed := range [][]byte{good, []byte("{"), []byte(`{"v":1}`), []byte(`{"v":1,"claim":{"id":"a"},"follow_up":{"op":""}}`), nil, []byte("null")} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		k, err := decodeKept(data)
		if err != nil {
			return
		}
		if k.Claim.ID == "" || k.V != keptVersion {
			t.Fatalf("decoded %+v from %q", k, data)
		}
		if k.FollowUp != nil {
			if _, ok := followUpOp(k.FollowUp.Op); !ok {
				t.Fatalf("decoded an unknown follow-up %q", k.FollowUp.Op)
			}
		}
	})
}

// A stop while Redis is down leaves the kept outcome on disk: Run tries
// once more to record it, does not wait for Redis, and returns; the next
// process finds the outcome in state_dir.
func TestAStopWhileRedisIsDownLeavesTheOutcomeOnDisk(t *testing.T) {
	r := newCrashRedis(t)
	s := r.open(t)
	a := act("m1", string(rules.ActMute), grp, tim.GroupPublic, "carol", 600, "")
	a.Roles = []string{store.RoleOwner, store.RoleAdmin, string(rules.RoleAppAdmin)}
	enqueue(t, s, time.Now(), a)
	rig := newIMRig(t, 100, timtest.Options{})
	rig.im.AddGroup(timtest.Group{ID: grp, Type: "Public", Owner: "olga", Members: []string{"carol"}})
	client := &afterCallClient{Client: rig.client(t, s), after: r.Kill}
	dir := t.TempDir()
	j := openJournal(t, dir)
	t.Cleanup(func() { _ = j.Close() })
	log := &auditLog{}
	e := newTestExecutor(t, s, client, log, func(c *Config) { c.Journal = j })
	stop := run(t, e)
	deadline := time.Now().Add(30 * time.Second)
	for len(log.byAction(t)["m1"]) == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	stop()
	if recs := log.byAction(t)["m1"]; len(recs) != 1 || recs[0].Result != audit.ResultDone {
		t.Fatalf("records of m1: %+v, want one done record", recs)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	j = openJournal(t, dir)
	if got := len(j.Outcomes()); got != 1 {
		t.Errorf("the journal holds %d outcomes after the stop, want m1's", got)
	}
	if got := len(rig.im.CallsTo(tim.CommandForbidSendMsg)); got != 1 {
		t.Errorf("%d calls, want 1", got)
	}
}

// A retry the store cannot record is kept too: the worker does not wait
// for Redis, and the next process puts the action back with its attempt
// and error, then carries it out once.
func TestARetryTheStoreCannotRecordIsKeptAndDoneOnceLater(t *testing.T) {
	r := newCrashRedis(t)
	s := r.open(t)
	a := act("m1", string(rules.ActMute), grp, tim.GroupPublic, "carol", 600, "")
	a.Roles = []string{store.RoleOwner, store.RoleAdmin, string(rules.RoleAppAdmin)}
	enqueue(t, s, time.Now(), a)
	rig := newIMRig(t, 100, timtest.Options{})
	rig.im.AddGroup(timtest.Group{ID: grp, Type: "Public", Owner: "olga", Members: []string{"carol"}})
	rig.im.FailNext(tim.CommandForbidSendMsg, tim.CodeInternalError, 1)
	client := &afterCallClient{Client: rig.client(t, s), after: r.Kill}
	dir := t.TempDir()
	j := openJournal(t, dir)
	t.Cleanup(func() { _ = j.Close() })
	log := &auditLog{}
	var clk clock
	e := newTestExecutor(t, s, client, log, func(c *Config) { clk.set(c); c.Journal = j })
	if n, err := e.RunOnce(context.Background()); n != 1 || err != nil {
		t.Fatalf("first round: %d claimed, %v", n, err)
	}
	if got := e.KeptOutcomes(); got != 1 {
		t.Fatalf("%d outcomes kept, want the retry", got)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	r.start(t)
	clk.jump(time.Hour)
	j = openJournal(t, dir)
	s = r.open(t)
	e = newTestExecutor(t, s, rig.client(t, s), log, func(c *Config) { clk.set(c); c.Journal, c.Kept = j, keptOf(j) })
	if n, err := e.RunOnce(context.Background()); n != 1 || err != nil {
		t.Fatalf("the round after the restart: %d claimed, %v; want the retry recorded and the action claimed again", n, err)
	}
	if got := log.results(t)["m1"]; got != "retry,done" {
		t.Errorf("results of m1: %q, want retry,done", got)
	}
	if calls, done := len(rig.im.CallsTo(tim.CommandForbidSendMsg)), len(rig.im.EffectiveCallsTo(tim.CommandForbidSendMsg)); calls != 2 || done != 1 {
		t.Errorf("%d calls, %d carried out; want the failed one and one carried out", calls, done)
	}
	if recs := log.byAction(t)["m1"]; recs[1].Attempt != 2 {
		t.Errorf("the second attempt is numbered %d, want 2 (the kept retry counted the first)", recs[1].Attempt)
	}
}
