//go:build unix

package app

// Process tests: `bot serve` built and run as an operator runs it, stopped
// with real signals. Redis is real; a gate proxy between the bot and Redis
// holds the bot's store traffic so that callbacks are provably in flight
// (inside their store round trip) when SIGTERM arrives.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/timguard/timguard/audit"
	"github.com/timguard/timguard/internal/redistest"
	"github.com/timguard/timguard/store/redis"
	"github.com/timguard/timguard/tim"
	"github.com/timguard/timguard/tim/timtest"
)

// buildBot builds the bot into a temporary directory, with the race
// detector when the tests run with it (its packages are then already built
// for the test binary, so linking is all that is left).
func buildBot(t *testing.T) string {
	t.Helper()
	goTool, err := exec.LookPath("go") // go test puts GOROOT/bin first on PATH
	if err != nil {
		t.Fatalf("the go command is not on PATH: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "bot")
	args := []string{"build", "-o", bin, "-ldflags", "-X main.version=process-test"}
	if raceEnabled {
		args = append(args, "-race")
	}
	cmd := exec.Command(goTool, append(args, "../cmd/bot")...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// botProcess is one running `bot serve`.
type botProcess struct {
	*bot
	cmd    *exec.Cmd
	exited chan struct{}
	err    error // cmd.Wait's result, once exited is closed
}

// startProcess runs `bin serve --config cfg` with env added to the
// environment, and waits until it listens and /readyz answers 200.
func startProcess(t *testing.T, bin, cfg string, env []string, im *timtest.Server, auditPath string) *botProcess {
	t.Helper()
	p := &botProcess{bot: &bot{t: t, im: im, audit: auditPath, stderr: &lockedBuffer{}}, exited: make(chan struct{})}
	p.cmd = exec.Command(bin, "serve", "--config", cfg)
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout = io.Discard
	p.cmd.Stderr = p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start bot serve: %v", err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
	})

	deadline := time.Now().Add(60 * time.Second)
	for p.base == "" {
		if addr := p.logged("listening", "addr"); addr != "" {
			p.base = "http://" + addr
			break
		}
		select {
		case <-p.exited:
			t.Fatalf("bot serve exited at start (%v):\n%s", p.err, p.stderr.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("bot serve did not listen within 60s:\n%s", p.stderr.String())
		}
	}
	for {
		resp, err := http.Get(p.base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("bot serve not ready within 60s (%v):\n%s", err, p.stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// logged returns the attribute key of the first log line whose msg is msg
// ("" when there is none yet).
func (p *botProcess) logged(msg, key string) string {
	for _, line := range strings.Split(p.stderr.String(), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil && m["msg"] == msg {
			v, _ := m[key].(string)
			return v
		}
	}
	return ""
}

// waitLog waits until the log has a line with msg.
func (p *botProcess) waitLog(within time.Duration, msg string) {
	p.t.Helper()
	deadline := time.Now().Add(within)
	for !strings.Contains(p.stderr.String(), `"msg":"`+msg) {
		if time.Now().After(deadline) {
			p.t.Fatalf("the log has no %q after %v:\n%s", msg, within, p.stderr.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (p *botProcess) signal(sig os.Signal) {
	p.t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.t.Fatalf("signal %v: %v", sig, err)
	}
}

// wait waits for the process to exit and fails unless it exits 0 within
// d.
func (p *botProcess) wait(d time.Duration) {
	p.t.Helper()
	select {
	case <-p.exited:
	case <-time.After(d):
		p.t.Fatalf("bot serve did not exit within %v:\n%s", d, p.stderr.String())
	}
	if p.err != nil {
		p.t.Fatalf("bot serve exited with %v:\n%s", p.err, p.stderr.String())
	}
	if strings.Contains(p.stderr.String(), "DATA RACE") {
		p.t.Fatalf("the race detector fired in bot serve:\n%s", p.stderr.String())
	}
}

// gateProxy forwards TCP connections to a Redis server. While held, it
// keeps what clients send (remembering the bytes) and forwards nothing
// until released.
type gateProxy struct {
	ln     net.Listener
	target string

	mu     sync.Mutex
	cond   *sync.Cond
	held   bool
	closed bool
	seen   map[net.Conn][]byte // bytes each client sent while held
	conns  []net.Conn
	open   int           // client connections open
	delay  time.Duration // added to every chunk clients send
}

func startProxy(t *testing.T, target string) *gateProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &gateProxy{ln: ln, target: target, seen: map[net.Conn][]byte{}}
	p.cond = sync.NewCond(&p.mu)
	go p.serve()
	t.Cleanup(p.close)
	return p
}

func (p *gateProxy) addr() string { return p.ln.Addr().String() }

func (p *gateProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		go p.handle(c)
	}
}

func (p *gateProxy) handle(c net.Conn) {
	s, err := net.Dial("tcp", p.target)
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		c.Close()
		s.Close()
		return
	}
	p.conns = append(p.conns, c, s)
	p.open++
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		p.open--
		p.mu.Unlock()
	}()
	go func() {
		_, _ = io.Copy(c, s)
		c.Close()
		s.Close()
	}()
	buf := make([]byte, 64<<10)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			p.gate(c, buf[:n])
			if _, err := s.Write(buf[:n]); err != nil {
				break
			}
		}
		if err != nil {
			break
		}
	}
	c.Close()
	s.Close()
}

// gate records b while held and waits until released, or delays it.
func (p *gateProxy) gate(c net.Conn, b []byte) {
	p.mu.Lock()
	if p.held {
		p.seen[c] = append(p.seen[c], b...)
	}
	for p.held && !p.closed {
		p.cond.Wait()
	}
	delay := p.delay
	p.mu.Unlock()
	if delay > 0 {
		time.Sleep(delay)
	}
}

// setDelay slows every chunk clients send by d.
func (p *gateProxy) setDelay(d time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.delay = d
}

func (p *gateProxy) hold() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.held = true
	p.seen = map[net.Conn][]byte{}
}

func (p *gateProxy) release() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.held = false
	p.cond.Broadcast()
}

// heldAll reports whether every marker is in what some client sent while
// held.
func (p *gateProxy) heldAll(markers []string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, m := range markers {
		found := false
		for _, b := range p.seen {
			if bytes.Contains(b, []byte(m)) {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// count is the number of client connections open.
func (p *gateProxy) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.open
}

func (p *gateProxy) close() {
	p.mu.Lock()
	p.closed = true
	p.cond.Broadcast()
	conns := p.conns
	p.mu.Unlock()
	p.ln.Close()
	for _, c := range conns {
		c.Close()
	}
}

// processConfig is the configuration both processes use; secrets come from
// the environment, as with systemd's EnvironmentFile or a container's env.
func processConfig(fake, prefix, auditFile string, grace time.Duration) string {
	return fmt.Sprintf(`listen: "127.0.0.1:0"
callback:
  token: ${TIMGUARD_CALLBACK_TOKEN}
  deadline: 1900ms
tencent:
  sdk_app_id: %d
  admin: %s
  secret_key: ${TIMGUARD_SECRET_KEY}
  api_base: %s
  rate_limit: 50
  timeout: 1s
store:
  redis_url: ${TIMGUARD_REDIS_URL}
  key_prefix: %q
  timeout: 1800ms
  # Each callback sends its round trip on a connection of its own: the test
  # holds Redis traffic at a proxy until every callback's commands are there,
  # which calls waiting in the batcher for a free pipeline never are.
  batch: {max_size: 1}
rules_file: rules.yaml
admin:
  token: ${TIMGUARD_ADMIN_TOKEN}
audit:
  file: %s
executor:
  lease: 3s
  retry_min: 50ms
  retry_max: 500ms
  workers: 2
  shutdown_grace: %s
log:
  level: debug
`, timtest.DefaultSDKAppID, timtest.DefaultAdmin, fake, prefix, auditFile, grace)
}

const processRules = `version: 1
rules:
  - name: mute-on-request
    on: message
    if: message.text == "mute me"
    actions: [{mute: 10m}]
`

// postMessage sends a signed BeforeSendMsg callback and returns the status
// and body; it may run on any goroutine.
func postMessage(client *http.Client, base, group, user, text string, random int) (int, []byte, error) {
	body, _ := json.Marshal(map[string]any{
		"CallbackCommand": tim.CmdBeforeSendMsg, "GroupId": group, "Type": "Public",
		"From_Account": user, "Operator_Account": user, "Random": random,
		"MsgBody":   []map[string]any{{"MsgType": "TIMTextElem", "MsgContent": map[string]any{"Text": text}}},
		"EventTime": time.Now().UnixMilli(),
	})
	u := timtest.SignedURL(base, "/callback", timtest.DefaultSDKAppID, tim.CmdBeforeSendMsg, e2eToken, time.Now())
	resp, err := client.Post(u, "application/json", bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	return resp.StatusCode, out, err
}

// TestProcessSIGTERMAnswersCallbacksInFlightAndLosesNoAction runs `bot
// serve`, reloads it with SIGHUP, and stops it with SIGTERM while
// callbacks wait inside their store round trip and the executor is busy
// with slow REST calls. Every callback in flight is answered, the process
// exits 0 in its grace, nothing stays claimed, and a second process on the
// same Redis carries out what was left: every decided action is done
// exactly once at the IM server.
func TestProcessSIGTERMAnswersCallbacksInFlightAndLosesNoAction(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the bot as a process")
	}
	redisURL := redistest.URL(t)
	ropts, err := goredis.ParseURL(redisURL)
	if err != nil || ropts.TLSConfig != nil || ropts.Network != "tcp" {
		t.Skipf("the process test proxies a plain redis:// URL; %s=%s is another kind", redistest.EnvURL, redisURL)
	}
	prefix := keyPrefix(t, redisURL)
	bin := buildBot(t)

	im := timtest.New(timtest.Options{})
	t.Cleanup(im.Close)
	// Every REST call takes 300ms, so the executor is in the middle of
	// calls when SIGTERM comes.
	im.SetFaults(timtest.Faults{SlowRate: 1, SlowDelay: 300 * time.Millisecond})
	const (
		preGroups = 6
		inFlight  = 8
		grace     = 5 * time.Second
		flight    = "@TGS#inflight"
	)
	for g := range preGroups {
		im.AddGroup(timtest.Group{ID: fmt.Sprintf("@TGS#pre-%d", g), Type: "Public", Owner: "olga", Members: []string{fmt.Sprintf("pre-%d", g)}})
	}
	var flyers []string
	for i := range inFlight {
		flyers = append(flyers, fmt.Sprintf("inflight-%02d", i))
	}
	im.AddGroup(timtest.Group{ID: flight, Type: "Public", Owner: "olga", Members: flyers})

	proxy := startProxy(t, ropts.Addr)
	client := &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	defer client.CloseIdleConnections()
	viaProxy := &url.URL{Scheme: "redis", Host: proxy.addr(), Path: "/" + strconv.Itoa(ropts.DB), RawQuery: "pool_size=64"}
	if ropts.Password != "" {
		viaProxy.User = url.UserPassword(ropts.Username, ropts.Password)
	}
	dir := t.TempDir()
	write(t, filepath.Join(dir, "rules.yaml"), processRules)
	write(t, filepath.Join(dir, "one.yaml"), processConfig(im.URL(), prefix, "audit-1.jsonl", grace))
	write(t, filepath.Join(dir, "two.yaml"), processConfig(im.URL(), prefix, "audit-2.jsonl", grace))
	env := func(redisURL string) []string {
		return []string{"TIMGUARD_CALLBACK_TOKEN=" + e2eToken, "TIMGUARD_ADMIN_TOKEN=" + e2eAdminTok,
			"TIMGUARD_SECRET_KEY=" + timtest.DefaultSecretKey, "TIMGUARD_REDIS_URL=" + redisURL}
	}

	one := startProcess(t, bin, filepath.Join(dir, "one.yaml"), env(viaProxy.String()), im, filepath.Join(dir, "audit-1.jsonl"))
	// The version the Dockerfile and the docs set with -ldflags -X.
	if v := one.logged("timguard starting", "version"); v != "process-test" {
		t.Errorf("bot serve says it is version %q; -X main.version=process-test did not reach it", v)
	}

	// SIGHUP reloads: the start counts one successful load, SIGHUP another.
	one.signal(syscall.SIGHUP)
	one.waitMetric(30*time.Second, "the SIGHUP reload", func(m metricSet) bool {
		ok, _ := m.reloads()
		return ok == 2
	})
	one.waitLog(10*time.Second, "SIGHUP: reloading")

	// Work for the executor: one mute in each of six groups.
	for g := range preGroups {
		if r := one.message(fmt.Sprintf("@TGS#pre-%d", g), fmt.Sprintf("pre-%d", g), "mute me"); r.ErrorCode != 0 {
			t.Fatalf("pre-%d answered %+v", g, r)
		}
	}
	waitFor(t, 30*time.Second, "the executor's first mute", func() bool {
		return len(im.EffectiveCallsTo(tim.CommandForbidSendMsg)) > 0
	})

	// The callbacks held below must each find an idle, initialised Redis
	// connection: a new one's handshake would be held before the
	// callback's commands are sent. Slowed Redis and a burst of callbacks
	// make the bot open (and keep) enough of them.
	proxy.setDelay(100 * time.Millisecond)
	for try := 0; proxy.count() < 2*inFlight; try++ {
		if try == 5 {
			t.Fatalf("the bot keeps %d Redis connections after bursts of callbacks, want %d", proxy.count(), 2*inFlight)
		}
		var wg sync.WaitGroup
		for i := range 3 * inFlight {
			wg.Go(func() {
				if status, body, err := postMessage(client, one.base, flight, "warm-up", "hello", 100*try+i); err != nil || status != http.StatusOK {
					t.Errorf("warm-up callback: %d %s %v", status, body, err)
				}
			})
		}
		wg.Wait()
	}
	proxy.setDelay(0)

	// Callbacks in flight: Redis traffic is held, every callback has sent
	// its store round trip (its user appears in what the proxy holds).
	proxy.hold()
	heldAt := time.Now()
	type answer struct {
		user   string
		status int
		body   []byte
		err    error
	}
	answers := make(chan answer, inFlight)
	var answered atomic.Int32
	for i, user := range flyers {
		go func() {
			status, body, err := postMessage(client, one.base, flight, user, "mute me", 1000+i)
			answered.Add(1)
			answers <- answer{user, status, body, err}
		}()
	}
	waitFor(t, 30*time.Second, "every callback to reach the store", func() bool { return proxy.heldAll(flyers) })

	one.signal(syscall.SIGTERM)
	termAt := time.Now()
	one.waitLog(30*time.Second, "shutting down: no new callbacks; answering those in flight")
	// The listener closes: a new callback finds nobody.
	addr := strings.TrimPrefix(one.base, "http://")
	waitFor(t, 10*time.Second, "the listener to close", func() bool {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return false
		}
		return true
	})
	if n := answered.Load(); n != 0 {
		t.Fatalf("%d callbacks were answered while their store round trip was held", n)
	}
	held := time.Since(heldAt)
	proxy.release()

	for range inFlight {
		var a answer
		select {
		case a = <-answers:
		case <-time.After(60 * time.Second):
			t.Fatalf("callbacks in flight were not answered within 60s:\n%s", one.stderr.String())
		}
		var r tim.Reply
		if a.err != nil || a.status != http.StatusOK || json.Unmarshal(a.body, &r) != nil || r.ActionStatus != "OK" || r.ErrorCode != 0 {
			t.Errorf("%s in flight at SIGTERM: %d %s %v; want 200 with an OK envelope", a.user, a.status, a.body, a.err)
		}
	}
	one.wait(2*grace + 20*time.Second)
	t.Logf("SIGTERM to exit: %v (redis held for %v); executor done at exit: %d mute calls",
		time.Since(termAt).Round(time.Millisecond), held.Round(time.Millisecond), len(im.EffectiveCallsTo(tim.CommandForbidSendMsg)))
	one.waitLog(0, "HTTP server stopped; stopping the executor")
	one.waitLog(0, "executor stopped")
	one.checkNoSecrets()

	st, err := redis.New(context.Background(), redis.Options{URL: redisURL, KeyPrefix: prefix, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	stats, err := st.Stats(context.Background(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("outbox after the first process: %+v", stats)
	// A store call that outlived store.timeout while held may have claimed
	// in Redis after its caller gave up; its lease then runs out. Only a
	// hold shorter than that proves nothing may stay claimed.
	if stats.Claimed != 0 && held < time.Second {
		t.Errorf("%d actions are still claimed after a graceful stop; they wait for their lease instead of being handed back", stats.Claimed)
	}
	if stats.Dead != 0 {
		t.Errorf("%d actions were dead-lettered", stats.Dead)
	}

	// The decisions of the first process name every action decided.
	decided := map[string]audit.ActionRef{}
	decidedUsers := map[string]bool{}
	for _, r := range one.records() {
		if r.Kind != audit.KindDecision {
			continue
		}
		decidedUsers[r.User] = true
		for _, a := range r.Actions {
			if a.Kind == "mute" && a.ID != "" {
				decided[a.ID] = audit.ActionRef{Group: r.Group, User: r.User}
			}
		}
		if strings.Contains(r.Error, "commit") {
			t.Errorf("decision %s was not committed: %s", r.EventID, r.Error)
		}
	}
	for _, u := range flyers {
		if !decidedUsers[u] {
			t.Errorf("no decision for %s, a callback in flight at SIGTERM", u)
		}
	}
	if len(decided) != preGroups+inFlight {
		t.Fatalf("%d mutes decided, want %d", len(decided), preGroups+inFlight)
	}

	// A second process on the same Redis carries out what was left.
	two := startProcess(t, bin, filepath.Join(dir, "two.yaml"), env(redisURL), im, filepath.Join(dir, "audit-2.jsonl"))
	waitFor(t, 60*time.Second, "every decided mute at the IM server", func() bool {
		for _, a := range decided {
			if im.MuteUntil(a.Group, a.User).IsZero() {
				return false
			}
		}
		s, err := st.Stats(context.Background(), time.Now())
		return err == nil && s.Ready == 0 && s.Claimed == 0
	})
	two.signal(syscall.SIGTERM)
	two.wait(2*grace + 20*time.Second)

	type member struct{ group, user string }
	calls := map[member]int{}
	for _, c := range im.EffectiveCallsTo(tim.CommandForbidSendMsg) {
		m := body(t, c)
		users, _ := m["Members_Account"].([]any)
		for _, u := range users {
			calls[member{m["GroupId"].(string), u.(string)}]++
		}
	}
	results := map[string][]string{}
	byProcess := map[string]int{}
	for i, p := range []*botProcess{one, two} {
		for _, r := range p.records() {
			if r.Kind == audit.KindAction {
				results[r.Actions[0].ID] = append(results[r.Actions[0].ID], r.Result)
				if r.Result == audit.ResultDone {
					byProcess[fmt.Sprint("process ", i+1)]++
				}
			}
		}
	}
	for id, a := range decided {
		if n := calls[member{a.Group, a.User}]; n != 1 {
			t.Errorf("%s muted in %s %d times at the IM server, want once", a.User, a.Group, n)
		}
		done := 0
		for _, res := range results[id] {
			switch res {
			case audit.ResultDone:
				done++
			case audit.ResultRetry:
			default:
				t.Errorf("action %s (%s): result %s", id, a.User, res)
			}
		}
		if done != 1 {
			t.Errorf("action %s (%s) has %d done records, want 1: %v", id, a.User, done, results[id])
		}
	}
	if len(calls) != len(decided) {
		t.Errorf("%d members muted at the IM server, %d mutes decided", len(calls), len(decided))
	}
	t.Logf("mutes done: %v", byProcess)
}
