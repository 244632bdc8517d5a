// Package lazyctx gives a context with a deadline whose timer is made only
// when someone waits for it.
//
// context.WithDeadline makes a timer, a done channel and, under a parent
// that can be cancelled (an HTTP request's), an entry in the parent's list
// of children, for every call, and removes them all again when the call
// ends. A callback of the bot usually ends without anything waiting on its
// context's Done: its store calls bound themselves with the deadline they
// read from Deadline and a timer of their own, and only the rare ones (a
// role fill waiting for the IM server, a store call outside the batch
// sender) wait on Done. WithDeadline here returns a context that answers
// Deadline, Err and Value on its own and makes the real one, with
// context.WithDeadline, the first time Done is called. From then on it is
// that context, so what waits on Done, and every context derived from it,
// behaves exactly as with context.WithDeadline.
package lazyctx

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// WithDeadline returns a copy of parent that is done at d, when parent is
// done, or when cancel is called, whichever comes first, as
// context.WithDeadline does. Until Done is first called no timer exists:
// Err then says what context.WithDeadline's Err would: context.Canceled
// after cancel, context.DeadlineExceeded once d has passed (or when cancel
// came after d), else the parent's error. cancel must be called, as with
// context.WithDeadline.
//
// Err, once not nil, stays what it was, and a Done called after that is
// closed at once (it makes no real context).
//
// Two differences, both before Done was first called: when the parent has
// ended and d has passed too by the time Err (or cancel) first looks, Err
// gives the parent's error, which context.WithDeadline gives only when the
// parent ended first; and context.Cause gives the parent's cause.
func WithDeadline(parent context.Context, d time.Time) (context.Context, context.CancelFunc) {
	c := &ctx{parent: parent, deadline: d}
	if pd, ok := parent.Deadline(); ok && pd.Before(d) {
		c.deadline = pd
	}
	return c, c.cancel
}

type ctx struct {
	parent   context.Context
	deadline time.Time // the earlier of parent's and the one asked for

	// real is the context.WithDeadline made by the first Done; read
	// without the lock, set under it.
	real atomic.Pointer[realCtx]
	mu   sync.Mutex
	// err is what the context ended with before any Done (under mu): set
	// by cancel, or by the first Err that found it ended, and kept, as Err
	// must not change once it is not nil. A Done after it is closedDone,
	// never a real context (whose Err could differ).
	err error
}

type realCtx struct {
	context.Context
	stop context.CancelFunc
}

// closedDone is the Done of a context that ended before its first Done.
var closedDone = func() chan struct{} {
	ch := make(chan struct{})
	close(ch)
	return ch
}()

func (c *ctx) Deadline() (time.Time, bool) { return c.deadline, true }

// Done makes the real context on its first call, unless the context has
// ended already.
func (c *ctx) Done() <-chan struct{} {
	if r := c.real.Load(); r != nil {
		return r.Done()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	r := c.real.Load()
	if r == nil {
		if c.err != nil {
			return closedDone
		}
		r = new(realCtx)
		r.Context, r.stop = context.WithDeadline(c.parent, c.deadline)
		c.real.Store(r)
	}
	return r.Done()
}

func (c *ctx) Err() error {
	if r := c.real.Load(); r != nil {
		return r.Err()
	}
	err := c.ended()
	c.mu.Lock()
	defer c.mu.Unlock()
	if r := c.real.Load(); r != nil {
		return r.Err()
	}
	if c.err == nil {
		c.err = err
	}
	return c.err
}

// ended is why the context has ended without a cancel, nil if it has not:
// the parent's error, else DeadlineExceeded once the deadline has passed.
func (c *ctx) ended() error {
	if err := c.parent.Err(); err != nil {
		return err
	}
	if !time.Now().Before(c.deadline) {
		return context.DeadlineExceeded
	}
	return nil
}

func (c *ctx) Value(key any) any {
	if r := c.real.Load(); r != nil {
		return r.Value(key)
	}
	return c.parent.Value(key)
}

func (c *ctx) cancel() {
	err := c.ended()
	c.mu.Lock()
	defer c.mu.Unlock()
	if r := c.real.Load(); r != nil {
		r.stop()
		return
	}
	if c.err == nil {
		c.err = err
		if c.err == nil {
			c.err = context.Canceled
		}
	}
}

func (c *ctx) String() string {
	return fmt.Sprintf("%v.WithDeadline(%s)", c.parent, c.deadline)
}
