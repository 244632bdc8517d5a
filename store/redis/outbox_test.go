package redis

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/timguard/timguard/store"
)

// Complete calls made together share script runs; each claim is still
// settled as a call of its own would settle it: a held claim is completed
// and remembered, a stale token loses its lease, an unknown action is
// reported unknown, a second completion of the same claim finds its lease
// gone, and a caller whose context ended settles nothing.
func TestConcurrentCompletesSettleEachClaimAsAlone(t *testing.T) {
	s := freshStore(t, Options{})
	ctx := t.Context()
	now := time.Now()
	const n = 300 // more than one script run takes
	var as []store.Action
	for i := range n {
		as = append(as, store.Action{ID: fmt.Sprintf("a%03d", i), Kind: "mute", Group: "g", User: fmt.Sprintf("u%03d", i), Seconds: 60, Created: now})
	}
	as = append(as, store.Action{ID: "cancelled", Kind: "mute", Group: "g", User: "c", Seconds: 60, Created: now})
	if err := s.Enqueue(ctx, as...); err != nil {
		t.Fatal(err)
	}
	cs, err := s.Claim(ctx, now, len(as), time.Minute)
	if err != nil || len(cs) != len(as) {
		t.Fatalf("claim: %d actions, %v", len(cs), err)
	}
	byID := map[string]store.Claimed{}
	for _, c := range cs {
		byID[c.ID] = c
	}
	stale := byID["a000"]
	stale.Token = "not-the-token"
	done, cancel := context.WithCancel(ctx)
	cancel()
	type call struct {
		ctx  context.Context
		c    store.Claimed
		want error // nil, store.ErrLeaseLost, store.ErrActionUnknown or context.Canceled
	}
	calls := []call{
		{ctx, stale, store.ErrLeaseLost},
		{ctx, store.Claimed{Action: store.Action{ID: "nobody"}, Token: "t"}, store.ErrActionUnknown},
		{done, byID["cancelled"], context.Canceled},
	}
	for i := range n {
		calls = append(calls, call{ctx, byID[fmt.Sprintf("a%03d", i)], nil})
	}
	errs := make([]error, len(calls))
	var wg sync.WaitGroup
	for i, c := range calls {
		wg.Go(func() { errs[i] = s.Complete(c.ctx, c.c) })
	}
	wg.Wait()
	for i, c := range calls {
		switch {
		case c.want == nil && errs[i] != nil:
			t.Errorf("complete %s: %v", c.c.ID, errs[i])
		case c.want != nil && !errors.Is(errs[i], c.want):
			t.Errorf("complete %s: err = %v, want %v", c.c.ID, errs[i], c.want)
		}
	}
	// Completed twice: the second finds the lease gone.
	if err := s.Complete(ctx, byID["a001"]); !errors.Is(err, store.ErrLeaseLost) {
		t.Errorf("second complete: err = %v, want ErrLeaseLost", err)
	}
	st, err := s.Stats(ctx, now)
	if err != nil {
		t.Fatal(err)
	}
	if st.Claimed != 1 || st.Ready != 0 || st.Dead != 0 {
		t.Errorf("stats %+v, want only the cancelled caller's claim left", st)
	}
	// The completed ids are remembered: enqueueing them again adds nothing.
	if err := s.Enqueue(ctx, as[:n]...); err != nil {
		t.Fatal(err)
	}
	if st, err := s.Stats(ctx, now); err != nil || st.Ready != 0 {
		t.Errorf("after enqueueing the completed actions again: %+v, %v", st, err)
	}
	if err := s.Complete(ctx, byID["cancelled"]); err != nil {
		t.Errorf("complete the claim whose first caller gave up: %v", err)
	}
}
