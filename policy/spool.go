package policy

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/timguard/timguard/audit"
	"github.com/timguard/timguard/store"
)

// The spool keeps the commits the store did not take (it was down, full,
// too slow, or refused the write) and retries them until it does. Action
// ids are deterministic and enqueueing is idempotent, so a commit that did
// reach the store before its answer was lost is not done twice.
//
// With a Journal (state_dir), a commit is on local disk before the callback
// that made it is answered, and a process killed while the store is down
// commits it at its next start. Without one, the spool lives in memory and
// a process stopped before the store came back loses what it holds (each
// action lost gets a "lost" audit record).
//
// No commit is retried forever for its own fault. A commit that fails while
// the store takes other writes (or fails with an error other than the store
// being unavailable) is split in two, and so on, so that a commit too big
// for store.timeout gets through in pieces; a single strike, action or
// record that still fails is given up after maxBlame such failures, with a
// "lost" audit record for an action. While the store takes no write at all
// (an outage, a full Redis) commits wait as long as it takes.

// Journal keeps spooled commits on local disk; *spool.Journal (store/spool)
// implements it. Add and Replace return once the change is durable.
type Journal interface {
	Add(req store.CommitRequest) (uint64, error)
	// Replace puts parts in the place of the entry old, at once.
	Replace(old uint64, parts ...store.CommitRequest) ([]uint64, error)
	Remove(ids ...uint64) error
}

// KeptCommit is a commit read back from the journal at start.
type KeptCommit struct {
	ID     uint64
	Commit store.CommitRequest
}

// maxSpooledActions bounds the spool: about 100k actions is a few minutes of
// a busy app's decisions and tens of megabytes at most.
const maxSpooledActions = 100_000

// maxBlame is how many times a commit may fail for its own fault before it
// is given up.
const maxBlame = 5

// spoolGrace bounds the last attempt to commit the spool when DrainSpool
// stops; what is left stays in the journal (or is lost without one).
const spoolGrace = 5 * time.Second

// spooled is one commit waiting for the store.
type spooled struct {
	id  uint64 // its journal entry; 0 when it is held in memory only
	req store.CommitRequest
	// blamed counts failures that were the commit's own fault.
	blamed  int
	lastErr error
}

func (s *spooled) weight() int { return len(s.req.Actions) + len(s.req.Strikes) + 1 }

type spool struct {
	mu      sync.Mutex
	pending []*spooled
	weight  int // actions and strikes held, plus one per commit, for the cap
	max     int // the most weight held; the oldest commits go first beyond it
	dropped []*spooled
}

func (s *spool) add(it *spooled) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pending = append(s.pending, it)
	s.weight += it.weight()
	for s.weight > s.max && len(s.pending) > 1 {
		old := s.pending[0]
		s.pending = s.pending[1:]
		s.weight -= old.weight()
		s.dropped = append(s.dropped, old)
	}
}

// take removes and returns everything spooled, and what was dropped for
// the cap since the last take.
func (s *spool) take() (pending, dropped []*spooled) {
	s.mu.Lock()
	defer s.mu.Unlock()
	pending, dropped = s.pending, s.dropped
	s.pending, s.weight, s.dropped = nil, 0, nil
	return pending, dropped
}

// putBack returns commits that still failed, ahead of newer ones.
func (s *spool) putBack(items []*spooled) {
	if len(items) == 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pending = append(append(make([]*spooled, 0, len(items)+len(s.pending)), items...), s.pending...)
	for _, it := range items {
		s.weight += it.weight()
	}
}

// Spooled reports how many commits wait for the store.
func (e *Engine) Spooled() int {
	e.spool.mu.Lock()
	defer e.spool.mu.Unlock()
	return len(e.spool.pending)
}

// restore puts commits read back from the journal in the spool.
func (e *Engine) restore(kept []KeptCommit) {
	if len(kept) == 0 {
		return
	}
	actions := 0
	for _, k := range kept {
		e.spool.add(&spooled{id: k.ID, req: k.Commit})
		actions += len(k.Commit.Actions)
	}
	e.log.Warn("decisions kept on disk while the store was unavailable wait for it again",
		"commits", len(kept), "actions", actions)
}

// keep spools a commit the store did not take, on disk first when there is
// a journal. It returns where the commit is kept, for the audit record.
func (e *Engine) keep(req store.CommitRequest, cause error) string {
	it := &spooled{req: req, lastErr: cause}
	if !errors.Is(cause, store.ErrUnavailable) {
		it.blamed = 1
	}
	where := "kept in memory"
	if e.cfg.Journal != nil {
		id, err := e.cfg.Journal.Add(req)
		if err != nil {
			e.log.Error("the spool journal did not take a commit; it is kept in memory only",
				"event_id", req.EventID, "err", err)
			where = "kept in memory only, the journal failed: " + err.Error()
		} else {
			it.id, where = id, "kept on disk"
		}
	}
	e.spool.add(it)
	return where + "; retried until the store takes it"
}

// DrainSpool retries spooled commits every interval until ctx is done, then
// tries once more for at most spoolGrace. What is left then stays in the
// journal for the next start; without a journal it is lost, and audited so.
func (e *Engine) DrainSpool(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			gctx, cancel := context.WithTimeout(context.Background(), spoolGrace)
			e.flushSpool(gctx)
			cancel()
			e.leaveSpool()
			return
		case <-t.C:
			e.flushSpool(ctx)
		}
	}
}

// leaveSpool reports, at shutdown, what the store never took.
func (e *Engine) leaveSpool() {
	items, dropped := e.spool.take()
	e.reportDropped(dropped)
	if len(items) == 0 {
		return
	}
	actions, inMemory := 0, 0
	for _, it := range items {
		actions += len(it.req.Actions)
		if it.id == 0 {
			inMemory++
			e.lost(it.req, "the process stopped before the store took the decision: "+errText(it.lastErr))
		}
	}
	if inMemory == 0 {
		e.log.Warn("stopping with decisions the store has not taken: they stay on disk and are committed at the next start",
			"commits", len(items), "actions", actions)
		return
	}
	e.log.Error("stopping with decisions the store never took and no state_dir to keep them: their strikes and actions are lost",
		"commits", inMemory, "kept_on_disk", len(items)-inMemory, "actions", actions)
}

// flushSpool tries each spooled commit once, oldest first. It stops at the
// first that fails while the store takes no writes at all (the rest would
// fail too); one that fails for its own fault is set aside and the others
// are tried.
func (e *Engine) flushSpool(ctx context.Context) {
	items, dropped := e.spool.take()
	e.reportDropped(dropped)
	var done, back []*spooled
	for i, it := range items {
		if ctx.Err() != nil {
			back = append(back, items[i:]...)
			break
		}
		sctx, cancel := context.WithTimeout(ctx, e.cfg.StoreTimeout)
		err := e.cfg.Store.Commit(sctx, it.req)
		cancel()
		if err == nil {
			// A spooled commit taken closes the breaker; a failed one does
			// not open it: callbacks find out themselves whether the store
			// answers, and a commit too big for it must not degrade them.
			e.breaker.note(nil)
			done = append(done, it)
			e.log.Info("a spooled decision reached the store", "event_id", it.req.EventID, "actions", len(it.req.Actions),
				"waited", e.cfg.Now().Sub(it.req.Now).Round(time.Millisecond))
			continue
		}
		outage := errors.Is(err, store.ErrUnavailable) && !e.storeTakesWrites(ctx)
		it.lastErr = err
		if !outage {
			if parts := splitCommit(it.req); parts != nil {
				// It fails for its own sake: perhaps too big for
				// store.timeout. Its halves are tried instead, and so on
				// down to single items, so that only what cannot be
				// stored is ever given up.
				back = append(back, e.split(it, parts)...)
				continue
			}
			it.blamed++
		}
		if it.blamed >= maxBlame {
			e.giveUp(ctx, it)
			done = append(done, it)
			continue
		}
		back = append(back, it)
		if outage {
			back = append(back, items[i+1:]...)
			break
		}
	}
	e.spool.putBack(back)
	e.forget(done)
}

// splitCommit cuts req into two commits of about half its strikes, counter
// touches, actions and decision records each, or returns nil when it holds
// one item or none.
func splitCommit(req store.CommitRequest) []store.CommitRequest {
	n := len(req.Strikes) + len(req.Touch) + len(req.Actions) + len(req.Decisions)
	if n < 2 {
		return nil
	}
	first := store.CommitRequest{Now: req.Now, StrikeDecay: req.StrikeDecay, EventID: req.EventID}
	second := first
	left := n / 2
	take := func(k int) int { // how many of k items go to the first half
		t := min(k, left)
		left -= t
		return t
	}
	k := take(len(req.Strikes))
	first.Strikes, second.Strikes = req.Strikes[:k], req.Strikes[k:]
	k = take(len(req.Touch))
	first.Touch, second.Touch = req.Touch[:k], req.Touch[k:]
	k = take(len(req.Actions))
	first.Actions, second.Actions = req.Actions[:k], req.Actions[k:]
	k = take(len(req.Decisions))
	first.Decisions, second.Decisions = req.Decisions[:k], req.Decisions[k:]
	return []store.CommitRequest{first, second}
}

// split replaces a spooled commit by its parts, in the journal too.
func (e *Engine) split(it *spooled, parts []store.CommitRequest) []*spooled {
	out := make([]*spooled, len(parts))
	for i, p := range parts {
		out[i] = &spooled{req: p, lastErr: it.lastErr}
	}
	if e.cfg.Journal != nil && it.id != 0 {
		ids, err := e.cfg.Journal.Replace(it.id, parts...)
		if err != nil {
			// The whole stays in the journal (committing it again at the
			// next start is harmless); the parts wait in memory.
			e.log.Warn("the spool journal did not take the parts of a commit; the whole stays in it", "event_id", it.req.EventID, "err", err)
		} else {
			for i := range out {
				out[i].id = ids[i]
			}
		}
	}
	e.log.Info("a spooled decision fails for its own sake while the store takes writes; its halves are tried instead",
		"event_id", it.req.EventID, "actions", len(it.req.Actions), "strikes", len(it.req.Strikes), "err", it.lastErr)
	return out
}

// storeTakesWrites reports whether the store takes a write now (its Ping
// writes): then a commit that timed out or was refused fails for its own
// sake (too big for store.timeout), not for an outage.
func (e *Engine) storeTakesWrites(ctx context.Context) bool {
	p, ok := e.cfg.Store.(interface{ Ping(context.Context) error })
	if !ok {
		return false
	}
	pctx, cancel := context.WithTimeout(ctx, e.cfg.StoreTimeout)
	defer cancel()
	return p.Ping(pctx) == nil
}

// giveUp drops a commit that failed maxBlame times for its own fault. Its
// actions are tried once more on their own (without the strikes, counter
// touches and decision records, where the fault may lie); when that fails
// too they are audited as lost.
func (e *Engine) giveUp(ctx context.Context, it *spooled) {
	if e.cfg.Observer != nil {
		e.cfg.Observer.StoreError("spool_gave_up")
	}
	if len(it.req.Actions) > 0 {
		only := store.CommitRequest{Now: it.req.Now, StrikeDecay: it.req.StrikeDecay, EventID: it.req.EventID, Actions: it.req.Actions}
		sctx, cancel := context.WithTimeout(ctx, e.cfg.StoreTimeout)
		err := e.cfg.Store.Commit(sctx, only)
		cancel()
		if err == nil {
			e.log.Error("a spooled decision failed for its own sake too often while the store took other writes: its actions are enqueued on their own; its strikes and decision records are dropped",
				"event_id", it.req.EventID, "actions", len(it.req.Actions), "strikes", len(it.req.Strikes), "attempts", maxBlame, "err", it.lastErr)
			return
		}
		it.lastErr = fmt.Errorf("%w; its actions alone: %w", it.lastErr, err)
	}
	e.log.Error("a spooled decision failed for its own sake too often while the store took other writes: given up, its strikes and actions are lost",
		"event_id", it.req.EventID, "actions", len(it.req.Actions), "strikes", len(it.req.Strikes), "attempts", maxBlame, "err", it.lastErr)
	e.lost(it.req, fmt.Sprintf("the store did not take the decision after %d attempts: %s", maxBlame, errText(it.lastErr)))
}

// reportDropped audits the commits dropped for the spool's cap.
func (e *Engine) reportDropped(dropped []*spooled) {
	if len(dropped) == 0 {
		return
	}
	actions := 0
	for _, it := range dropped {
		actions += len(it.req.Actions)
		e.lost(it.req, fmt.Sprintf("the spool of decisions waiting for the store was full (%d actions): the oldest were dropped", e.spool.max))
	}
	e.log.Error("the commit spool was full: the oldest decisions' actions were dropped", "commits", len(dropped), "actions", actions)
	if e.cfg.Observer != nil {
		e.cfg.Observer.StoreError("spool_drop")
	}
	e.forget(dropped)
}

// forget removes commits from the journal.
func (e *Engine) forget(items []*spooled) {
	if e.cfg.Journal == nil {
		return
	}
	ids := make([]uint64, 0, len(items))
	for _, it := range items {
		if it.id != 0 {
			ids = append(ids, it.id)
		}
	}
	if err := e.cfg.Journal.Remove(ids...); err != nil {
		// They are committed again at the next start: idempotent.
		e.log.Warn("could not remove commits from the spool journal", "commits", len(ids), "err", err)
	}
}

// lost writes a "lost" action record for each action of req.
func (e *Engine) lost(req store.CommitRequest, reason string) {
	for _, a := range req.Actions {
		rec := &audit.Record{
			Time: e.cfg.Now(), Kind: audit.KindAction, EventID: a.EventID, Group: a.Group, User: a.User,
			Actions: []audit.ActionRef{{ID: a.ID, Kind: a.Kind, Group: a.Group, User: a.User, Seconds: a.Seconds, Text: a.Text, Rule: a.Rule}},
			Result:  audit.ResultLost, Error: reason, Actor: e.cfg.Replica,
		}
		if a.Rule != "" {
			rec.Rules = []string{a.Rule}
		}
		line, err := audit.Encode(rec)
		if err != nil {
			e.log.Error("encode audit record", "action", a.ID, "err", err)
			continue
		}
		e.cfg.Audit.WriteLine(line)
	}
}

func errText(err error) string {
	if err == nil {
		return "no error recorded"
	}
	return err.Error()
}
