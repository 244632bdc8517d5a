package resilience

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/timguard/timguard/audit"
	"github.com/timguard/timguard/store/redis"
	"github.com/timguard/timguard/test/harness"
	"github.com/timguard/timguard/tim/timtest"
)

// EnvProfile selects the load: "long" for more callbacks over a longer run;
// anything else is the short profile the test suite and CI run.
const EnvProfile = "TIMGUARD_RESILIENCE"

// envRequire set to 1 turns missing tools into failures (CI sets it).
const envRequire = "TIMGUARD_REQUIRE_REDIS"

// profile is the load of one scenario.
type profile struct {
	name     string
	rate     float64       // callbacks per second
	duration time.Duration // of the load
	// breakAt is when, into the load, the scenario breaks something.
	breakAt time.Duration
	// outage is how long Redis stays down.
	outage time.Duration
}

func currentProfile() profile {
	if os.Getenv(EnvProfile) == "long" {
		return profile{name: "long", rate: 1000, duration: 30 * time.Second, breakAt: 10 * time.Second, outage: 5 * time.Second}
	}
	return profile{name: "short", rate: 250, duration: 6 * time.Second, breakAt: 2 * time.Second, outage: 2 * time.Second}
}

// answerWithin is the IM server's wait for a callback.
const answerWithin = 2 * time.Second

// token signs the callbacks.
const token = "resilience-callback-token"

// built is the bot binary, compiled once per test binary on first use.
// TestMain removes it.
var built struct {
	once sync.Once
	dir  string
	path string
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if built.dir != "" {
		_ = os.RemoveAll(built.dir)
	}
	os.Exit(code)
}

// need skips t (or fails it with TIMGUARD_REQUIRE_REDIS=1) when redis-server
// is missing or the bot does not build, and returns the bot binary.
func need(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("the resilience suite runs the bot as processes under load; skipped with -short")
	}
	missing := func(msg string) {
		t.Helper()
		if os.Getenv(envRequire) == "1" {
			t.Fatal(msg + " (" + envRequire + "=1 makes this a failure)")
		}
		t.Skip(msg)
	}
	if _, err := exec.LookPath("redis-server"); err != nil {
		missing("resilience: " + harness.ErrNoRedis.Error())
	}
	built.once.Do(func() {
		built.dir, built.err = os.MkdirTemp("", "timguard-resilience-")
		if built.err != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		built.path, built.err = harness.BuildBot(ctx, built.dir)
	})
	if built.err != nil {
		missing("resilience: cannot build the bot: " + built.err.Error())
	}
	return built.path
}

// rig is one scenario's world: a private Redis, the fake IM server with the
// mix's groups, and the bots started on them.
type rig struct {
	t      *testing.T
	binary string
	dir    string
	prof   profile
	redis  *harness.Redis
	im     *timtest.Server
	mix    *harness.Mix
	store  *redis.Store
	bots   []*harness.Bot
	// decisionTimes holds, per bot stopped by stop, its own measurement of
	// the callbacks it decided (timguard_decision_duration_seconds).
	decisionTimes []decisionTimes
}

// decisionTimes sums a bot's timguard_decision_duration_seconds.
type decisionTimes struct {
	bot         string
	count       int // callbacks decided
	within2s    int // of them, decided within 2 s
	scrapeError error
}

// newRig starts Redis (with an fsync'ed append-only file when persist) and
// the fake IM server.
func newRig(t *testing.T, persist bool) *rig {
	t.Helper()
	r := &rig{t: t, binary: need(t), dir: t.TempDir(), prof: currentProfile()}
	redisDir := filepath.Join(r.dir, "redis")
	if err := os.MkdirAll(redisDir, 0o755); err != nil {
		t.Fatal(err)
	}
	var err error
	if r.redis, err = harness.StartRedis(harness.RedisOptions{Dir: redisDir, Persist: persist}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.redis.Stop)
	r.im = timtest.New(timtest.Options{})
	t.Cleanup(r.im.Close)
	r.mix = harness.NewResilienceMix(uint64(time.Now().UnixNano()), 16)
	harness.AddGroups(r.im, r.mix)
	r.store, err = redis.New(context.Background(), redis.Options{URL: r.redis.URL(), Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.store.Close() })
	t.Logf("profile %s: %g callbacks/s for %v; mix seed %d", r.prof.name, r.prof.rate, r.prof.duration, r.mix.Seed)
	return r
}

// config is the bots' configuration: REST calls to the fake, fast retries
// with enough attempts that a 30% failure rate dead-letters nothing.
func (r *rig) config() harness.BotConfig {
	return harness.BotConfig{
		Token: token, IMURL: r.im.URL(), RedisURL: r.redis.URL(),
		RetryMin: 20 * time.Millisecond, RetryMax: 300 * time.Millisecond, MaxAttempts: 60,
	}
}

// startBot starts a bot; it is killed when the test ends if still running,
// and its log is shown when the test failed.
func (r *rig) startBot(name string, cfg harness.BotConfig) *harness.Bot {
	r.t.Helper()
	b, err := harness.StartBot(context.Background(), name, r.binary, filepath.Join(r.dir, name), cfg, harness.ResilienceRules)
	if err != nil {
		r.t.Fatal(err)
	}
	r.bots = append(r.bots, b)
	r.t.Cleanup(func() {
		b.Kill()
		if r.t.Failed() {
			r.t.Logf("bot %s log ends:\n%s", b.Name, b.LogTail(20))
		}
	})
	return b
}

// driver sends the mix to targets, keeping every result.
func (r *rig) driver(failOver bool, targets ...*harness.Bot) *harness.Driver {
	urls := make([]string, len(targets))
	for i, b := range targets {
		urls[i] = b.URL
	}
	d := harness.NewDriver(harness.DriverConfig{
		Targets: urls, SDKAppID: timtest.DefaultSDKAppID, Token: token, Mix: r.mix, Keep: true, FailOver: failOver,
	})
	r.t.Cleanup(d.Close)
	return d
}

// load runs the profile's load in the background; breakIn runs at
// prof.breakAt into the measured load. It returns the stats.
func (r *rig) load(d *harness.Driver, breakIn func()) *harness.Stats {
	r.t.Helper()
	started := make(chan struct{})
	type out struct {
		st  *harness.Stats
		err error
	}
	done := make(chan out, 1)
	go func() {
		st, err := d.Run(context.Background(), harness.Load{
			Rate: r.prof.rate, Workers: 64, Duration: r.prof.duration,
			OnStart: func() { close(started) },
		})
		done <- out{st, err}
	}()
	if breakIn != nil {
		select {
		case <-started:
		case o := <-done:
			r.t.Fatalf("the load ended before its measured part began: %v", o.err)
		}
		time.Sleep(r.prof.breakAt)
		breakIn()
	}
	o := <-done
	if o.err != nil {
		r.t.Fatal(o.err)
	}
	return o.st
}

// settle waits until the outbox is idle and every action decided by a bot
// that was not killed has a final record. (A killed bot's last records may
// be lost with it: the tests that kill one check those actions otherwise.)
func (r *rig) settle(within time.Duration) {
	r.t.Helper()
	var deciders []string
	for _, b := range r.bots {
		if !b.Killed() {
			deciders = append(deciders, b.AuditPath())
		}
	}
	if err := harness.SettleDecidedIn(context.Background(), r.store, r.auditPaths(), deciders, within); err != nil {
		r.t.Fatal(err)
	}
}

func (r *rig) auditPaths() []string {
	out := make([]string, len(r.bots))
	for i, b := range r.bots {
		out[i] = b.AuditPath()
	}
	return out
}

// stop stops the bots still running with SIGTERM.
func (r *rig) stop() {
	r.t.Helper()
	for _, b := range r.bots {
		if b.Exited() {
			continue
		}
		r.decisionTimes = append(r.decisionTimes, scrapeDecisionTimes(b))
		if err := b.Stop(20 * time.Second); err != nil {
			r.t.Error(err)
		}
	}
}

// records reads every bot's audit log.
func (r *rig) records() []audit.Record {
	r.t.Helper()
	recs, err := harness.ReadAudit(r.auditPaths()...)
	if err != nil {
		r.t.Fatal(err)
	}
	return recs
}

// reconcile compares the audit logs with the fake's record.
func (r *rig) reconcile() *harness.Reconciliation {
	r.t.Helper()
	rec, err := harness.Reconcile(r.records(), r.im.Calls())
	if err != nil {
		r.t.Fatal(err)
	}
	r.t.Log(rec.Summary())
	if len(rec.Shared) > 0 {
		r.t.Fatalf("the mix asked twice for %v: the comparison needs one action per effect", rec.Shared)
	}
	if len(rec.Decided) == 0 {
		r.t.Fatal("no action was decided: the load did not exercise the executor")
	}
	return rec
}

// checkExactlyOnce fails for any action not done exactly once, any effect
// nobody decided, any action without exactly one done record and any
// dead-lettered action.
func checkExactlyOnce(t *testing.T, rec *harness.Reconciliation) {
	t.Helper()
	for what, ids := range map[string][]string{
		"was never done": rec.Missing, "was done more than once": rec.Repeated,
		"has not exactly one done record": rec.DoneRecords, "was dead-lettered": rec.Dead,
	} {
		for i, id := range ids {
			if i == 10 {
				t.Errorf("... %d more", len(ids)-10)
				break
			}
			t.Errorf("action %s %s", rec.Describe(id), what)
		}
	}
	for _, e := range rec.Unexpected {
		t.Errorf("the IM server carried out %v, which no decision asked for", e)
	}
	for id, results := range rec.Results {
		if results[audit.ResultLost] > 0 {
			t.Errorf("action %s was audited as lost", rec.Describe(id))
		}
	}
}

// table logs one row of the resilience table (grep "resilience table"):
// the callbacks answered, the actions decided and done exactly once, and the
// REST calls that carried out an action again (see repeatedCalls).
func table(t *testing.T, scenario string, st *harness.Stats, exactlyOnce, decided, repeats int, other string) {
	t.Helper()
	t.Logf("resilience table | %s | %d of %d callbacks answered | %d of %d actions done exactly once | %d repeated REST calls | %s |",
		scenario, st.Answered, st.Sent, exactlyOnce, decided, repeats, other)
}

// holdAnswers holds back, for hold, the answers of the next few calls to
// command the fake IM server carries out, and waits (up to within) until
// the bot has made one of them. The caller then breaks the store while the
// bot waits for that answer, so that a call is carried out whose outcome the
// bot must record after the break. It reports whether a call was held.
func (r *rig) holdAnswers(command string, hold, within time.Duration) bool {
	r.im.AnswerLate(command, hold, 3)
	before := len(r.im.EffectiveCallsTo(command))
	deadline := time.Now().Add(within)
	for {
		if len(r.im.EffectiveCallsTo(command)) > before {
			return true
		}
		if time.Now().After(deadline) {
			r.t.Logf("the bot made no %s call within %v of the hold", command, within)
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitLogged polls b's log until a record's message starts with msg, for
// at most within; it reports whether one did.
func waitLogged(b *harness.Bot, msg string, within time.Duration) bool {
	deadline := time.Now().Add(within)
	for {
		if data, err := os.ReadFile(b.LogPath()); err == nil {
			for _, line := range strings.Split(string(data), "\n") {
				var l struct {
					Msg string `json:"msg"`
				}
				if json.Unmarshal([]byte(line), &l) == nil && strings.HasPrefix(l.Msg, msg) {
					return true
				}
			}
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// repeatedCalls counts the effective REST calls that carried out an effect
// already carried out. Each effect is one action of the mix (reconcile
// refuses a mix that asks twice for one), so this is how many times an
// action was carried out again.
func repeatedCalls(done map[harness.Effect]int) int {
	n := 0
	for _, c := range done {
		n += max(c-1, 0)
	}
	return n
}

// checkAnswered fails for every request (to the targets that count) not
// answered with a valid envelope before the driver gave up on it. How long
// the answers took as the driver saw them is reported, not judged: that
// time includes the test process's own lateness (a request is timed from
// when it was due, and a starved driver sends late) and the kernel's, which
// on a busy machine can pass 2 s however fast the bot is. The IM server's
// 2 s is judged on the bot's own measurement (checkDecidedInTime).
func checkAnswered(t *testing.T, st *harness.Stats, counts func(harness.Result) bool) int {
	t.Helper()
	n, bad, late := 0, 0, 0
	var slowest time.Duration
	for _, res := range st.Results {
		if counts != nil && !counts(res) {
			continue
		}
		n++
		slowest = max(slowest, res.Latency)
		if res.Latency > answerWithin {
			late++
		}
		if !res.Answered() {
			bad++
			if bad <= 10 {
				t.Errorf("callback %d (%s, to target %d) answered %d %q after %v: want a valid envelope",
					res.Index, res.Class, res.Target, res.Status, res.Err, res.Latency)
			}
		}
	}
	if bad > 10 {
		t.Errorf("... %d callbacks in all were not answered", bad)
	}
	t.Logf("%d callbacks answered, the slowest after %v as the driver saw it (p99 %v; %d after more than %v)", n-bad, slowest, st.Latency.P99, late, answerWithin)
	return n
}

// scrapeDecisionTimes reads b's timguard_decision_duration_seconds: how
// many callbacks it decided, and how many of them within 2 s (the bucket
// le="2"), by its own clock, from arrival to the answer being ready,
// commit included.
func scrapeDecisionTimes(b *harness.Bot) decisionTimes {
	dt := decisionTimes{bot: b.URL}
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Get(b.URL + "/metrics")
	if err != nil {
		dt.scrapeError = err
		return dt
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		dt.scrapeError = err
		return dt
	}
	const name = "timguard_decision_duration_seconds"
	for _, line := range strings.Split(string(body), "\n") {
		series, value, ok := strings.Cut(line, " ")
		if !ok || !strings.HasPrefix(series, name+"_") {
			continue
		}
		v, err := strconv.ParseFloat(value, 64)
		if err != nil {
			continue
		}
		switch {
		case strings.HasPrefix(series, name+"_count{"):
			dt.count += int(v)
		case strings.HasPrefix(series, name+"_bucket{") && strings.Contains(series, `le="2"`):
			dt.within2s += int(v)
		}
	}
	return dt
}

// checkDecidedInTime fails for every callback a bot took more than the IM
// server's 2 s to decide, by the bot's own clock; callback.deadline (1.5 s)
// must bound it whatever the store and the IM server do. Two measurements:
// each bot stopped by stop reported its decision-time histogram (arrival
// to answer ready, commit included), and every bot, killed ones too, wrote
// latency_us in its audit records (arrival to decision).
func (r *rig) checkDecidedInTime() {
	r.t.Helper()
	if len(r.decisionTimes) == 0 {
		r.t.Error("no bot's decision times were read: call stop first")
	}
	for _, dt := range r.decisionTimes {
		switch {
		case dt.scrapeError != nil:
			r.t.Errorf("bot %s: /metrics: %v", dt.bot, dt.scrapeError)
		case dt.count > dt.within2s:
			r.t.Errorf("bot %s decided %d of %d callbacks after more than 2 s by its own clock", dt.bot, dt.count-dt.within2s, dt.count)
		default:
			r.t.Logf("bot %s decided %d callbacks, all within 2 s by its own clock", dt.bot, dt.count)
		}
	}
	n, late := 0, 0
	var slowest time.Duration
	for _, rec := range r.records() {
		if rec.Kind != audit.KindDecision {
			continue
		}
		n++
		took := time.Duration(rec.LatencyUS) * time.Microsecond
		slowest = max(slowest, took)
		if took > answerWithin {
			late++
			if late <= 10 {
				r.t.Errorf("event %s (%s) decided after %v by the bot's clock, past the IM server's %v", rec.EventID, rec.Command, took, answerWithin)
			}
		}
	}
	if late > 10 {
		r.t.Errorf("... %d callbacks in all were decided too late", late)
	}
	if n == 0 {
		r.t.Error("no decision record: the bots' latency cannot be checked")
	}
	r.t.Logf("%d callbacks decided, the slowest after %v by the bots' clocks", n, slowest)
}

// effectCalls returns the effective calls carrying e, in the order the fake
// finished them.
func effectCalls(calls []timtest.Call, e harness.Effect) []timtest.Call {
	var out []timtest.Call
	for _, c := range calls {
		effects, err := harness.Effects([]timtest.Call{c})
		if err == nil && effects[e] > 0 {
			out = append(out, c)
		}
	}
	return out
}

// checkBotLogs fails when a bot logged a panic, or wrote a line to its log
// that is not a JSON record (go-redis's own messages during an outage must
// go through the bot's logger). The last line of a killed bot may be cut.
func (r *rig) checkBotLogs() {
	r.t.Helper()
	for _, b := range r.bots {
		data, err := os.ReadFile(b.LogPath())
		if err != nil {
			r.t.Error(err)
			continue
		}
		if strings.Contains(string(data), "panic") {
			r.t.Errorf("bot %s logged a panic:\n%s", b.Name, b.LogTail(30))
		}
		lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
		if b.Killed() && len(lines) > 0 {
			lines = lines[:len(lines)-1]
		}
		bad := 0
		for _, l := range lines {
			if !json.Valid([]byte(l)) {
				if bad++; bad <= 3 {
					r.t.Errorf("bot %s logged a line that is not JSON: %q", b.Name, l)
				}
			}
		}
		if bad > 3 {
			r.t.Errorf("bot %s logged %d lines in all that are not JSON", b.Name, bad)
		}
	}
}

// get fetches url, for checks that a bot is up.
func get(url string) (int, error) {
	c := &http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}
