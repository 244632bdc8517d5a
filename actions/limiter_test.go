package actions

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/timguard/timguard/store"
	"github.com/timguard/timguard/store/memory"
	"github.com/timguard/timguard/tim"
)

var _ tim.Limiter = (*SharedLimiter)(nil)

// maxInAnySecond is the most times within one sliding second, counted the
// way timtest counts: times less than a second apart share a window.
func maxInAnySecond(ts []time.Time) int {
	ts = slices.Clone(ts)
	slices.SortFunc(ts, func(a, b time.Time) int { return a.Compare(b) })
	best := 0
	for i, j := 0, 0; j < len(ts); j++ {
		for ts[j].Sub(ts[i]) >= time.Second {
			i++
		}
		best = max(best, j-i+1)
	}
	return best
}

func TestSharedLimiterKeepsEverySecondWithinTheLimit(t *testing.T) {
	tests := []struct {
		name      string
		perSecond int
		limiters  int // limiters sharing the store, as replicas do
		waiters   int // goroutines per limiter
		calls     int // calls per goroutine
	}{
		{"one caller at ten per second", 10, 1, 1, 45},
		{"many callers at ten per second", 10, 1, 8, 6},
		{"three replicas at twenty per second", 20, 3, 4, 5},
		{"one call per second", 1, 1, 2, 4},
		{"an odd limit", 7, 2, 3, 6},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				s := memory.New(memory.Options{})
				var mu sync.Mutex
				var at []time.Time
				var wg sync.WaitGroup
				start := time.Now()
				for range tt.limiters {
					l := &SharedLimiter{Store: s, PerSecond: tt.perSecond}
					for range tt.waiters {
						wg.Go(func() {
							for range tt.calls {
								if err := l.Wait(t.Context()); err != nil {
									t.Errorf("Wait: %v", err)
									return
								}
								mu.Lock()
								at = append(at, time.Now())
								mu.Unlock()
							}
						})
					}
				}
				wg.Wait()
				if got := maxInAnySecond(at); got > tt.perSecond {
					t.Errorf("%d calls within one second, limit %d", got, tt.perSecond)
				}
				// The budget is used, not wasted: the calls come at about the
				// rate allowed.
				total := tt.limiters * tt.waiters * tt.calls
				want := time.Duration(total-1) * time.Second / time.Duration(tt.perSecond)
				if took := time.Since(start); took < want || took > want*11/10+time.Second {
					t.Errorf("%d calls took %v, want about %v", total, took, want)
				}
			})
		})
	}
}

func TestSharedLimiterEndsWithItsContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := memory.New(memory.Options{})
		l := &SharedLimiter{Store: s, PerSecond: 1}
		if err := l.Wait(t.Context()); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
		defer cancel()
		if err := l.Wait(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Wait = %v, want the context's deadline", err)
		}
	})
}

func TestSharedLimiterFailsWhenTheStoreCannotBeAsked(t *testing.T) {
	s := memory.New(memory.Options{})
	_ = s.Close()
	err := (&SharedLimiter{Store: s, PerSecond: 10}).Wait(context.Background())
	if !errors.Is(err, store.ErrUnavailable) || !strings.Contains(err.Error(), "shared REST budget") {
		t.Errorf("Wait = %v, want the store's unavailability", err)
	}
	// The REST client reports a limiter refusal as rate limited: retry later.
	terr := &tim.TransportError{Command: "x", Op: tim.OpWait, Err: err}
	if c := tim.Classify(terr); c != tim.RateLimited {
		t.Errorf("Classify = %v, want rate_limited", c)
	}
}
