package policy

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/timguard/timguard/store"
)

// spool keeps commits the store could not take (it was unreachable) and
// retries them until it can. Action ids are deterministic and enqueueing is
// idempotent, so a commit that did reach the store before its answer was lost
// is not done twice. The spool lives in memory: a process killed while the
// store is down loses what it holds (the audit log says which actions).
type spool struct {
	mu      sync.Mutex
	pending []store.CommitRequest
	actions int // actions held, for the cap
	max     int // most actions held; the oldest commits go first beyond it
	dropped int
}

// maxSpooledActions bounds the spool: about 100k actions is a few minutes of
// a busy app's decisions and tens of megabytes at most.
const maxSpooledActions = 100_000

func (s *spool) add(req store.CommitRequest) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pending = append(s.pending, req)
	s.actions += len(req.Actions) + len(req.Strikes) + 1
	for s.actions > s.max && len(s.pending) > 1 {
		old := s.pending[0]
		s.pending = s.pending[1:]
		s.actions -= len(old.Actions) + len(old.Strikes) + 1
		s.dropped += len(old.Actions)
	}
}

// take removes and returns everything spooled, and how many actions were
// dropped since the last take.
func (s *spool) take() ([]store.CommitRequest, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out, dropped := s.pending, s.dropped
	s.pending, s.actions, s.dropped = nil, 0, 0
	return out, dropped
}

// putBack returns commits that still failed, ahead of newer ones.
func (s *spool) putBack(reqs []store.CommitRequest) {
	if len(reqs) == 0 {
		return
	}
	s.mu.Lock()
	newer := s.pending
	s.pending = append(append([]store.CommitRequest{}, reqs...), newer...)
	for _, r := range reqs {
		s.actions += len(r.Actions) + len(r.Strikes) + 1
	}
	s.mu.Unlock()
}

// Spooled reports how many commits wait for the store.
func (e *Engine) Spooled() int {
	e.spool.mu.Lock()
	defer e.spool.mu.Unlock()
	return len(e.spool.pending)
}

// DrainSpool retries spooled commits every interval until ctx is done, then
// makes one last attempt bounded by the store timeout.
func (e *Engine) DrainSpool(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			e.flushSpool(context.Background())
			if n := e.Spooled(); n > 0 {
				e.log.Error("stopping with decisions the store never took: their strikes and actions are lost",
					"commits", n)
			}
			return
		case <-t.C:
			e.flushSpool(ctx)
		}
	}
}

func (e *Engine) flushSpool(ctx context.Context) {
	reqs, dropped := e.spool.take()
	if dropped > 0 {
		e.log.Error("the commit spool was full: the oldest decisions' actions were dropped", "actions", dropped)
		if e.cfg.Observer != nil {
			e.cfg.Observer.StoreError("spool_drop")
		}
	}
	for i, req := range reqs {
		sctx, cancel := context.WithTimeout(ctx, e.cfg.StoreTimeout)
		err := e.cfg.Store.Commit(sctx, req)
		cancel()
		e.noteStoreError(err)
		if err != nil {
			if !errors.Is(err, store.ErrUnavailable) && ctx.Err() == nil {
				// Not an outage: retrying will not help.
				e.log.Error("a spooled commit failed for good", "event_id", req.EventID, "actions", len(req.Actions), "err", err)
				continue
			}
			e.spool.putBack(reqs[i:])
			return
		}
		e.log.Info("a spooled decision reached the store", "event_id", req.EventID, "actions", len(req.Actions),
			"waited", e.cfg.Now().Sub(req.Now).Round(time.Millisecond))
	}
}
