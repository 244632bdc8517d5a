package actions

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/timguard/timguard/store"
)

// Outcomes the store cannot record.
//
// When the store is unavailable as an action's outcome is to be recorded
// (its REST call done, or the action dead-lettered, skipped or put back
// for a retry), an executor
// with a Journal does not wait for the store: it writes the outcome to the
// journal (on disk, fsynced; outcomes recorded together share one fsync),
// audits the action once as usual, and moves on. Before it claims again,
// and when it starts, it records the outcomes kept (the follow-ups of a
// successful call, then Complete or DeadLetter) and removes them from the
// journal. It claims nothing while an outcome waits, so that it never
// claims, and carries out again, an action whose outcome it has not
// recorded. A process killed meanwhile leaves the outcomes in the journal;
// the next one on the same state_dir records them before its first claim.
//
// What this cannot cover: an action whose lease ran out while its outcome
// waited is due again for every worker, and another replica (which does not
// read this journal) may claim it first and carry it out again; recording
// the outcome then finds the lease lost, and the log says so.

// OutcomeJournal keeps outcomes on local disk; *spool.Journal (store/spool)
// implements it. AddOutcome returns once data is durable.
type OutcomeJournal interface {
	AddOutcome(data []byte) (uint64, error)
	RemoveOutcomes(ids ...uint64) error
}

// KeptOutcome is an outcome read back from the journal at start, in the
// executor's encoding.
type KeptOutcome struct {
	ID   uint64
	Data []byte
}

// keptVersion is the version of keptOutcome's encoding.
const keptVersion = 1

// keptOutcome is an outcome waiting for the store, as the journal keeps it.
type keptOutcome struct {
	V int `json:"v"`
	// Claim is the claim the outcome settles (its token proves it).
	Claim store.Claimed `json:"claim"`
	// Dead, when set, is the dead-letter reason; Retry, when set, puts the
	// action back for a later attempt; with neither the action is
	// completed.
	Dead  string     `json:"dead,omitempty"`
	Retry *keptRetry `json:"retry,omitempty"`
	// FollowUp, when set, is what the successful call leaves behind and
	// the store has not recorded yet (see followUps).
	FollowUp *keptFollowUp `json:"follow_up,omitempty"`
	// At is when the outcome was decided; follow-ups count from it.
	At time.Time `json:"at"`
}

// keptRetry is a retry: when, and the error it records.
type keptRetry struct {
	At  time.Time `json:"at"`
	Err string    `json:"err,omitempty"`
}

// keptFollowUp is what followUps needs besides the action.
type keptFollowUp struct {
	Op       string `json:"op"`
	Seconds  int64  `json:"seconds,omitempty"`
	Announce string `json:"announce,omitempty"`
}

// followUpOps names the operations that leave follow-ups, for the journal.
var followUpOps = map[op]string{opMute: "mute", opUnmute: "unmute", opMuteAll: "mute_all", opUnmuteAll: "unmute_all", opBan: "ban"}

func followUpOp(name string) (op, bool) {
	for o, n := range followUpOps {
		if n == name {
			return o, true
		}
	}
	return opNone, false
}

// decodeKept reads an outcome from the journal.
func decodeKept(data []byte) (keptOutcome, error) {
	var k keptOutcome
	if err := json.Unmarshal(data, &k); err != nil {
		return k, fmt.Errorf("decode a kept outcome: %w", err)
	}
	if k.V != keptVersion {
		return k, fmt.Errorf("a kept outcome has version %d, not %d", k.V, keptVersion)
	}
	if k.Claim.ID == "" {
		return k, errors.New("a kept outcome names no action")
	}
	if k.Dead != "" && k.Retry != nil {
		return k, fmt.Errorf("a kept outcome of %s is both a dead letter and a retry", k.Claim.ID)
	}
	if k.FollowUp != nil {
		if _, ok := followUpOp(k.FollowUp.Op); !ok {
			return k, fmt.Errorf("a kept outcome of %s has an unknown follow-up %q", k.Claim.ID, k.FollowUp.Op)
		}
	}
	return k, nil
}

// heldOutcome is an outcome waiting for the store.
type heldOutcome struct {
	id     uint64 // its journal entry
	o      keptOutcome
	blamed int // failures for another reason than the store being unavailable
}

// keptOutcomes holds the outcomes waiting for the store, oldest first.
type keptOutcomes struct {
	mu    sync.Mutex
	items []*heldOutcome
	// replay is held while the outcomes are being recorded.
	replay sync.Mutex
}

func (k *keptOutcomes) add(h *heldOutcome) (first bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.items = append(k.items, h)
	return len(k.items) == 1
}

func (k *keptOutcomes) take() []*heldOutcome {
	k.mu.Lock()
	defer k.mu.Unlock()
	items := k.items
	k.items = nil
	return items
}

func (k *keptOutcomes) putBack(items []*heldOutcome) {
	if len(items) == 0 {
		return
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	k.items = append(append(make([]*heldOutcome, 0, len(items)+len(k.items)), items...), k.items...)
}

func (k *keptOutcomes) len() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return len(k.items)
}

// KeptOutcomes reports how many outcomes wait for the store.
func (e *Executor) KeptOutcomes() int { return e.kept.len() }

// maxKeptBlame is how many times a kept outcome may fail for another
// reason than the store being unavailable before it is given up.
const maxKeptBlame = 5

// keptNote is the audit note of an outcome kept in the journal.
const keptNote = "the store was unavailable: the outcome is kept in state_dir and recorded before the next claim"

// restoreKept reads the outcomes kept by an earlier process. Those that do
// not decode are logged and removed: they cannot be recorded.
func (e *Executor) restoreKept(kept []KeptOutcome) {
	var bad []uint64
	for _, k := range kept {
		o, err := decodeKept(k.Data)
		if err != nil {
			e.log.Error("an action outcome kept in state_dir cannot be read back; it is dropped, and the action may run again after its lease",
				"entry", k.ID, "err", err)
			bad = append(bad, k.ID)
			continue
		}
		e.kept.add(&heldOutcome{id: k.ID, o: o})
	}
	if len(bad) > 0 && e.cfg.Journal != nil {
		if err := e.cfg.Journal.RemoveOutcomes(bad...); err != nil {
			e.log.Warn("could not remove unreadable outcomes from state_dir", "entries", len(bad), "err", err)
		}
	}
	if n := e.kept.len(); n > 0 {
		e.log.Warn("action outcomes kept on disk while the store was unavailable are recorded before the first claim", "outcomes", n)
	}
}

// followUpOf describes what j's successful call leaves behind, for the
// journal; nil when nothing.
func followUpOf(j *job) *keptFollowUp {
	name, ok := followUpOps[j.op]
	if !ok {
		return nil
	}
	return &keptFollowUp{Op: name, Seconds: j.seconds, Announce: j.announce}
}

// keep writes j's outcome o (its Dead, Retry, FollowUp and At) to the
// journal. It reports whether the outcome is kept; without a journal, or
// when the journal fails, it is not.
func (e *Executor) keep(j *job, o keptOutcome) bool {
	if e.cfg.Journal == nil {
		return false
	}
	o.V, o.Claim = keptVersion, j.c
	data, err := json.Marshal(o)
	if err != nil {
		e.log.Error("encode an action outcome for state_dir", "action", j.c.ID, "err", err)
		return false
	}
	id, err := e.cfg.Journal.AddOutcome(data)
	if err != nil {
		e.log.Error("state_dir did not take an action outcome the store could not record; the store is retried until the lease ends",
			"action", j.c.ID, "err", err)
		return false
	}
	if e.kept.add(&heldOutcome{id: id, o: o}) {
		e.log.Warn("the store cannot record action outcomes: they are kept in state_dir, and no action is claimed until they are recorded",
			"action", j.c.ID, "kind", j.c.Kind, "group", j.c.Group)
	}
	return true
}

// errOutcomesWait is returned by replayKept while outcomes wait.
var errOutcomesWait = errors.New("action outcomes kept in state_dir wait for the store")

// replayKept records the kept outcomes in the store, oldest first. It stops
// at the first the store cannot take because it is unavailable (the rest
// would fail too), and returns an error while any outcome waits: the caller
// must not claim then.
func (e *Executor) replayKept(ctx context.Context) error {
	e.kept.replay.Lock()
	defer e.kept.replay.Unlock()
	items := e.kept.take()
	if len(items) == 0 {
		return nil
	}
	var done, back []*heldOutcome
	var last error
	for i, h := range items {
		if ctx.Err() != nil {
			back = append(back, items[i:]...)
			last = ctx.Err()
			break
		}
		err := e.recordKept(ctx, h)
		if err == nil {
			done = append(done, h)
			continue
		}
		last = err
		if errors.Is(err, store.ErrUnavailable) {
			back = append(back, items[i:]...)
			break
		}
		if h.blamed++; h.blamed >= maxKeptBlame {
			e.log.Error("an action outcome kept in state_dir failed too often while the store took other writes: given up; the action may run again after its lease",
				"action", h.o.Claim.ID, "kind", h.o.Claim.Kind, "group", h.o.Claim.Group, "attempts", h.blamed, "err", err)
			done = append(done, h)
			continue
		}
		back = append(back, h)
	}
	e.kept.putBack(back)
	if len(done) > 0 {
		ids := make([]uint64, len(done))
		for i, h := range done {
			ids[i] = h.id
		}
		if err := e.cfg.Journal.RemoveOutcomes(ids...); err != nil {
			// Recorded again at the next start: the lease is lost by then,
			// which settles them.
			e.log.Warn("could not remove recorded outcomes from state_dir", "outcomes", len(ids), "err", err)
		}
		e.log.Info("action outcomes kept in state_dir are recorded in the store", "outcomes", len(done), "waiting", len(back))
	}
	if len(back) > 0 {
		return fmt.Errorf("%w (%d): %w", errOutcomesWait, len(back), last)
	}
	return nil
}

// recordKept records one kept outcome: the follow-ups of its call, then its
// completion or dead letter. A claim the store says another worker holds or
// finished, or an action it forgot, needs nothing more.
func (e *Executor) recordKept(ctx context.Context, h *heldOutcome) error {
	c := h.o.Claim
	if f := h.o.FollowUp; f != nil {
		o, _ := followUpOp(f.Op)
		j := &job{c: c, op: o, seconds: f.Seconds, announce: f.Announce}
		if err := e.followUps(ctx, j, h.o.At); err != nil {
			return err
		}
		h.o.FollowUp = nil // not again, should the completion fail
	}
	var err error
	switch {
	case h.o.Dead != "":
		err = e.cfg.Store.DeadLetter(ctx, c, h.o.Dead)
	case h.o.Retry != nil:
		err = e.cfg.Store.Retry(ctx, c, h.o.Retry.At, h.o.Retry.Err)
		if errors.Is(err, store.ErrActionUnknown) {
			// The store forgot it meanwhile: it comes back from this copy.
			a := c.Action
			a.NotBefore = h.o.Retry.At
			if err = e.cfg.Store.Enqueue(ctx, a); err == nil {
				e.log.Warn("the store had forgotten an action waiting for a retry (Redis lost its data); enqueued again from the copy kept in state_dir",
					"action", c.ID, "kind", c.Kind, "group", c.Group)
				return nil
			}
		}
	default:
		err = e.cfg.Store.Complete(ctx, c)
	}
	switch {
	case err == nil:
		e.log.Debug("an action outcome kept in state_dir is recorded", "action", c.ID, "kind", c.Kind, "group", c.Group)
		return nil
	case errors.Is(err, store.ErrLeaseLost):
		e.log.Warn("an action outcome kept in state_dir found its claim no longer held: another worker took the action over after its lease "+
			"(and may have carried it out again), or the outcome had been recorded before",
			"action", c.ID, "kind", c.Kind, "group", c.Group, "waited", e.cfg.Now().Sub(h.o.At).Round(time.Millisecond))
		return nil
	case errors.Is(err, store.ErrActionUnknown):
		e.log.Warn("the store had forgotten an action whose outcome was kept in state_dir (Redis lost its data); nothing to record",
			"action", c.ID, "kind", c.Kind, "group", c.Group)
		return nil
	}
	return fmt.Errorf("record the kept outcome of %s: %w", c.ID, err)
}

// replayAtStop tries once more, briefly, to record the kept outcomes as the
// executor stops; what is left stays in the journal for the next start.
func (e *Executor) replayAtStop() {
	if e.kept.len() == 0 {
		return
	}
	ctx, cancel := bounded(context.Background())
	defer cancel()
	if err := e.replayKept(ctx); err != nil {
		e.log.Warn("stopping with action outcomes the store has not recorded: they stay in state_dir and are recorded at the next start",
			"outcomes", e.kept.len(), "err", err)
	}
}
