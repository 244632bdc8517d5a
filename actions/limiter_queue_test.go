package actions

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/timguard/timguard/internal/redistest"
	"github.com/timguard/timguard/store"
	"github.com/timguard/timguard/store/memory"
	"github.com/timguard/timguard/store/redis"
)

// countingBudget counts the store's Allow calls and the calls it granted.
type countingBudget struct {
	store.Limiter
	asked, granted atomic.Int64
}

func (c *countingBudget) Allow(ctx context.Context, n, perSecond int) (bool, time.Duration, error) {
	ok, after, err := c.Limiter.Allow(ctx, n, perSecond)
	c.asked.Add(1)
	if ok {
		c.granted.Add(1)
	}
	return ok, after, err
}

// pollingLimiter is how every waiter asked the store before SharedLimiter
// queued them: each waiter polls the store itself. The tests and the
// benchmark compare the two.
type pollingLimiter struct {
	Store     store.Limiter
	PerSecond int
}

func (l pollingLimiter) Wait(ctx context.Context) error {
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

type waiter interface{ Wait(context.Context) error }

// takeAll has workers goroutines take calls from l until total were
// granted, and returns when each was granted.
func takeAll(t testing.TB, l waiter, workers, total int) []time.Time {
	var mu sync.Mutex
	var at []time.Time
	var left atomic.Int64
	left.Store(int64(total))
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for left.Add(-1) >= 0 {
				if err := l.Wait(context.Background()); err != nil {
					t.Errorf("Wait: %v", err)
					return
				}
				mu.Lock()
				at = append(at, time.Now())
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return at
}

func TestSharedLimiterAsksTheStoreForAllItsWaitersAtOnce(t *testing.T) {
	const workers, total, perSecond = 16, 60, 20
	synctest.Test(t, func(t *testing.T) {
		polled := &countingBudget{Limiter: memory.New(memory.Options{})}
		takeAll(t, pollingLimiter{Store: polled, PerSecond: perSecond}, workers, total)
		queued := &countingBudget{Limiter: memory.New(memory.Options{})}
		takeAll(t, &SharedLimiter{Store: queued, PerSecond: perSecond}, workers, total)

		for _, c := range []*countingBudget{polled, queued} {
			if got := c.granted.Load(); got != total {
				t.Fatalf("the store granted %d calls for %d waits", got, total)
			}
		}
		// One ask per call: after a grant the asker waits the budget's
		// pace, so that its next ask is granted, not refused. An asker
		// started when the queue had run empty may ask once too early.
		if got := queued.asked.Load(); got > total+1 {
			t.Errorf("%d waiters queued asked the store %d times for %d calls, want at most %d", workers, got, total, total+1)
		}
		t.Logf("store asked per call granted, %d waiters: %.1f polling, %.1f queued",
			workers, float64(polled.asked.Load())/total, float64(queued.asked.Load())/total)
	})
}

// gatedBudget answers each Allow with what the test sends.
type gatedBudget struct {
	answers chan budgetAnswer
	asked   atomic.Int64
}

type budgetAnswer struct {
	ok    bool
	after time.Duration
	err   error
}

func (g *gatedBudget) Allow(ctx context.Context, n, perSecond int) (bool, time.Duration, error) {
	g.asked.Add(1)
	a := <-g.answers
	return a.ok, a.after, a.err
}

// result is what a Wait returned, once it has.
type result struct {
	mu   sync.Mutex
	done bool
	err  error
}

func (r *result) get() (bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.done, r.err
}

func goWait(ctx context.Context, l *SharedLimiter) *result {
	r := &result{}
	go func() {
		err := l.Wait(ctx)
		r.mu.Lock()
		r.done, r.err = true, err
		r.mu.Unlock()
	}()
	return r
}

func (l *SharedLimiter) state() (queued, lapsed int, asking bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.queue), l.lapsed, l.asking
}

func TestSharedLimiterGivesTheCallOfAWaiterThatLeftToTheNext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := &countingBudget{Limiter: memory.New(memory.Options{})}
		l := &SharedLimiter{Store: s, PerSecond: 1}
		if err := l.Wait(t.Context()); err != nil {
			t.Fatal(err)
		}
		short, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
		defer cancel()
		b := goWait(short, l)
		synctest.Wait()
		c := goWait(t.Context(), l)
		time.Sleep(2 * time.Second)
		synctest.Wait()
		if done, err := b.get(); !done || !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("the waiter that left returned %v (done %v), want its deadline", err, done)
		}
		if done, err := c.get(); !done || err != nil {
			t.Errorf("the next waiter returned %v (done %v), want the call", err, done)
		}
		if queued, lapsed, asking := l.state(); queued != 0 || lapsed != 0 || asking {
			t.Errorf("queue %d, lapsed %d, asking %v; want all zero", queued, lapsed, asking)
		}
		if got := s.granted.Load(); got != 2 {
			t.Errorf("the store granted %d calls, want 2 (the first waiter's and the last's)", got)
		}
	})
}

func TestSharedLimiterLetsACallLapseWhenItsOnlyWaiterLeft(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := &gatedBudget{answers: make(chan budgetAnswer)}
		l := &SharedLimiter{Store: g, PerSecond: 10}
		ctx, cancel := context.WithCancel(t.Context())
		w := goWait(ctx, l)
		synctest.Wait() // the asker is asking the store
		cancel()
		synctest.Wait()
		g.answers <- budgetAnswer{ok: true}
		synctest.Wait()
		if done, err := w.get(); !done || !errors.Is(err, context.Canceled) {
			t.Errorf("the waiter returned %v (done %v), want its cancellation", err, done)
		}
		if queued, lapsed, asking := l.state(); queued != 0 || lapsed != 1 || asking {
			t.Errorf("queue %d, lapsed %d, asking %v; want the call lapsed and the asker gone", queued, lapsed, asking)
		}
		// A later waiter gets a call of its own, asked for anew.
		next := goWait(t.Context(), l)
		synctest.Wait()
		g.answers <- budgetAnswer{ok: true}
		synctest.Wait()
		if done, err := next.get(); !done || err != nil {
			t.Errorf("the next waiter returned %v (done %v), want the call", err, done)
		}
		if got := g.asked.Load(); got != 2 {
			t.Errorf("the store was asked %d times, want 2", got)
		}
	})
}

// TestSharedLimiterAccountsForEveryCallWhenAWaiterLeavesAsItIsServed races
// a grant with its waiter's leaving: whichever comes first, every call the
// store granted is either made by one waiter or lapsed (none is made
// twice), the waiter that stays gets a call, and the asker stops.
func TestSharedLimiterAccountsForEveryCallWhenAWaiterLeavesAsItIsServed(t *testing.T) {
	for i := range 20 {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				g := &gatedBudget{answers: make(chan budgetAnswer)}
				l := &SharedLimiter{Store: g, PerSecond: 10}
				ctx, cancel := context.WithCancel(t.Context())
				a := goWait(ctx, l)
				synctest.Wait()
				b := goWait(t.Context(), l)
				synctest.Wait()
				// The grant and the first waiter's leaving race.
				cancel()
				g.answers <- budgetAnswer{ok: true}
				granted := 1
				synctest.Wait()
				// Grant every call the asker still asks for until it stops.
				// After a grant it waits the budget's pace before asking
				// for the next waiter.
				for {
					time.Sleep(paceInterval(10))
					synctest.Wait()
					if int(g.asked.Load()) <= granted {
						break
					}
					g.answers <- budgetAnswer{ok: true}
					granted++
					synctest.Wait()
				}
				made := 0
				if done, err := a.get(); !done || (err != nil && !errors.Is(err, context.Canceled)) {
					t.Fatalf("the first waiter returned %v (done %v), want a call or its cancellation", err, done)
				} else if err == nil {
					made++
				}
				if done, err := b.get(); !done || err != nil {
					t.Fatalf("the second waiter returned %v (done %v), want a call", err, done)
				}
				made++
				queued, lapsed, asking := l.state()
				if queued != 0 || asking {
					t.Errorf("queue %d, asking %v; want the asker gone", queued, asking)
				}
				if made+lapsed != granted || lapsed > 1 {
					t.Errorf("%d calls granted, %d made, %d lapsed", granted, made, lapsed)
				}
			})
		})
	}
}

func TestSharedLimiterFailsEveryWaiterWhenTheStoreFails(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := &gatedBudget{answers: make(chan budgetAnswer)}
		l := &SharedLimiter{Store: g, PerSecond: 10}
		var ws []*result
		for range 3 {
			ws = append(ws, goWait(t.Context(), l))
			synctest.Wait()
		}
		g.answers <- budgetAnswer{err: store.ErrUnavailable}
		synctest.Wait()
		for i, w := range ws {
			if done, err := w.get(); !done || !errors.Is(err, store.ErrUnavailable) || !strings.Contains(err.Error(), "shared REST budget") {
				t.Errorf("waiter %d returned %v (done %v), want the store's error", i, err, done)
			}
		}
		if got := g.asked.Load(); got != 1 {
			t.Errorf("the store was asked %d times, want once for all the waiters", got)
		}
	})
}

// twoProcesses opens two Redis stores on one server and key prefix, as two
// replicas do, each counted.
func twoProcesses(t testing.TB, url string) [2]*countingBudget {
	prefix := redistest.Prefix(t)
	redistest.CleanupPrefix(t, url, prefix)
	var out [2]*countingBudget
	for i := range out {
		s, err := redis.New(context.Background(), redis.Options{URL: url, KeyPrefix: prefix, Timeout: 2 * time.Second})
		if err != nil {
			t.Fatalf("open redis store: %v", err)
		}
		t.Cleanup(func() { _ = s.Close() })
		out[i] = &countingBudget{Limiter: s}
	}
	return out
}

func TestSharedLimitersOfTwoProcessesKeepEverySecondOnOneRedisWithinTheBudget(t *testing.T) {
	const perSecond, workers, perProcess = 20, 16, 30
	stores := twoProcesses(t, redistest.URL(t))
	var mu sync.Mutex
	var all []time.Time
	var wg sync.WaitGroup
	for _, s := range stores {
		l := &SharedLimiter{Store: s, PerSecond: perSecond}
		wg.Go(func() {
			at := takeAll(t, l, workers, perProcess)
			mu.Lock()
			all = append(all, at...)
			mu.Unlock()
		})
	}
	wg.Wait()
	if len(all) != 2*perProcess {
		t.Fatalf("%d calls made, want %d", len(all), 2*perProcess)
	}
	if got := maxInAnySecond(all); got > perSecond {
		t.Errorf("%d calls within one second, budget %d", got, perSecond)
	}
	var asked int64
	for _, s := range stores {
		asked += s.asked.Load()
	}
	t.Logf("two processes of %d waiters: Redis asked %.2f times per call granted", workers, float64(asked)/float64(len(all)))
}

// BenchmarkSharedLimiter has 16 workers per process take calls from a
// budget of 200 calls a second (tencent.rate_limit's default) on a private
// Redis, as fast as the budget allows, waiting as the executor's workers
// do: polling (each waiter asks Redis itself, as before SharedLimiter
// queued them) against queued (SharedLimiter). ns/op is the time per call
// granted (the budget allows one per 5.1 ms); asks/call is the limiter
// calls Redis answered per call granted, and redis-µs/call the
// microseconds Redis spent running them (INFO commandstats). Run it with a
// fixed count: -benchtime=600x.
func BenchmarkSharedLimiter(b *testing.B) {
	const perSecond, workers = 200, 16
	for _, processes := range []int{1, 2} {
		for _, kind := range []string{"polling", "queued"} {
			b.Run(fmt.Sprintf("processes=%d/%s", processes, kind), func(b *testing.B) {
				srv := redistest.StartServer(b)
				stores := twoProcesses(b, srv.URL())
				rdb := goredis.NewClient(&goredis.Options{Addr: strings.TrimPrefix(strings.TrimSuffix(srv.URL(), "/0"), "redis://")})
				defer rdb.Close()
				var ls []waiter
				for _, s := range stores[:processes] {
					if kind == "polling" {
						ls = append(ls, pollingLimiter{Store: s, PerSecond: perSecond})
					} else {
						ls = append(ls, &SharedLimiter{Store: s, PerSecond: perSecond})
					}
				}
				if err := rdb.ConfigResetStat(context.Background()).Err(); err != nil {
					b.Fatal(err)
				}
				b.ResetTimer()
				var wg sync.WaitGroup
				for i, l := range ls {
					n := b.N / processes
					if i == 0 {
						n += b.N % processes
					}
					wg.Go(func() { takeAll(b, l, workers, n) })
				}
				wg.Wait()
				b.StopTimer()
				var asked int64
				for _, s := range stores {
					asked += s.asked.Load()
				}
				b.ReportMetric(float64(asked)/float64(b.N), "asks/call")
				b.ReportMetric(scriptMicros(b, rdb)/float64(b.N), "redis-µs/call")
			})
		}
	}
}

// scriptMicros is the time Redis spent in EVALSHA and EVAL (the limiter's
// script) since the stats were reset.
func scriptMicros(b *testing.B, rdb *goredis.Client) float64 {
	info, err := rdb.Info(context.Background(), "commandstats").Result()
	if err != nil {
		b.Fatal(err)
	}
	var total float64
	for _, line := range strings.Split(info, "\n") {
		if !strings.HasPrefix(line, "cmdstat_evalsha:") && !strings.HasPrefix(line, "cmdstat_eval:") {
			continue
		}
		for _, field := range strings.Split(strings.TrimSpace(line[strings.IndexByte(line, ':')+1:]), ",") {
			if v, ok := strings.CutPrefix(field, "usec="); ok {
				f, err := strconv.ParseFloat(v, 64)
				if err != nil {
					b.Fatal(err)
				}
				total += f
			}
		}
	}
	return total
}

// A worker that waits again as soon as it was served finds the queue empty
// each time, and a new asker starts for it: that asker too waits the
// budget's pace since the last grant before asking, so that its ask is
// granted rather than refused.
func TestSharedLimiterAsksOncePerCallForOneWaiterAtATime(t *testing.T) {
	for _, perSecond := range []int{1, 20, 200} {
		t.Run(strconv.Itoa(perSecond), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				const total = 30
				s := &countingBudget{Limiter: memory.New(memory.Options{})}
				l := &SharedLimiter{Store: s, PerSecond: perSecond}
				for range total {
					if err := l.Wait(t.Context()); err != nil {
						t.Fatal(err)
					}
					synctest.Wait() // the asker has found the queue empty and stopped
				}
				if got := s.asked.Load(); got != total {
					t.Errorf("the store was asked %d times for %d calls, want %d", got, total, total)
				}
			})
		})
	}
}
