package redis

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	goredis "github.com/redis/go-redis/v9"

	"github.com/timguard/timguard/internal/redistest"
	"github.com/timguard/timguard/store"
	"github.com/timguard/timguard/store/storetest"
)

func TestConformanceWithoutBatching(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return freshStore(t, Options{Batch: BatchOptions{MaxSize: 1}}) })
}

// gate holds the pipelines go-redis sends until it is opened, and counts
// them and their commands.
type gate struct {
	mu        sync.Mutex
	pipelines []int // commands per pipeline, in order
	held      chan struct{}
	open      chan struct{}
	once      sync.Once
}

func newGate() *gate { return &gate{held: make(chan struct{}, 100), open: make(chan struct{})} }

func (g *gate) release() { g.once.Do(func() { close(g.open) }) }

func (g *gate) DialHook(next goredis.DialHook) goredis.DialHook          { return next }
func (g *gate) ProcessHook(next goredis.ProcessHook) goredis.ProcessHook { return next }
func (g *gate) ProcessPipelineHook(next goredis.ProcessPipelineHook) goredis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []goredis.Cmder) error {
		switch cmds[0].Name() {
		case "hello", "client", "auth", "select":
			return next(ctx, cmds) // a new connection's handshake
		}
		g.mu.Lock()
		g.pipelines = append(g.pipelines, len(cmds))
		g.mu.Unlock()
		g.held <- struct{}{}
		select {
		case <-g.open:
		case <-ctx.Done():
			return ctx.Err()
		}
		return next(ctx, cmds)
	}
}

func (g *gate) sent() []int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]int(nil), g.pipelines...)
}

// gatedStore is a store with one batch sender on a client whose pipelines
// wait at g, and the registry of its metrics.
func gatedStore(t *testing.T, timeout time.Duration) (*Store, *gate, *prometheus.Registry) {
	t.Helper()
	url := redistest.URL(t)
	prefix := redistest.Prefix(t)
	redistest.CleanupPrefix(t, url, prefix)
	opts, err := goredis.ParseURL(url)
	if err != nil {
		t.Skipf("REDIS_URL %s is not a single node: %v", url, err)
	}
	opts.ContextTimeoutEnabled = true
	rdb := goredis.NewClient(opts)
	g := newGate()
	rdb.AddHook(g)
	reg := prometheus.NewRegistry()
	s, err := NewFromClient(rdb, Options{KeyPrefix: prefix, Timeout: timeout, Registerer: reg,
		Batch: BatchOptions{MaxSize: 64, Senders: 1}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		g.release()
		_ = s.Close()
	})
	return s, g, reg
}

// queued waits until n calls wait for the sender, failing the test when
// they have not after a generous while (a call that never queues, as one
// that does not go through the batcher, would otherwise hang the test).
func queued(t *testing.T, s *Store, n int) {
	t.Helper()
	give := time.Now().Add(30 * time.Second)
	for len(s.batch.queue) < n {
		if t.Context().Err() != nil || time.Now().After(give) {
			t.Fatalf("%d of %d calls queued", len(s.batch.queue), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// behindAHeldPipeline sends a first call whose pipeline g holds out, then
// queues one and two behind it, in that order, runs beforeRelease (when
// not nil), lets the pipeline go, and returns once one and two returned.
func behindAHeldPipeline(t *testing.T, s *Store, g *gate, one, two, beforeRelease func()) {
	t.Helper()
	go func() { _, _ = s.Enrich(t.Context(), enrichOne("first", "e0")) }()
	<-g.held
	var wg sync.WaitGroup
	wg.Go(one)
	queued(t, s, 1)
	wg.Go(two)
	queued(t, s, 2)
	if beforeRelease != nil {
		beforeRelease()
	}
	g.release()
	wg.Wait()
}

func enrichOne(key, id string) store.EnrichRequest {
	return store.EnrichRequest{Now: time.Now(), EventID: id, Dedupe: id, DedupeTTL: time.Minute,
		Counters: []store.CounterTouch{{Key: key, Window: time.Minute, Add: 1}}}
}

// Calls made while a pipeline is out wait and then go together, in one
// pipeline, and each caller reads its own answers.
func TestCallsMadeWhileAPipelineIsOutShareTheNext(t *testing.T) {
	s, g, reg := gatedStore(t, 10*time.Second)
	ctx := t.Context()
	first := make(chan error, 1)
	go func() {
		_, err := s.Enrich(ctx, enrichOne("first", "e0"))
		first <- err
	}()
	<-g.held // the first pipeline is out, and held

	const n = 20
	type answer struct {
		res store.EnrichResult
		err error
	}
	answers := make([]answer, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			// Every caller touches a window of its own i+1 times over
			// (i entries added before, one now): its count says whose
			// answer it got.
			key := "w" + strconv.Itoa(i)
			req := enrichOne(key, "e"+strconv.Itoa(i+1))
			req.Counters[0].Add = i + 1
			answers[i].res, answers[i].err = s.Enrich(ctx, req)
		})
	}
	queued(t, s, n)
	g.release()
	wg.Wait()
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	for i, a := range answers {
		if a.err != nil {
			t.Fatalf("call %d: %v", i, a.err)
		}
		if len(a.res.Counts) != 1 || a.res.Counts[0] != int64(i+1) || a.res.Duplicate {
			t.Errorf("call %d got %+v, want a count of %d and no duplicate", i, a.res, i+1)
		}
	}
	if sent := g.sent(); len(sent) != 2 {
		t.Errorf("pipelines of %v commands, want two: the first call's and the %d others'", sent, n)
	}
	count, sum := batchSizes(t, reg)
	if count != 2 || sum != n+1 {
		t.Errorf("timguard_store_batch_size: %d observations summing to %g, want 2 summing to %d", count, sum, n+1)
	}
}

// A call whose commands fail (here a window key that holds a string)
// fails alone; the calls sharing its pipeline get their answers.
func TestACallThatFailsFailsAloneInItsPipeline(t *testing.T) {
	s, g, _ := gatedStore(t, 10*time.Second)
	ctx := t.Context()
	if err := s.rdb.Set(ctx, s.k.window("wrong"), "a string", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	var bad, good error
	var goodRes store.EnrichResult
	behindAHeldPipeline(t, s, g,
		func() { _, bad = s.Enrich(ctx, enrichOne("wrong", "e1")) },
		func() { goodRes, good = s.Enrich(ctx, enrichOne("right", "e2")) },
		nil)
	if errors.Is(bad, store.ErrUnavailable) || !containsWrongType(bad) {
		t.Errorf("the call on a string key: err = %v, want WRONGTYPE (not ErrUnavailable)", bad)
	}
	if good != nil || len(goodRes.Counts) != 1 || goodRes.Counts[0] != 1 {
		t.Errorf("the call beside it: %+v, %v; want a count of 1", goodRes, good)
	}
	if sent := g.sent(); len(sent) != 2 {
		t.Errorf("pipelines of %v commands, want two", sent)
	}
}

func containsWrongType(err error) bool {
	for ; err != nil; err = errors.Unwrap(err) {
		if goredis.HasErrorPrefix(err, "WRONGTYPE") {
			return true
		}
	}
	return false
}

// A pipeline that hangs holds no caller past its deadline: the calls
// waiting behind it give up with ErrUnavailable in time, and once Redis
// answers again the next calls go through.
func TestACallWaitsForItsPipelineNoLongerThanItsDeadline(t *testing.T) {
	s, g, _ := gatedStore(t, 200*time.Millisecond)
	ctx := t.Context()
	go func() { _, _ = s.Enrich(ctx, enrichOne("first", "e0")) }()
	<-g.held

	var wg sync.WaitGroup
	errs := make([]error, 5)
	for i := range errs {
		wg.Go(func() {
			if i%2 == 0 {
				_, errs[i] = s.Enrich(ctx, enrichOne("k"+strconv.Itoa(i), "e"+strconv.Itoa(i+1)))
				return
			}
			errs[i] = s.Commit(ctx, store.CommitRequest{Now: time.Now(), EventID: "c" + strconv.Itoa(i),
				Touch: []store.CounterTouch{{Key: "budget", Window: time.Minute, Add: 1}}})
		})
	}
	wg.Wait() // returns although the gate is still closed
	for i, err := range errs {
		if !errors.Is(err, store.ErrUnavailable) {
			t.Errorf("call %d: err = %v, want ErrUnavailable", i, err)
		}
	}
	g.release()
	res, err := s.Enrich(ctx, enrichOne("after", "e9"))
	if err != nil || res.Counts[0] != 1 {
		t.Errorf("a call once Redis answers: %+v, %v", res, err)
	}
}

// A call whose context is cancelled while it waits for a pipeline is left
// out of the pipeline: its commands never reach Redis, its caller gets the
// context's error, and the call beside it gets its answer.
func TestACallCancelledBeforeItsPipelineGoesIsLeftOut(t *testing.T) {
	s, g, _ := gatedStore(t, 10*time.Second)
	ctx := t.Context()
	cctx, cancel := context.WithCancel(ctx)
	var gone, kept error
	var keptRes store.EnrichResult
	behindAHeldPipeline(t, s, g,
		func() { _, gone = s.Enrich(cctx, enrichOne("gone", "e1")) },
		func() { keptRes, kept = s.Enrich(ctx, enrichOne("kept", "e2")) },
		cancel)
	if !errors.Is(gone, context.Canceled) {
		t.Errorf("the cancelled call: err = %v, want context.Canceled", gone)
	}
	if kept != nil || len(keptRes.Counts) != 1 || keptRes.Counts[0] != 1 {
		t.Errorf("the call beside it: %+v, %v; want a count of 1", keptRes, kept)
	}
	n, err := s.rdb.Exists(ctx, s.k.window("gone")).Result()
	if err != nil || n != 0 {
		t.Errorf("the cancelled call's window exists (%d, %v): its commands were sent", n, err)
	}
	if sent := g.sent(); len(sent) != 2 {
		t.Errorf("pipelines of %v commands, want two", sent)
	}
}

// Calls still waiting when the store closes are sent first; calls after
// Close fail.
func TestCloseSendsTheCallsWaiting(t *testing.T) {
	s := freshStore(t, Options{Batch: BatchOptions{MaxSize: 8, Senders: 1}})
	ctx := t.Context()
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			if _, err := s.Enrich(ctx, enrichOne("k"+strconv.Itoa(i), "e"+strconv.Itoa(i))); err != nil {
				t.Errorf("call %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Enrich(ctx, enrichOne("late", "late")); err == nil {
		t.Error("a call after Close succeeded")
	}
}

// batchSizes reads the histogram's count and sum.
func batchSizes(t *testing.T, reg *prometheus.Registry) (uint64, float64) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "timguard_store_batch_size" && mf.GetType() == dto.MetricType_HISTOGRAM {
			h := mf.GetMetric()[0].GetHistogram()
			return h.GetSampleCount(), h.GetSampleSum()
		}
	}
	t.Fatal("no timguard_store_batch_size histogram")
	return 0, 0
}

// BenchmarkEnrichParallel measures Enrich from many goroutines at once, as
// concurrent callbacks make it, with and without batching.
func BenchmarkEnrichParallel(b *testing.B) {
	for _, c := range []struct {
		name  string
		batch BatchOptions
	}{
		{"unbatched", BatchOptions{MaxSize: 1}},
		{"batched", BatchOptions{}},
	} {
		b.Run(c.name, func(b *testing.B) {
			s := freshStore(b, Options{Batch: c.batch})
			ctx := context.Background()
			var n sync.Mutex
			next := 0
			b.ReportAllocs()
			b.SetParallelism(16)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					n.Lock()
					next++
					i := next
					n.Unlock()
					user := "u" + strconv.Itoa(i%1000)
					req := store.EnrichRequest{Now: time.Now(), EventID: "ev" + strconv.Itoa(i), Dedupe: "ev" + strconv.Itoa(i),
						DedupeTTL: time.Minute, StrikeDecay: time.Hour, Strikes: []store.UserRef{{Group: "g", User: user}}}
					for k := range 3 {
						req.Counters = append(req.Counters, store.CounterTouch{Key: "c" + strconv.Itoa(k) + "|" + user, Window: 10 * time.Second, Add: 1})
					}
					if _, err := s.Enrich(ctx, req); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// A window is trimmed on some of the touches only, yet every count is
// exact, and a busy window keeps no more than a few touches' worth of
// stale entries.
func TestWindowCountsAreExactAndItsStaleEntriesBounded(t *testing.T) {
	s := freshStore(t, Options{})
	ctx := t.Context()
	start := time.Now()
	const span = time.Second
	for i := range 300 {
		now := start.Add(time.Duration(i) * 100 * time.Millisecond)
		res, err := s.Enrich(ctx, store.EnrichRequest{Now: now, EventID: "ev" + strconv.Itoa(i),
			Counters: []store.CounterTouch{{Key: "busy", Window: span, Add: 1}, {Key: "busy", Window: span}}})
		if err != nil {
			t.Fatal(err)
		}
		// Entries in (now-1s, now]: ten, or fewer at the start.
		want := int64(min(i+1, 10))
		if res.Counts[0] != want || res.Counts[1] != want {
			t.Fatalf("event %d: counts %v, want %d", i, res.Counts, want)
		}
	}
	n, err := s.rdb.ZCard(ctx, s.k.window("busy")).Result()
	if err != nil {
		t.Fatal(err)
	}
	if n > 10+8*trimEvery {
		t.Errorf("the window holds %d entries, want its 10 live ones and few stale ones", n)
	}
}

// noIO answers every pipeline at once without sending it, so that a
// benchmark measures the batcher's own work.
type noIO struct{}

func (noIO) DialHook(next goredis.DialHook) goredis.DialHook          { return next }
func (noIO) ProcessHook(next goredis.ProcessHook) goredis.ProcessHook { return next }
func (noIO) ProcessPipelineHook(goredis.ProcessPipelineHook) goredis.ProcessPipelineHook {
	return func(context.Context, []goredis.Cmder) error { return nil }
}

// BenchmarkBatcherOverhead is what sharing pipelines costs per call when
// Redis costs nothing: handing the call to the sender, its wait with a
// deadline, and the wake-up when its pipeline has run.
func BenchmarkBatcherOverhead(b *testing.B) {
	rdb := goredis.NewClient(&goredis.Options{Addr: "127.0.0.1:1"})
	rdb.AddHook(noIO{})
	bt := newBatcher(rdb, BatchOptions{MaxSize: DefaultBatchMaxSize, Senders: DefaultBatchSenders}, nil)
	defer bt.close()
	b.ReportAllocs()
	b.SetParallelism(8)
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		cmds := []goredis.Cmder{goredis.NewIntCmd(ctx, "incr", "k")}
		for pb.Next() {
			if ran, err := bt.do(ctx, time.Now().Add(time.Second), cmds); !ran || err != nil {
				b.Errorf("ran %v, err %v", ran, err)
				return
			}
		}
	})
}

// A call settled by its pipeline as its deadline came keeps the pipeline's
// outcome, and is not reused: its timer's expire, which may still run,
// must not end a later call's wait.
func TestACallWhoseTimerRanIsNotReused(t *testing.T) {
	rdb := goredis.NewClient(&goredis.Options{Addr: "127.0.0.1:1"})
	rdb.AddHook(noIO{})
	bt := newBatcher(rdb, BatchOptions{}, nil)
	defer bt.close()
	c := bt.calls.Get().(*call)
	c.state.Store(callWaiting)
	c.settle() // the pipeline ran
	c.timer.Reset(0)
	for c.timer.Stop() { // stopped before it fired: let it fire
		c.timer.Reset(0)
	}
	if got := c.state.Load(); got != callRan {
		t.Fatalf("state %d after the pipeline and then the deadline, want callRan", got)
	}
	if n := len(c.done); n != 1 {
		t.Fatalf("%d wake-ups queued, want the pipeline's only", n)
	}
	bt.release(c)
	for range 100 {
		if bt.calls.Get().(*call) == c {
			t.Fatal("a call whose timer ran was reused")
		}
	}
}

// claimOne enqueues a mute created at now and claims it.
func claimOne(t *testing.T, s *Store, now time.Time) []store.Claimed {
	t.Helper()
	ctx := t.Context()
	if err := s.Enqueue(ctx, store.Action{ID: "a1", Kind: "mute", Group: "g", User: "u", Seconds: 60, EventID: "e", Created: now}); err != nil {
		t.Fatal(err)
	}
	claimed, err := s.Claim(ctx, now, 10, time.Minute)
	if err != nil || len(claimed) != 1 {
		t.Fatalf("claim: %v, %v", claimed, err)
	}
	return claimed
}

// The executor's scripts (the REST budget, mutes, completions) made while
// a pipeline is out share the next one, and each caller gets its answer.
func TestTheExecutorsScriptsShareTheCallbacksPipelines(t *testing.T) {
	s, g, _ := gatedStore(t, 10*time.Second)
	ctx := t.Context()
	now := time.Now()
	// Enqueue and Claim are single commands: the gate holds pipelines only.
	claimed := claimOne(t, s, now)
	go func() { _, _ = s.Enrich(ctx, enrichOne("first", "e0")) }()
	<-g.held

	var allowed bool
	var allowErr, muteErr, completeErr error
	mute := store.Mute{Group: "g", User: "u", Until: now.Add(time.Hour).Truncate(time.Millisecond), Since: now.Truncate(time.Millisecond)}
	var wg sync.WaitGroup
	wg.Go(func() { allowed, _, allowErr = s.Allow(ctx, 1, 100) })
	wg.Go(func() { muteErr = s.SetMute(ctx, mute) })
	wg.Go(func() { completeErr = s.Complete(ctx, claimed[0]) })
	queued(t, s, 3)
	g.release()
	wg.Wait()
	if !allowed || allowErr != nil || muteErr != nil || completeErr != nil {
		t.Fatalf("allow %v %v, set mute %v, complete %v", allowed, allowErr, muteErr, completeErr)
	}
	if sent := g.sent(); len(sent) != 2 || sent[1] != 3 {
		t.Errorf("pipelines of %v commands, want the first call's, then one of the three scripts", sent)
	}
	mutes, err := s.ListMutes(ctx, "g")
	if err != nil || len(mutes) != 1 || mutes[0].User != "u" {
		t.Errorf("mutes %+v, %v; want u's", mutes, err)
	}
	if again, err := s.Claim(ctx, now.Add(2*time.Minute), 10, time.Minute); err != nil || len(again) != 0 {
		t.Errorf("the completed action was claimed again: %+v, %v", again, err)
	}
}

// When Redis has lost its script cache (a restart, SCRIPT FLUSH), the
// scripts sent in shared pipelines run anyway (EVAL after NOSCRIPT). The
// flush is on a server of the test's own: the shared one's scripts stay
// cached for the tests that count round trips.
func TestSharedScriptsRunAfterTheScriptCacheIsFlushed(t *testing.T) {
	srv := redistest.StartServer(t)
	s := newTestStore(t, srv.URL(), "flush:", Options{})
	ctx := t.Context()
	now := time.Now()
	claimed := claimOne(t, s, now)
	if err := s.rdb.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	if ok, _, err := s.Allow(ctx, 1, 100); !ok || err != nil {
		t.Errorf("allow after a flush: %v, %v", ok, err)
	}
	if err := s.rdb.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	if err := s.SetMute(ctx, store.Mute{Group: "g", User: "u", Until: now.Add(time.Hour), Since: now}); err != nil {
		t.Errorf("set mute after a flush: %v", err)
	}
	if err := s.rdb.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	if err := s.Complete(ctx, claimed[0]); err != nil {
		t.Errorf("complete after a flush: %v", err)
	}
}
