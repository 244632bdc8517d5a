package policy

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/timguard/timguard/audit"
	"github.com/timguard/timguard/store"
	"github.com/timguard/timguard/store/memory"
	journal "github.com/timguard/timguard/store/spool"
)

// switchable is a memory store that can be switched off like a Redis that
// went away, or made to refuse some commits; it counts the calls that
// reached it.
type switchable struct {
	*memory.Store
	down    atomic.Bool
	enrich  atomic.Int64
	commits atomic.Int64

	mu sync.Mutex
	// refuse, when set and the store is up, is the error of a commit (nil
	// lets it through).
	refuse func(req store.CommitRequest) error
}

var errDown = fmt.Errorf("redis commit: %w: connection refused", store.ErrUnavailable)

func (s *switchable) Enrich(ctx context.Context, req store.EnrichRequest) (store.EnrichResult, error) {
	s.enrich.Add(1)
	if s.down.Load() {
		return store.EnrichResult{}, fmt.Errorf("redis enrich: %w: connection refused", store.ErrUnavailable)
	}
	return s.Store.Enrich(ctx, req)
}

func (s *switchable) Commit(ctx context.Context, req store.CommitRequest) error {
	s.commits.Add(1)
	if s.down.Load() {
		return errDown
	}
	s.mu.Lock()
	refuse := s.refuse
	s.mu.Unlock()
	if refuse != nil {
		if err := refuse(req); err != nil {
			return err
		}
	}
	return s.Store.Commit(ctx, req)
}

func (s *switchable) Ping(ctx context.Context) error {
	if s.down.Load() {
		return errDown
	}
	return s.Store.Ping(ctx)
}

func (s *switchable) setRefuse(f func(req store.CommitRequest) error) {
	s.mu.Lock()
	s.refuse = f
	s.mu.Unlock()
}

const spoolRules = `version: 1
lists: {spam: [spam]}
rules: [{name: spam, on: message, if: 'contains_any(message.text, lists.spam)', verdict: block, actions: [{mute: 10m}, {strike: 1}]}]
`

func pending(t *testing.T, s store.Outbox) int {
	t.Helper()
	p, err := s.Pending(context.Background(), 1000)
	if err != nil {
		t.Fatal(err)
	}
	return len(p)
}

// lostRecords returns the "lost" action records, by action id.
func (l *lines) lostRecords() map[string]audit.Record {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[string]audit.Record{}
	for _, r := range l.all {
		if r.Kind == audit.KindAction && r.Result == audit.ResultLost && len(r.Actions) == 1 {
			out[r.Actions[0].ID] = r
		}
	}
	return out
}

func TestDecisionsMadeWhileTheStoreIsDownAreKeptAndCommittedLater(t *testing.T) {
	set := mustRules(t, spoolRules)
	st := &switchable{Store: memory.New(memory.Options{})}
	l := &lines{}
	e := New(Config{Rules: fixedRules{set}, Store: st, Audit: l})
	st.down.Store(true)

	out := e.Handle(context.Background(), msgEvent(t, "eve", "spam one"))
	if out.Reply.ErrorCode != 1 {
		t.Fatalf("decided without the store: code %d, want the block", out.Reply.ErrorCode)
	}
	enrichBefore := st.enrich.Load()
	e.Handle(context.Background(), msgEvent(t, "eve", "spam two"))
	if st.enrich.Load() != enrichBefore {
		t.Errorf("a callback right after an outage waited for the store again")
	}
	if n := e.Spooled(); n != 2 {
		t.Fatalf("%d commits kept, want 2", n)
	}
	if rec := l.last(); rec.Result != "degraded" || !strings.Contains(rec.Error, "kept in memory") {
		t.Errorf("audit result %q error %q, want degraded saying where the decision is kept", rec.Result, rec.Error)
	}

	for range 2 * maxBlame {
		e.flushSpool(context.Background())
	}
	if n := e.Spooled(); n != 2 {
		t.Errorf("flushes while the store is down lost commits: %d kept, want 2", n)
	}
	st.down.Store(false)
	e.flushSpool(context.Background())
	if n := e.Spooled(); n != 0 {
		t.Errorf("%d commits still kept after the store came back", n)
	}
	if n := pending(t, st); n != 2 {
		t.Fatalf("outbox holds %d actions after the store came back, want the 2 mutes", n)
	}
	res, _ := st.Store.Enrich(context.Background(), store.EnrichRequest{Now: time.Date(2026, 11, 21, 12, 0, 1, 0, time.UTC), StrikeDecay: time.Hour,
		Strikes: []store.UserRef{{Group: "@TGS#g1", User: "eve"}}})
	if res.Strikes[0] != 2 {
		t.Errorf("eve has %d strikes after the store came back, want 2", res.Strikes[0])
	}
	if lost := l.lostRecords(); len(lost) != 0 {
		t.Errorf("actions audited as lost: %v", lost)
	}
}

// Redis full (OOM) or any other refusal of a write: the decision is kept
// and retried like in an outage, not dropped.
func TestACommitTheStoreRefusesIsKeptAndRetried(t *testing.T) {
	set := mustRules(t, spoolRules)
	st := &switchable{Store: memory.New(memory.Options{})}
	l := &lines{}
	e := New(Config{Rules: fixedRules{set}, Store: st, Audit: l})
	oom := errors.New("redis commit: OOM command not allowed when used memory > 'maxmemory'")
	st.setRefuse(func(store.CommitRequest) error { return oom })

	e.Handle(context.Background(), msgEvent(t, "eve", "spam one"))
	if n := e.Spooled(); n != 1 {
		t.Fatalf("%d commits kept after the store refused the write, want 1", n)
	}
	e.flushSpool(context.Background())
	st.setRefuse(nil)
	e.flushSpool(context.Background())
	if n := pending(t, st); n != 1 || e.Spooled() != 0 {
		t.Errorf("outbox holds %d actions and %d commits wait, want the mute committed", n, e.Spooled())
	}
}

// A decision whose commit never fits (it times out, as an 8,000-member
// join did) while the store takes other writes is given up after a few
// tries, with a lost record per action; it neither stays forever nor holds
// the others or the callbacks back.
func TestACommitThatNeverFitsIsGivenUpNotRetriedForever(t *testing.T) {
	for _, c := range []struct {
		name string
		// others sends callbacks between flushes (the store takes their
		// commits); without them only the store's Ping tells that it takes
		// writes.
		others bool
	}{
		{"while other commits go through", true},
		{"on an idle bot, told by a ping", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) { // for the breaker's clock
				set := mustRules(t, spoolRules)
				st := &switchable{Store: memory.New(memory.Options{})}
				l := &lines{}
				e := New(Config{Rules: fixedRules{set}, Store: st, Audit: l})
				st.setRefuse(func(req store.CommitRequest) error {
					for _, a := range req.Actions {
						if a.User == "huge" {
							return fmt.Errorf("redis commit: %w: %w", store.ErrUnavailable, context.DeadlineExceeded)
						}
					}
					return nil
				})
				e.Handle(context.Background(), msgEvent(t, "huge", "spam"))
				if e.Spooled() != 1 {
					t.Fatalf("%d commits kept, want the one that timed out", e.Spooled())
				}
				// The timeout made the callbacks skip the store for a moment.
				time.Sleep(storeDownFor)
				for i := range 3 * maxBlame {
					if c.others {
						if out := e.Handle(context.Background(), msgEvent(t, fmt.Sprintf("u%d", i), "spam")); out.Reply.ErrorCode != 1 {
							t.Fatalf("callback %d: %+v", i, out.Reply)
						}
						if e.breaker.down() {
							t.Fatalf("after %d flushes the callbacks skip the store, which takes their writes", i)
						}
					}
					e.flushSpool(context.Background())
				}
				if n := e.Spooled(); n != 0 {
					t.Errorf("the commit that never fits is still retried after %d flushes", 3*maxBlame)
				}
				lost := l.lostRecords()
				if len(lost) != 1 {
					t.Fatalf("lost records %v, want one for the mute of huge", lost)
				}
				for _, r := range lost {
					if r.User != "huge" || !strings.Contains(r.Error, fmt.Sprintf("after %d attempts", maxBlame)) {
						t.Errorf("lost record %+v, want huge's mute and the attempts", r)
					}
				}
				if want := 0; c.others {
					want = 3 * maxBlame
					if n := pending(t, st); n != want {
						t.Errorf("outbox holds %d actions, want the %d of the other callbacks", n, want)
					}
				}
			})
		})
	}
}

func TestTheSpoolIsBoundedAndAuditsWhatItDrops(t *testing.T) {
	set := mustRules(t, spoolRules)
	st := &switchable{Store: memory.New(memory.Options{})}
	l := &lines{}
	e := New(Config{Rules: fixedRules{set}, Store: st, Audit: l})
	e.spool.max = 10 // a commit of one mute and one strike weighs 3
	st.down.Store(true)
	for i := range 8 {
		e.Handle(context.Background(), msgEvent(t, fmt.Sprintf("u%d", i), "spam"))
	}
	if n := e.Spooled(); n != 3 {
		t.Errorf("%d commits kept, want the newest 3", n)
	}
	e.flushSpool(context.Background())
	lost := l.lostRecords()
	if len(lost) != 5 {
		t.Fatalf("%d lost records, want the 5 dropped mutes", len(lost))
	}
	for _, r := range lost {
		if r.User >= "u5" || !strings.Contains(r.Error, "spool") {
			t.Errorf("lost record %+v, want one of u0..u4 naming the spool", r)
		}
	}
}

// With a journal, a decision the store did not take is on disk before the
// callback is answered; a process killed then commits it at its next
// start. One that stops while the store is still down leaves it on disk.
func TestWithAJournalDecisionsSurviveTheProcess(t *testing.T) {
	set := mustRules(t, spoolRules)
	dir := filepath.Join(t.TempDir(), "state")
	mem := memory.New(memory.Options{})
	st := &switchable{Store: mem}
	st.down.Store(true)

	j, kept, bad, err := journal.Open(dir, journal.Options{})
	if err != nil || len(kept) != 0 || len(bad) != 0 {
		t.Fatalf("open: %v, %d kept, %v", err, len(kept), bad)
	}
	l := &lines{}
	e := New(Config{Rules: fixedRules{set}, Store: st, Audit: l, Journal: j})
	for i := range 3 {
		e.Handle(context.Background(), msgEvent(t, fmt.Sprintf("u%d", i), "spam"))
	}
	if rec := l.last(); !strings.Contains(rec.Error, "kept on disk") {
		t.Errorf("audit error %q, want it to say the decision is kept on disk", rec.Error)
	}
	// A stop while the store is down: the last try fails at once, and the
	// decisions stay in the journal (the process is gone: e is dropped).
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	e.DrainSpool(ctx, time.Hour)
	if lost := l.lostRecords(); len(lost) != 0 {
		t.Errorf("a stop with a journal audited actions as lost: %v", lost)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}

	// The next start, with the store back.
	j, kept, bad, err = journal.Open(dir, journal.Options{})
	if err != nil || len(bad) != 0 {
		t.Fatalf("reopen: %v, %v", err, bad)
	}
	defer j.Close()
	if len(kept) != 3 {
		t.Fatalf("the journal holds %d commits after the stop, want 3", len(kept))
	}
	st.down.Store(false)
	l2 := &lines{}
	restored := make([]KeptCommit, len(kept))
	for i, k := range kept {
		restored[i] = KeptCommit{ID: k.ID, Commit: k.Commit}
	}
	e2 := New(Config{Rules: fixedRules{set}, Store: st, Audit: l2, Journal: j, Kept: restored})
	if n := e2.Spooled(); n != 3 {
		t.Fatalf("%d commits wait after the restart, want 3", n)
	}
	e2.flushSpool(context.Background())
	if n := pending(t, mem); n != 3 {
		t.Errorf("outbox holds %d actions after the restart, want the 3 mutes", n)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	j, kept, _, err = journal.Open(dir, journal.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = j.Close() })
	if len(kept) != 0 {
		t.Errorf("the journal still holds %d commits the store took", len(kept))
	}
}

// Without a journal a stop while the store is down loses the decisions it
// holds, and says so for each action.
func TestWithoutAJournalAStopAuditsTheActionsLost(t *testing.T) {
	set := mustRules(t, spoolRules)
	st := &switchable{Store: memory.New(memory.Options{})}
	st.down.Store(true)
	l := &lines{}
	e := New(Config{Rules: fixedRules{set}, Store: st, Audit: l})
	for i := range 2 {
		e.Handle(context.Background(), msgEvent(t, fmt.Sprintf("u%d", i), "spam"))
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	e.DrainSpool(ctx, time.Hour)
	if lost := l.lostRecords(); len(lost) != 2 {
		t.Errorf("%d lost records, want the 2 mutes", len(lost))
	}
}

// A commit that fails for its own sake is split until only the item at
// fault is left: that one is given up, the others get through.
func TestOnlyTheItemAtFaultOfACommitIsGivenUp(t *testing.T) {
	set := mustRules(t, spoolRules)
	st := &switchable{Store: memory.New(memory.Options{})}
	l := &lines{}
	e := New(Config{Rules: fixedRules{set}, Store: st, Audit: l})
	st.setRefuse(func(req store.CommitRequest) error {
		if len(req.Decisions) > 0 && req.Decisions[0].User == "eve" {
			return errors.New("redis commit: WRONGTYPE Operation against a key holding the wrong kind of value")
		}
		return nil
	})
	e.Handle(context.Background(), msgEvent(t, "eve", "spam"))
	for range 4 * maxBlame {
		e.flushSpool(context.Background())
	}
	if n := e.Spooled(); n != 0 {
		t.Fatalf("%d commits still kept after %d flushes", n, 4*maxBlame)
	}
	if n := pending(t, st); n != 1 {
		t.Errorf("outbox holds %d actions, want eve's mute", n)
	}
	res, _ := st.Store.Enrich(context.Background(), store.EnrichRequest{Now: time.Date(2026, 11, 21, 12, 0, 1, 0, time.UTC), StrikeDecay: time.Hour,
		Strikes: []store.UserRef{{Group: "@TGS#g1", User: "eve"}}})
	if res.Strikes[0] != 1 {
		t.Errorf("eve has %d strikes, want the one decided", res.Strikes[0])
	}
	if lost := l.lostRecords(); len(lost) != 0 {
		t.Errorf("lost records %v, want none: only the decision record was refused", lost)
	}
}

// A decision with thousands of subjects whose commit never fits the store's
// timeout while the store takes other writes is split until its pieces fit:
// nothing is lost.
func TestACommitTooBigForTheStoreIsSplitUntilItFits(t *testing.T) {
	set := mustRules(t, `version: 1
rules: [{name: newcomers, on: member_joined, if: 'true', actions: [{mute: 5m}]}]
`)
	st := &switchable{Store: memory.New(memory.Options{})}
	l := &lines{}
	dir := t.TempDir()
	j, _, _, err := journal.Open(dir, journal.Options{})
	if err != nil {
		t.Fatal(err)
	}
	e := New(Config{Rules: fixedRules{set}, Store: st, Audit: l, Journal: j})
	const fits = 10 // items per commit the store takes in time
	st.setRefuse(func(req store.CommitRequest) error {
		if len(req.Strikes)+len(req.Touch)+len(req.Actions)+len(req.Decisions) > fits {
			return fmt.Errorf("redis commit: %w: %w", store.ErrUnavailable, context.DeadlineExceeded)
		}
		return nil
	})
	var members []any
	for i := range 40 {
		members = append(members, map[string]any{"Member_Account": fmt.Sprintf("n%03d", i)})
	}
	e.Handle(context.Background(), eventFrom(t, "Group.CallbackAfterNewMemberJoin", map[string]any{
		"GroupId": "@TGS#wave", "Type": "Public", "JoinType": "Apply", "Operator_Account": "n000", "NewMemberList": members,
	}))
	if e.Spooled() != 1 {
		t.Fatalf("%d commits kept, want the one too big", e.Spooled())
	}
	for i := 0; i < 100 && e.Spooled() > 0; i++ {
		e.flushSpool(context.Background())
	}
	if n := e.Spooled(); n != 0 {
		t.Fatalf("%d commits still kept after 100 flushes", n)
	}
	if n := pending(t, st); n != 40 {
		t.Errorf("outbox holds %d actions, want the 40 mutes", n)
	}
	if lost := l.lostRecords(); len(lost) != 0 {
		t.Errorf("%d actions audited lost, want none", len(lost))
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	j, kept, _, err := journal.Open(dir, journal.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	if len(kept) != 0 {
		t.Errorf("the journal still holds %d pieces the store took", len(kept))
	}
}
