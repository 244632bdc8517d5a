package policy

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/timguard/timguard/store"
	memstore "github.com/timguard/timguard/store/memory"
)

// switchable is a memory store that can be switched off like a Redis that
// went away; it counts the calls that reached it.
type switchable struct {
	*memstore.Store
	down    atomic.Bool
	enrich  atomic.Int64
	commits atomic.Int64
}

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
		return fmt.Errorf("redis commit: %w: connection refused", store.ErrUnavailable)
	}
	return s.Store.Commit(ctx, req)
}

func TestDecisionsMadeWhileTheStoreIsDownAreKeptAndCommittedLater(t *testing.T) {
	set := mustRules(t, `version: 1
lists: {spam: [spam]}
rules: [{name: spam, on: message, if: 'contains_any(message.text, lists.spam)', verdict: block, actions: [{mute: 10m}, {strike: 1}]}]
`)
	st := &switchable{Store: memstore.New(memstore.Options{})}
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
	if rec := l.last(); rec.Result != "degraded" {
		t.Errorf("audit result %q, want degraded", rec.Result)
	}

	e.flushSpool(context.Background())
	if n := e.Spooled(); n != 2 {
		t.Errorf("a flush while the store is down lost commits: %d kept, want 2", n)
	}
	st.down.Store(false)
	e.flushSpool(context.Background())
	if n := e.Spooled(); n != 0 {
		t.Errorf("%d commits still kept after the store came back", n)
	}
	pending, err := st.Pending(context.Background(), 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(pending) != 2 {
		t.Fatalf("outbox holds %d actions after the store came back, want the 2 mutes", len(pending))
	}
	res, _ := st.Store.Enrich(context.Background(), store.EnrichRequest{Now: time.Date(2026, 11, 21, 12, 0, 1, 0, time.UTC), StrikeDecay: time.Hour,
		Strikes: []store.UserRef{{Group: "@TGS#g1", User: "eve"}}})
	if res.Strikes[0] != 2 {
		t.Errorf("eve has %d strikes after the store came back, want 2", res.Strikes[0])
	}
	t.Run("committing the spool again adds nothing twice", func(t *testing.T) {
		e.spool.putBack([]store.CommitRequest{})
		e.flushSpool(context.Background())
		if p, _ := st.Pending(context.Background(), 10); len(p) != 2 {
			t.Errorf("outbox holds %d actions, want 2", len(p))
		}
	})
}

func TestTheSpoolIsBounded(t *testing.T) {
	s := &spool{max: 10}
	for i := 0; i < 8; i++ {
		s.add(store.CommitRequest{EventID: fmt.Sprint(i), Actions: make([]store.Action, 2)})
	}
	reqs, dropped := s.take()
	if len(reqs) != 3 || reqs[0].EventID != "5" || dropped != 10 {
		t.Errorf("kept %d commits starting at %q with %d actions dropped; want the newest 3 (from 5) and 10 dropped", len(reqs), reqs[0].EventID, dropped)
	}
}
