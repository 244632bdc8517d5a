package app

// Fault tests: the whole bot built by New while one of its outputs or
// its store misbehaves (a stalled audit reader, a full Redis, a Redis that
// restarts without its data), seen the way an operator sees it: callbacks
// answered, /readyz, /metrics and the audit log.

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/timguard/timguard/audit"
	"github.com/timguard/timguard/internal/redistest"
	"github.com/timguard/timguard/tim"
	"github.com/timguard/timguard/tim/timtest"
)

// stalledWriter is standard output when nobody reads the pipe: Write waits
// until release is closed.
type stalledWriter struct {
	release chan struct{}
	once    sync.Once
	mu      sync.Mutex
	n       int
}

func (w *stalledWriter) Write(p []byte) (int, error) {
	<-w.release
	w.mu.Lock()
	defer w.mu.Unlock()
	w.n += len(p)
	return len(p), nil
}

func (w *stalledWriter) unblock() { w.once.Do(func() { close(w.release) }) }

func TestFaultsAStalledAuditReaderNeverHoldsACallback(t *testing.T) {
	im := timtest.New(timtest.Options{})
	t.Cleanup(im.Close)
	im.AddGroup(timtest.Group{ID: e2eGroup, Type: "Public", Owner: "olga", Members: []string{"frank"}})
	out := &stalledWriter{release: make(chan struct{})}
	t.Cleanup(out.unblock) // lets the app's audit writer finish at the end
	url := redistest.URL(t)
	b := startAppWith(t, im, botConfig{
		token: e2eToken, imURL: im.URL(), redisURL: url, prefix: keyPrefix(t, url), auditStdout: true,
	}, e2eRules, nil, Options{Stdout: out, AuditBuffer: 8 << 10})

	// 200 callbacks write about 60 KiB of audit records into a buffer of
	// 8 KiB whose reader never reads. A writer that waits for its output
	// would hold the first callback for good.
	// A watchdog stands in for a reader that comes back after a minute, so
	// that a writer that waits fails this test instead of hanging it.
	const callbacks = 200
	var held atomic.Bool
	watchdog := time.AfterFunc(60*time.Second, func() { held.Store(true); out.unblock() })
	for i := range callbacks {
		if r := b.message(e2eGroup, fmt.Sprintf("user%03d", i), "hello"); r.ActionStatus != "OK" {
			t.Fatalf("callback %d answered %+v", i, r)
		}
	}
	watchdog.Stop()
	if held.Load() {
		t.Fatal("callbacks were held by the stalled audit output until the watchdog released it after 60s")
	}

	status, body := b.do(http.MethodGet, b.base+"/readyz", nil, nil)
	if status != http.StatusServiceUnavailable || !strings.Contains(string(body), "audit") {
		t.Errorf("/readyz while audit records are dropped: %d %s; want 503 naming the audit output", status, body)
	}
	if status, _ := b.do(http.MethodGet, b.base+"/healthz", nil, nil); status != http.StatusOK {
		t.Errorf("/healthz answered %d; the process is alive", status)
	}
	dropped := b.scrape().value("timguard_audit_records_dropped_total")
	if dropped == 0 {
		t.Error("timguard_audit_records_dropped_total is 0 after the buffer overflowed")
	}
	if !strings.Contains(b.stderr.String(), "audit records are being dropped") {
		t.Error("the log does not say that audit records are being dropped")
	}
	t.Logf("%v audit records dropped", dropped)

	// The reader comes back: the held records are written and the bot is
	// ready again.
	out.unblock()
	waitFor(t, 30*time.Second, "/readyz 200 after the audit output caught up", func() bool {
		status, _ := b.do(http.MethodGet, b.base+"/readyz", nil, nil)
		return status == http.StatusOK
	})
	// The writer logs this just after it stops dropping, which /readyz may
	// see first.
	waitFor(t, 30*time.Second, "the log saying that the audit output keeps up again", func() bool {
		return strings.Contains(b.stderr.String(), "the audit output keeps up again")
	})
}

// Decisions made while Redis is down are on disk in state_dir before their
// callback is answered. A stop (SIGTERM) while Redis is still down leaves
// them there; the next start commits them once Redis is back, and their
// actions are carried out once.
func TestFaultsDecisionsMadeWhileRedisIsDownOutliveAStop(t *testing.T) {
	srv := redistest.StartServer(t)
	im := timtest.New(timtest.Options{})
	t.Cleanup(im.Close)
	im.AddGroup(timtest.Group{ID: e2eWave, Type: "Public", Owner: "olga"})
	cfg := botConfig{
		token: e2eToken, imURL: im.URL(), redisURL: srv.URL(), prefix: "spool:", stateDir: t.TempDir(), executor: fastRetries,
	}
	first := startApp(t, im, cfg, e2eRules, nil, nil)
	srv.Stop()
	newcomers := []string{"nina", "noah", "nora"}
	first.joined(e2eWave, newcomers)
	decided := first.decided("mute")
	if len(decided) != len(newcomers) {
		t.Fatalf("%d mutes decided while Redis was down, want %d", len(decided), len(newcomers))
	}
	for id, rec := range decided {
		if rec.Result != audit.ResultDegraded || !strings.Contains(rec.Error, "kept on disk") {
			t.Errorf("decision of %s: result %q, error %q; want degraded, kept on disk", id, rec.Result, rec.Error)
		}
	}
	first.stop()
	if !strings.Contains(first.stderr.String(), "they stay on disk and are committed at the next start") {
		t.Errorf("the stop did not say that the decisions stay on disk:\n%s", first.stderr.String())
	}
	if calls := im.EffectiveCallsTo(tim.CommandForbidSendMsg); len(calls) != 0 {
		t.Fatalf("mutes carried out while Redis was down: %v", calls)
	}

	srv.Restart() // empty: the decisions are only on disk
	second := startApp(t, im, cfg, e2eRules, nil, nil)
	waitFor(t, 60*time.Second, "the newcomers muted after the restart", func() bool {
		done := 0
		for _, rs := range second.actionRecords() {
			for _, r := range rs {
				if r.Result == audit.ResultDone {
					done++
				}
			}
		}
		return done == len(newcomers)
	})
	records := second.actionRecords()
	for id := range decided {
		if rs := records[id]; len(rs) != 1 || rs[0].Result != audit.ResultDone {
			t.Errorf("action %s after the restart: %+v, want one done record", id, rs)
		}
	}
	muted := map[string]int{}
	for _, c := range im.EffectiveCallsTo(tim.CommandForbidSendMsg) {
		for _, m := range body(t, c)["Members_Account"].([]any) {
			muted[m.(string)]++
		}
	}
	for _, u := range newcomers {
		if muted[u] != 1 {
			t.Errorf("%s muted %d times, want once (all: %v)", u, muted[u], muted)
		}
	}
}

// A join of 8,000 members at once, with the production store.timeout
// (250ms): every newcomer of the wave group is muted, once, while Redis
// stays healthy. The event's reads and writes go to Redis in bounded round
// trips; one write holding every member would never fit the timeout and be
// retried for ever.
func TestFaultsAJoinOfEightThousandMembersIsCarriedOut(t *testing.T) {
	im := timtest.New(timtest.Options{})
	t.Cleanup(im.Close)
	const n = 8000
	newcomers := make([]string, n)
	for i := range newcomers {
		newcomers[i] = fmt.Sprintf("n%04d", i)
	}
	im.AddGroup(timtest.Group{ID: e2eWave, Type: "Public", Owner: "olga", Members: newcomers})
	url := redistest.URL(t)
	b := startApp(t, im, botConfig{
		token: e2eToken, imURL: im.URL(), rateLimit: 50, redisURL: url, prefix: keyPrefix(t, url),
		executor: fastRetries, storeTimeout: "250ms",
	}, e2eRules, nil, nil)
	t.Cleanup(func() {
		if t.Failed() {
			lines := strings.Split(strings.TrimSpace(b.stderr.String()), "\n")
			t.Logf("the bot's log ends:\n%s", strings.Join(lines[max(0, len(lines)-30):], "\n"))
		}
	})
	b.joined(e2eWave, newcomers)

	muted := map[string]int{}
	waitFor(t, 120*time.Second, "8,000 newcomers muted", func() bool {
		clear(muted)
		for _, c := range im.EffectiveCallsTo(tim.CommandForbidSendMsg) {
			for _, m := range body(t, c)["Members_Account"].([]any) {
				muted[m.(string)]++
			}
		}
		return len(muted) == n
	})
	for u, k := range muted {
		if k != 1 {
			t.Errorf("%s muted %d times, want once", u, k)
		}
	}
	if s := b.app.engine.Spooled(); s != 0 {
		t.Errorf("%d commits still wait for a healthy Redis", s)
	}
	if status, body := b.do(http.MethodGet, b.base+"/readyz", nil, nil); status != http.StatusOK {
		t.Errorf("/readyz %d %s with Redis healthy", status, body)
	}
	t.Logf("%d forbid_send_msg calls", len(im.EffectiveCallsTo(tim.CommandForbidSendMsg)))
}
