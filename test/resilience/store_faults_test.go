package resilience

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/timguard/timguard/audit"
	"github.com/timguard/timguard/test/harness"
	"github.com/timguard/timguard/tim"
)

// redisConfig sets Redis configuration parameters at run time.
func (r *rig) redisConfig(kv ...string) {
	r.t.Helper()
	opts, err := redis.ParseURL(r.redis.URL())
	if err != nil {
		r.t.Fatal(err)
	}
	c := redis.NewClient(opts)
	defer c.Close()
	for i := 0; i+1 < len(kv); i += 2 {
		if err := c.ConfigSet(context.Background(), kv[i], kv[i+1]).Err(); err != nil {
			r.t.Fatalf("CONFIG SET %s %s: %v", kv[i], kv[i+1], err)
		}
	}
}

// waitReady polls bot's /readyz until it answers want, for at most within;
// it reports whether it did.
func waitReady(b *harness.Bot, want int, within time.Duration) bool {
	deadline := time.Now().Add(within)
	for {
		if code, err := get(b.URL + "/readyz"); err == nil && code == want {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestRedisOutOfMemoryMidLoad fills Redis in the middle of the load:
// maxmemory below what it holds, with maxmemory-policy noeviction (as the
// docs advise), so that Redis answers PING and reads but refuses every
// write with OOM for the profile's outage. Meanwhile every callback is
// answered in time, decided without the store (fail open), its decision
// kept on disk (state_dir) and /readyz answers 503; once Redis has room
// again, every action decided, before, during and after, is done exactly
// once.
func TestRedisOutOfMemoryMidLoad(t *testing.T) {
	r := newRig(t, false)
	cfg := r.config()
	cfg.StateDir = filepath.Join(r.dir, "state")
	bot := r.startBot("bot", cfg)
	d := r.driver(false, bot)

	var readyDuring bool
	st := r.load(d, func() {
		r.redisConfig("maxmemory-policy", "noeviction", "maxmemory", "1")
		readyDuring = waitReady(bot, http.StatusServiceUnavailable, r.prof.outage)
		time.Sleep(r.prof.outage)
		r.redisConfig("maxmemory", "0")
	})
	if !readyDuring {
		t.Errorf("/readyz did not answer 503 while Redis refused every write")
	}
	checkAnswered(t, st, nil)

	r.settle(90 * time.Second)
	if !waitReady(bot, http.StatusOK, 10*time.Second) {
		t.Error("/readyz does not answer 200 after Redis has room again")
	}
	r.stop()
	r.checkBotLogs()
	r.checkDecidedInTime()

	degraded, kept, oom := 0, 0, 0
	var slowest int64
	for _, rec := range r.records() {
		if rec.Kind != audit.KindDecision || rec.Result != audit.ResultDegraded {
			continue
		}
		slowest = max(slowest, rec.LatencyUS)
		degraded++
		if strings.Contains(rec.Error, "OOM") {
			oom++
		}
		if strings.Contains(rec.Error, "kept on disk") {
			for _, a := range rec.Actions {
				if a.ID != "" && !a.Shadow {
					kept++
				}
			}
		}
	}
	if oom == 0 || kept == 0 {
		t.Errorf("%d decisions named the OOM and %d actions were kept on disk: the full Redis was not exercised", oom, kept)
	}
	t.Logf("%d decisions were made while Redis refused writes (%d naming its OOM); %d of their actions waited on disk; the slowest took %v",
		degraded, oom, kept, time.Duration(slowest)*time.Microsecond)
	rec := r.reconcile()
	checkExactlyOnce(t, rec)
	table(t, "Redis out of memory (noeviction) mid-load", st, rec.ExactlyOnce, len(rec.Decided), repeatedCalls(rec.Done),
		fmt.Sprintf("%d decisions without the store, %d actions kept on disk, /readyz 503 while full", degraded, kept))
}

// TestBotKilledWhileRedisIsDown kills Redis in the middle of the load, lets
// the bot decide without it for the profile's outage (its decisions are
// written to state_dir before the callbacks are answered), then kills the
// bot with SIGKILL, or stops it with SIGTERM, while Redis is still down.
// Redis comes back (with its append-only file) and a new bot starts on the
// same port and state_dir. Every action the first bot answered for is done
// exactly once, and no action is carried out twice: an action the first
// bot carried out just before Redis went away could not record its outcome
// in Redis, so it kept it in state_dir, and the new bot records it before
// its first claim instead of claiming the action again once its lease has
// run out.
//
// What the killed bot was doing at the instant it died is counted, not
// failed: a callback in flight then may have been decided (and its action
// done) or not, and the audit records still in its buffer are lost, so the
// check goes by what the callbacks answered, which the mix tells, not only
// by the audit log. (No REST call is in flight at the kill: while Redis is
// down the shared REST budget cannot be taken, so the bot makes none.)
func TestBotKilledWhileRedisIsDown(t *testing.T) {
	for _, c := range []struct {
		signal string
		end    func(t *testing.T, b *harness.Bot)
	}{
		{"SIGKILL", func(t *testing.T, b *harness.Bot) { b.Kill() }},
		{"SIGTERM", func(t *testing.T, b *harness.Bot) {
			// The stop does not wait for Redis: it exits 0, in time.
			if err := b.Stop(20 * time.Second); err != nil {
				t.Error(err)
			}
		}},
	} {
		t.Run(c.signal, func(t *testing.T) { botEndedWhileRedisIsDown(t, c.signal, c.end) })
	}
}

func botEndedWhileRedisIsDown(t *testing.T, signal string, end func(t *testing.T, b *harness.Bot)) {
	r := newRig(t, true)
	cfg := r.config()
	cfg.StateDir = filepath.Join(r.dir, "state")
	// The lease outlives the outage (as in TestRedisStoppedAndRestartedMidLoad)
	// and a machine that stalls the bot for seconds: a lease shorter than a
	// stall hands an action to another worker while its call is made.
	cfg.Lease = max(10*time.Second, 3*r.prof.outage)
	port, err := harness.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	cfg.Port = port
	a := r.startBot("a", cfg)
	d := r.driver(false, a)

	var down, killing, killed, up time.Time
	var b *harness.Bot
	var held, keptSeen bool
	st := r.load(d, func() {
		// A mute call is made as Redis dies: its answer comes after, so
		// its outcome cannot be recorded in Redis.
		held = r.holdAnswers(tim.CommandForbidSendMsg, time.Second, 5*time.Second)
		r.redis.Kill()
		down = time.Now()
		time.Sleep(r.prof.outage)
		if held {
			// Whatever the machine's load, a has the answer and has kept
			// the outcome on disk before it is ended.
			keptSeen = waitLogged(a, keptLogMsg, 20*time.Second)
		}
		killing = time.Now()
		end(t, a)
		killed = time.Now()
		if err := r.redis.Start(); err != nil {
			t.Fatalf("restart Redis: %v", err)
		}
		b = r.startBot("b", cfg) // the same port and state_dir
		up = time.Now()
	})
	t.Logf("bot a ended (%s) %v after Redis died, in %v; bot b up %v after that", signal, killing.Sub(down).Round(time.Millisecond),
		killed.Sub(killing).Round(time.Millisecond), up.Sub(killed).Round(time.Millisecond))

	// Every callback that got an answer got a valid one in time; those that
	// got none failed at the kill or while no bot listened.
	unanswered := 0
	checkAnswered(t, st, func(res harness.Result) bool {
		if res.Status == 0 {
			unanswered++
			if failed := res.Scheduled.Add(res.Latency); failed.Before(killing) {
				t.Errorf("callback %d failed %v before bot a was killed: %s", res.Index, killing.Sub(failed), res.Err)
			}
			return false
		}
		return true
	})

	// The decisions b read back from the journal reach the outbox first.
	if !waitSpoolEmpty(b, 60*time.Second) {
		t.Error("bot b still holds decisions for Redis 60s after the restart")
	}
	r.settle(90 * time.Second)
	r.stop()
	r.checkBotLogs()
	r.checkDecidedInTime()

	var slowest int64
	for _, rec := range r.records() {
		if rec.Kind == audit.KindDecision {
			slowest = max(slowest, rec.LatencyUS)
		}
	}
	t.Logf("the slowest decision took %v in the bots", time.Duration(slowest)*time.Microsecond)

	// What the mix says each callback causes: answered ones must be done
	// exactly once; unanswered ones at most once.
	expected, maybe := map[harness.Effect]bool{}, map[harness.Effect]bool{}
	for _, res := range st.Results {
		for _, e := range harness.ResilienceEffects(res.Class, res.Group, res.Users) {
			if res.Status != 0 {
				expected[e] = true
			} else {
				maybe[e] = true
			}
		}
	}
	calls := r.im.Calls()
	done, err := harness.Effects(calls)
	if err != nil {
		t.Fatal(err)
	}
	once, inFlight := 0, 0
	for e := range expected {
		switch n := done[e]; {
		case n == 1:
			once++
		case n == 2:
			if ec := effectCalls(calls, e); !ec[0].At.After(killed) && ec[1].At.After(killed) {
				t.Errorf("%v: a carried it out before it was killed and b again after the restart: the outcome a kept in state_dir was not recorded before b claimed", e)
				continue
			}
			t.Errorf("%v, answered for, was done twice", e)
		case n == 0:
			t.Errorf("%v, answered for, was never done", e)
		default:
			t.Errorf("%v, answered for, was done %d times", e, n)
		}
	}
	for e, n := range done {
		switch {
		case expected[e]:
		case maybe[e] && n == 1:
			inFlight++
		case maybe[e]:
			t.Errorf("%v, of a callback never answered, was done %d times", e, n)
		default:
			t.Errorf("the IM server carried out %v, which no callback asked for", e)
		}
	}
	if len(expected) == 0 {
		t.Fatal("no callback answered asked for an action")
	}

	// The audit logs agree: nothing decided is missing or dead or lost.
	rec := r.reconcile()
	for what, ids := range map[string][]string{"was never done": rec.Missing, "was dead-lettered": rec.Dead} {
		for _, id := range ids {
			t.Errorf("action %s %s", rec.Describe(id), what)
		}
	}
	for id, results := range rec.Results {
		if results[audit.ResultLost] > 0 {
			t.Errorf("action %s was audited as lost", rec.Describe(id))
		}
	}

	restored, restoredActions := keptAtStart(t, b)
	if restored == 0 {
		t.Error("bot b found no decision kept on disk by bot a: the journal was not exercised")
	}
	outcomes := outcomesAtStart(t, b)
	switch {
	case held && !keptSeen:
		t.Error("bot a had the answer of a call made as Redis died, and did not log that it kept the outcome on disk")
	case held && outcomes == 0:
		t.Error("bot a kept the outcome of a call made as Redis died, and bot b found none on disk")
	}
	t.Logf("bot b committed %d decisions (%d actions) bot a had kept on disk, and recorded %d outcomes of actions a had carried out; %d callbacks unanswered around the end of a; %d effects of them done",
		restored, restoredActions, outcomes, unanswered, inFlight)
	table(t, "bot ended ("+signal+") while Redis is down", st, once, len(expected), repeatedCalls(done),
		fmt.Sprintf("%d decisions (%d actions) kept on disk by the first bot and done by the second; %d outcomes of actions the first bot carried out kept on disk and recorded by the second; %d callbacks unanswered, %d of their effects done",
			restored, restoredActions, outcomes, unanswered, inFlight))
}

// waitSpoolEmpty polls b's /metrics until timguard_spool_commits is 0, for
// at most within; it reports whether it was.
func waitSpoolEmpty(b *harness.Bot, within time.Duration) bool {
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(within)
	for {
		if resp, err := client.Get(b.URL + "/metrics"); err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			for _, line := range strings.Split(string(body), "\n") {
				if line == "timguard_spool_commits 0" {
					return true
				}
			}
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// keptLogMsg starts the bot's log record when it keeps action outcomes on
// disk because the store cannot record them.
const keptLogMsg = "the store cannot record action outcomes"

// outcomesAtStart reads, from b's log, how many outcomes of actions a bot
// before it had carried out (and could not record in Redis) it found kept
// on disk when it started.
func outcomesAtStart(t *testing.T, b *harness.Bot) int {
	t.Helper()
	n := 0
	for _, line := range logLines(t, b) {
		var l struct {
			Msg      string `json:"msg"`
			Outcomes int    `json:"outcomes"`
		}
		if json.Unmarshal(line, &l) == nil && strings.HasPrefix(l.Msg, "action outcomes kept on disk while the store was unavailable") {
			n += l.Outcomes
		}
	}
	return n
}

// logLines returns the lines of b's log.
func logLines(t *testing.T, b *harness.Bot) [][]byte {
	t.Helper()
	data, err := os.ReadFile(b.LogPath())
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Split(data, []byte("\n"))
}

// keptAtStart reads, from b's log, how many decisions (and actions) it found
// kept on disk when it started.
func keptAtStart(t *testing.T, b *harness.Bot) (commits, actions int) {
	t.Helper()
	f, err := os.Open(b.LogPath())
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		var line struct {
			Msg     string `json:"msg"`
			Commits int    `json:"commits"`
			Actions int    `json:"actions"`
		}
		if json.Unmarshal(sc.Bytes(), &line) == nil && strings.HasPrefix(line.Msg, "decisions kept on disk while the store was unavailable") {
			commits += line.Commits
			actions += line.Actions
		}
	}
	return commits, actions
}
