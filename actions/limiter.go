package actions

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/timguard/timguard/store"
)

// SharedLimiter paces REST calls with the budget every replica shares in
// the store. It implements tim.Limiter, so that every call the REST client
// makes counts: the executor's, the role fills', and any later caller's.
// Use one per process (&SharedLimiter{Store: s, PerSecond: n}); it must not
// be copied after first use.
//
// PerSecond is tencent.rate_limit: the most calls the IM server may see in
// any one second, from all replicas together. The store paces the calls
// (store.Limiter: no one-second window holds more than perSecond of them),
// so a burst of waiters is spread out rather than let through at once.
//
// The process's waiters do not each ask the store. They queue here, first
// come first served, and one goroutine (the asker, running only while
// someone waits) asks the store on behalf of them all: when the store grants
// a call the asker hands it to the first waiter in the queue; when the store
// refuses, the asker sleeps the wait the store named and asks again. After
// a grant it first sleeps the budget's pace, the least time before the store
// can grant another call. So the store is asked about once per call granted,
// however many workers wait, where each waiter polling it would ask about
// once per waiter.
//
// A waiter whose context ends leaves the queue and returns the context's
// error. A call the store granted as its waiter was leaving goes to the next
// waiter in the queue; when no one is left it lapses unused. A granted call
// is never kept for a later waiter: made later than the store granted it, it
// could put more than PerSecond calls into one second. A lapse costs at most
// that one call of the budget; it never lets a call more through.
type SharedLimiter struct {
	Store     store.Limiter
	PerSecond int

	mu     sync.Mutex
	queue  []*budgetWaiter // in order of arrival
	asking bool            // the asker is running
	// wake tells a sleeping asker that the queue emptied (a waiter left,
	// or took the call one leaving passed on), so that it stops.
	wake chan struct{}
	// lapsed counts granted calls no waiter was left to take.
	lapsed int
	// granted is when the store last granted this replica a call (when
	// its answer came).
	granted time.Time
}

// budgetWaiter is one Wait in the queue.
type budgetWaiter struct {
	ready  chan struct{} // closed when served
	served bool          // under SharedLimiter.mu
	err    error         // the store's error, when served with one
}

// Wait blocks until the shared budget allows one call or ctx ends. A store
// that cannot be asked fails the call: without the shared budget the limit
// could not be kept across replicas.
func (l *SharedLimiter) Wait(ctx context.Context) error {
	if l.Store == nil || l.PerSecond <= 0 {
		return errors.New("shared REST budget: no store or no rate set")
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	w := &budgetWaiter{ready: make(chan struct{})}
	l.mu.Lock()
	l.queue = append(l.queue, w)
	if l.wake == nil {
		l.wake = make(chan struct{}, 1)
	}
	if !l.asking {
		l.asking = true
		go l.ask() //nolint:gosec // G118: the asker serves every waiter, not this caller; each waiter keeps its own ctx
	}
	l.mu.Unlock()

	select {
	case <-w.ready:
		return w.err
	case <-ctx.Done():
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case !w.served:
		if i := slices.Index(l.queue, w); i >= 0 {
			l.queue = slices.Delete(l.queue, i, i+1)
		}
	case w.err == nil:
		// Granted as the context ended: the next waiter takes it.
		l.serveLocked(nil)
	}
	if len(l.queue) == 0 {
		select {
		case l.wake <- struct{}{}:
		default:
		}
	}
	return ctx.Err()
}

// ask takes calls from the store for the waiters until none is left.
func (l *SharedLimiter) ask() {
	for {
		l.mu.Lock()
		if len(l.queue) == 0 {
			l.asking = false
			l.mu.Unlock()
			return
		}
		// The budget is paced (store.Limiter): no call is granted, to
		// this replica or another, sooner than paceInterval after the
		// last one this replica was granted. Asking before then would
		// only be refused, at the cost of a script run in the store; so
		// the asker waits, also when it starts anew after the queue ran
		// empty.
		wait := paceInterval(l.PerSecond) - time.Since(l.granted)
		l.mu.Unlock()
		if wait > 0 {
			if !l.sleep(wait) {
				return
			}
			continue
		}
		// No waiter's context: one leaving must not fail the others'
		// call. The store bounds the call with its own timeout.
		ok, after, err := l.Store.Allow(context.Background(), 1, l.PerSecond)
		switch {
		case err != nil:
			// Every waiter would have met the same error asking itself.
			err = fmt.Errorf("shared REST budget: %w", err)
			l.mu.Lock()
			for len(l.queue) > 0 {
				l.serveLocked(err)
			}
			l.mu.Unlock()
		case ok:
			l.mu.Lock()
			l.granted = time.Now()
			l.serveLocked(nil)
			l.mu.Unlock()
		default:
			if !l.sleep(after) {
				return
			}
		}
	}
}

// paceInterval is the time between two calls the shared budget grants at
// its fastest: both stores pace perSecond calls over a second stretched by
// a fiftieth (storeutil.PaceMargin, out of this package's reach), so that
// jitter never puts more than perSecond calls into one second at the IM
// server. Asking sooner after a grant is refused with a wait of at least a
// millisecond, which would slow the calls down; a store pacing faster would
// only see its budget used a fiftieth below its rate.
func paceInterval(perSecond int) time.Duration {
	return (time.Second + time.Second/50) / time.Duration(perSecond)
}

// serveLocked hands a granted call (err nil) or an error to the first
// waiter. A call with no one to take it lapses.
func (l *SharedLimiter) serveLocked(err error) {
	if len(l.queue) == 0 {
		if err == nil {
			l.lapsed++
		}
		return
	}
	w := l.queue[0]
	l.queue[0] = nil
	l.queue = l.queue[1:]
	w.served, w.err = true, err
	close(w.ready)
}

// sleep waits d, the wait the store named. It returns false, having stopped
// the asker, when every waiter left meanwhile.
func (l *SharedLimiter) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			return true
		case <-l.wake:
			l.mu.Lock()
			if len(l.queue) == 0 {
				l.asking = false
				l.mu.Unlock()
				return false
			}
			l.mu.Unlock()
		}
	}
}
