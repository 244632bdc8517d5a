package actions

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/timguard/timguard/store"
)

// SharedLimiter paces REST calls with the budget every replica shares in
// the store. It implements tim.Limiter, so that every call the REST client
// makes counts: the executor's, the role fills', and any later caller's.
//
// PerSecond is tencent.rate_limit: the most calls the IM server may see in
// any one second, from all replicas together. The store paces the calls
// (store.Limiter: no one-second window holds more than perSecond of them),
// so a burst of waiters is spread out rather than let through at once.
type SharedLimiter struct {
	Store     store.Limiter
	PerSecond int
}

// Wait blocks until the shared budget allows one call or ctx ends. A store
// that cannot be asked fails the call: without the shared budget the limit
// could not be kept across replicas.
func (l SharedLimiter) Wait(ctx context.Context) error {
	if l.Store == nil || l.PerSecond <= 0 {
		return errors.New("shared REST budget: no store or no rate set")
	}
	for {
		ok, after, err := l.Store.Allow(ctx, 1, l.PerSecond)
		if err != nil {
			return fmt.Errorf("shared REST budget: %w", err)
		}
		if ok {
			return nil
		}
		t := time.NewTimer(after)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		}
	}
}
