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
// Two differences, both before Done was first called: when the parent has
// ended and d has passed too, Err gives the parent's error, which
// context.WithDeadline gives only when the parent ended first; and
// context.Cause gives the parent's cause.
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
	// canceledAt is when cancel was called before any Done (under mu).
	canceledAt time.Time
}

type realCtx struct {
	context.Context
	stop context.CancelFunc
}

func (c *ctx) Deadline() (time.Time, bool) { return c.deadline, true }

// Done makes the real context on its first call.
func (c *ctx) Done() <-chan struct{} {
	if r := c.real.Load(); r != nil {
		return r.Done()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	r := c.real.Load()
	if r == nil {
		r = new(realCtx)
		r.Context, r.stop = context.WithDeadline(c.parent, c.deadline)
		if !c.canceledAt.IsZero() {
			r.stop()
		}
		c.real.Store(r)
	}
	return r.Done()
}

func (c *ctx) Err() error {
	if r := c.real.Load(); r != nil {
		return r.Err()
	}
	if err := c.parent.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	canceledAt := c.canceledAt
	c.mu.Unlock()
	if !canceledAt.IsZero() && canceledAt.Before(c.deadline) {
		return context.Canceled
	}
	if !canceledAt.IsZero() || !time.Now().Before(c.deadline) {
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
	c.mu.Lock()
	defer c.mu.Unlock()
	if r := c.real.Load(); r != nil {
		r.stop()
		return
	}
	if c.canceledAt.IsZero() {
		c.canceledAt = time.Now()
	}
}

func (c *ctx) String() string {
	return fmt.Sprintf("%v.WithDeadline(%s)", c.parent, c.deadline)
}
