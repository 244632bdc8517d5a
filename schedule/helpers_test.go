package schedule

import (
	"bytes"
	"context"
	"encoding/json"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/timguard/timguard/audit"
	"github.com/timguard/timguard/internal/redistest"
	"github.com/timguard/timguard/rules"
	"github.com/timguard/timguard/store"
)

func TestMain(m *testing.M) { redistest.Main(m) }

// holder is a RuleSource whose set a test can swap.
type holder struct{ p atomic.Pointer[rules.Set] }

func newHolder(set *rules.Set) *holder {
	h := &holder{}
	h.p.Store(set)
	return h
}

func (h *holder) Rules() *rules.Set { return h.p.Load() }

// mustRules compiles a rule file.
func mustRules(t testing.TB, src string) *rules.Set {
	t.Helper()
	set, err := rules.Parse("rules.yaml", []byte(src))
	if err != nil {
		t.Fatalf("rules: %v", err)
	}
	return set
}

// auditLog collects audit lines.
type auditLog struct {
	mu    sync.Mutex
	lines [][]byte
}

func (l *auditLog) WriteLine(line []byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, bytes.Clone(line))
}

// records returns the records of kind.
func (l *auditLog) records(t testing.TB, kind string) []audit.Record {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []audit.Record
	for _, line := range l.lines {
		var r audit.Record
		if err := json.Unmarshal(line, &r); err != nil {
			t.Fatalf("audit line %s: %v", line, err)
		}
		if r.Kind == kind {
			out = append(out, r)
		}
	}
	return out
}

// recStore records every enqueued action with the time it was enqueued.
type recStore struct {
	store.Store
	mu       sync.Mutex
	enqueued []timedAction
}

type timedAction struct {
	at time.Time
	a  store.Action
}

func (s *recStore) Enqueue(ctx context.Context, as ...store.Action) error {
	now := time.Now()
	s.mu.Lock()
	for _, a := range as {
		s.enqueued = append(s.enqueued, timedAction{at: now, a: a})
	}
	s.mu.Unlock()
	return s.Store.Enqueue(ctx, as...)
}

func (s *recStore) actions() []timedAction {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.enqueued)
}

// observations counts Observe calls by "job result".
type observations struct {
	mu sync.Mutex
	n  map[string]int
}

func (o *observations) observe(job, result string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.n == nil {
		o.n = map[string]int{}
	}
	o.n[job+" "+result]++
}

func (o *observations) get() map[string]int {
	o.mu.Lock()
	defer o.mu.Unlock()
	out := map[string]int{}
	for k, v := range o.n {
		out[k] = v
	}
	return out
}

// start runs s until the returned function is called; that function stops
// it and waits.
func start(t testing.TB, s *Scheduler) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func mustNew(t testing.TB, cfg Config) *Scheduler {
	t.Helper()
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func mustZone(t testing.TB, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

// sleepUntil advances the bubble's clock to at.
func sleepUntil(at time.Time) { time.Sleep(time.Until(at)) }

func utc(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}
