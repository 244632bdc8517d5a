package actions

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/timguard/timguard/audit"
	"github.com/timguard/timguard/rolecache"
	"github.com/timguard/timguard/rules"
	"github.com/timguard/timguard/store"
	"github.com/timguard/timguard/tim"
	"github.com/timguard/timguard/tim/timtest"
)

// imRig is an executor setup against the fake IM server.
type imRig struct {
	im     *timtest.Server
	rate   int
	grants *grantLog
}

func newIMRig(t testing.TB, rate int, opts timtest.Options) *imRig {
	t.Helper()
	im := timtest.New(opts)
	t.Cleanup(im.Close)
	return &imRig{im: im, rate: rate, grants: &grantLog{}}
}

// grantLog records, for every call the shared budget granted, the span of
// time in which the grant was made: from before the store was asked to
// after it answered. tencent.rate_limit is kept by the grants; when the
// fake received the calls also depends on the scheduler, and on a busy
// machine calls granted in different seconds can arrive together.
type grantLog struct {
	mu    sync.Mutex
	spans [][2]time.Time
}

type loggedLimiter struct {
	store.Limiter
	log *grantLog
}

func (l loggedLimiter) Allow(ctx context.Context, n int, perSecond int) (bool, time.Duration, error) {
	before := time.Now()
	ok, wait, err := l.Limiter.Allow(ctx, n, perSecond)
	if ok && err == nil && n > 0 {
		after := time.Now()
		l.log.mu.Lock()
		for range n {
			l.log.spans = append(l.log.spans, [2]time.Time{before, after})
		}
		l.log.mu.Unlock()
	}
	return ok, wait, err
}

// maxGrantsPerSecond returns the most grants certainly made within one
// second: those whose whole span lies in one window [w, w+1s). A stall
// widens the spans and can only hide grants, never add one, so a figure
// above the limit means the budget let too many calls through.
func (g *grantLog) maxGrantsPerSecond() int {
	g.mu.Lock()
	spans := slices.Clone(g.spans)
	g.mu.Unlock()
	best := 0
	for _, w := range spans {
		n := 0
		for _, s := range spans {
			if !s[0].Before(w[0]) && s[1].Sub(w[0]) < time.Second {
				n++
			}
		}
		best = max(best, n)
	}
	return best
}

// checkRate asserts that the shared budget kept the rate: no one second
// holds more grants than rig.rate, and every call the fake carried out was
// granted (so the calls the grants count are all the calls).
func (r *imRig) checkRate(t testing.TB) {
	t.Helper()
	if got := r.grants.maxGrantsPerSecond(); got > r.rate {
		t.Errorf("%d calls granted in one second, limit %d", got, r.rate)
	}
	r.grants.mu.Lock()
	granted := len(r.grants.spans)
	r.grants.mu.Unlock()
	if n := len(r.im.Calls()); n > granted {
		t.Errorf("the fake received %d calls, the budget granted %d", n, granted)
	}
	t.Logf("at most %d calls granted in one second; %d arrived at the fake in one second (the scheduler may bunch them)", r.grants.maxGrantsPerSecond(), r.im.MaxCallsPerSecond())
}

// client returns a REST client for the fake whose calls share s's budget.
func (r *imRig) client(t testing.TB, s store.Limiter) *tim.Client {
	t.Helper()
	return r.clientWithTimeout(t, s, tim.DefaultTimeout)
}

// clientWithTimeout is client with another timeout per call.
func (r *imRig) clientWithTimeout(t testing.TB, s store.Limiter, timeout time.Duration) *tim.Client {
	t.Helper()
	cfg := r.im.ClientConfig()
	cfg.Limiter = &SharedLimiter{Store: loggedLimiter{Limiter: s, log: r.grants}, PerSecond: r.rate}
	cfg.Timeout = timeout
	c, err := tim.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// executor builds an executor on s calling the fake.
func (r *imRig) executor(t testing.TB, s store.Store, log *auditLog, mod func(*Config)) *Executor {
	t.Helper()
	c := r.client(t, s)
	return newTestExecutor(t, s, c, log, mod)
}

// run starts e.Run and returns a function that stops it and waits.
func run(t testing.TB, e *Executor) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
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

// waitIdle waits until nothing is due or claimed in the outbox.
func waitIdle(t testing.TB, s store.Outbox, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		st, err := s.Stats(context.Background(), time.Now())
		if err == nil && st.Due == 0 && st.Claimed == 0 && st.Ready == 0 {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	st, err := s.Stats(context.Background(), time.Now())
	t.Fatalf("the outbox is not idle after %v: %+v, %v", within, st, err)
}

// effective counts, per member, the calls to command that the fake carried
// out for group.
func effective(t testing.TB, im *timtest.Server, command, field string) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, c := range im.EffectiveCallsTo(command) {
		var body map[string]json.RawMessage
		if err := json.Unmarshal(c.Body, &body); err != nil {
			t.Fatal(err)
		}
		var group string
		_ = json.Unmarshal(body["GroupId"], &group)
		var list []string
		_ = json.Unmarshal(body[field], &list)
		if len(list) == 0 {
			out[group+"/"]++
		}
		for _, m := range list {
			out[group+"/"+m]++
		}
	}
	return out
}

func TestAJoinWaveIsOneCallAgainstTheFakeServer(t *testing.T) {
	for _, sk := range storeKinds() {
		t.Run(sk.name, func(t *testing.T) {
			s, _ := sk.open(t)
			rig := newIMRig(t, 20, timtest.Options{})
			wave := members("newbie", 300)
			rig.im.AddGroup(timtest.Group{ID: "@TGS#wave", Type: "Public", Owner: "olga", Admins: []string{"adam"}, Members: append(wave, "carol")})
			log := &auditLog{}
			e := rig.executor(t, s, log, nil)
			now := time.Now()
			as := many(string(rules.ActMute), "@TGS#wave", tim.GroupPublic, wave, 300, "")
			as = append(as, act("admin", string(rules.ActMute), "@TGS#wave", tim.GroupPublic, "adam", 300, ""))
			enqueue(t, s, now, as...)
			stop := run(t, e)
			waitIdle(t, s, 90*time.Second)
			stop()

			forbid := rig.im.CallsTo(tim.CommandForbidSendMsg)
			if len(forbid) != 1 || !forbid[0].Effective() {
				t.Fatalf("forbid_send_msg calls %+v, want exactly one", forbid)
			}
			var body tim.ForbidSendMsgRequest
			if err := json.Unmarshal(forbid[0].Body, &body); err != nil {
				t.Fatal(err)
			}
			if len(body.Members) != 300 || body.MuteTime != 300 || body.GroupID != "@TGS#wave" || slices.Contains(body.Members, "adam") {
				t.Errorf("forbid_send_msg for %d members, %ds, group %s", len(body.Members), body.MuteTime, body.GroupID)
			}
			if n := len(rig.im.CallsTo(tim.CommandGetGroupMemberInfo)); n != 1 {
				t.Errorf("%d role lookups, want 1", n)
			}
			if n := len(rig.im.Calls()); n != 2 {
				t.Errorf("%d calls in all, want the role lookup and the mute", n)
			}
			rig.checkRate(t)
			st := rig.im.Group("@TGS#wave")
			for _, m := range wave {
				if until := st.Muted[m]; until.Before(now.Add(290*time.Second)) || until.After(now.Add(time.Minute*6)) {
					t.Errorf("%s muted until %v", m, until)
				}
			}
			if _, muted := st.Muted["adam"]; muted {
				t.Error("the admin was muted")
			}
			res := log.results(t)
			if res["admin"] != audit.ResultSkipped {
				t.Errorf("the admin's mute: %s, want skipped", res["admin"])
			}
			done := 0
			for _, r := range res {
				if r == audit.ResultDone {
					done++
				}
			}
			if done != 300 {
				t.Errorf("%d done records, want 300", done)
			}
		})
	}
}

func TestTwoExecutorsKeepTheRateLimitTogether(t *testing.T) {
	for _, sk := range storeKinds() {
		t.Run(sk.name, func(t *testing.T) {
			s, reopen := sk.open(t)
			s2 := reopen(t)
			rig := newIMRig(t, 20, timtest.Options{})
			var as []store.Action
			for i := range 40 {
				g := fmt.Sprintf("@TGS#g%02d", i)
				rig.im.AddGroup(timtest.Group{ID: g, Type: "Public", Owner: "olga", Members: []string{"carol"}})
				a := act("kick-"+g, string(rules.ActKick), g, tim.GroupPublic, "carol", 0, "spam")
				a.Roles = []string{store.RoleOwner, store.RoleAdmin, string(rules.RoleAppAdmin)}
				as = append(as, a)
			}
			log := &auditLog{}
			a := rig.executor(t, s, log, nil)
			b := rig.executor(t, s2, log, nil)
			enqueue(t, s, time.Now(), as...)
			stopA, stopB := run(t, a), run(t, b)
			waitIdle(t, s, 90*time.Second)
			stopA()
			stopB()
			if got := effective(t, rig.im, tim.CommandDeleteGroupMember, "MemberToDel_Account"); len(got) != 40 {
				t.Errorf("%d members removed, want 40: %v", len(got), got)
			}
			rig.checkRate(t)
			for id, r := range log.results(t) {
				if r != audit.ResultDone {
					t.Errorf("%s: %s", id, r)
				}
			}
		})
	}
}

func TestFaultsNeitherRepeatNorLoseActions(t *testing.T) {
	for _, sk := range storeKinds() {
		t.Run(sk.name, func(t *testing.T) {
			s, reopen := sk.open(t)
			s2 := reopen(t)
			// The fake admits 15 calls a second while the executors allow
			// themselves 20: some calls are answered 60007.
			rig := newIMRig(t, 20, timtest.Options{RateLimit: 15})
			rig.im.SetFaults(timtest.Faults{ErrorRate: 0.3, DropRate: 0.03, SlowRate: 0.1, SlowDelay: 150 * time.Millisecond, Seed: 7})
			var as []store.Action
			want := map[string]int{}
			for i := range 12 {
				g := fmt.Sprintf("@TGS#f%02d", i)
				ms := members("m", 8)
				rig.im.AddGroup(timtest.Group{ID: g, Type: "Public", Owner: "olga", Admins: []string{"adam"}, Members: append(ms, "k1", "k2")})
				as = append(as, many(string(rules.ActMute), g, tim.GroupPublic, ms, 600, "")...)
				as = append(as, many(string(rules.ActKick), g, tim.GroupPublic, []string{"k1", "k2"}, 0, "spam")...)
				as = append(as, act("warn-"+g, string(rules.ActWarn), g, tim.GroupPublic, "", 0, "Behave."))
				for _, m := range ms {
					want[tim.CommandForbidSendMsg+" "+g+"/"+m] = 1
				}
				want[tim.CommandDeleteGroupMember+" "+g+"/k1"] = 1
				want[tim.CommandDeleteGroupMember+" "+g+"/k2"] = 1
				want[tim.CommandSendGroupSystemNotification+" "+g+"/"] = 1
			}
			// Notices are at most once: one whose call was sent but not
			// answered (a dropped connection here) may have been delivered,
			// and the IM server has no key to drop a repeat, so it is
			// dead-lettered instead of sent again.
			atMostOnce := func(key string) bool {
				return strings.HasPrefix(key, tim.CommandSendGroupSystemNotification+" ")
			}
			log := &auditLog{}
			mod := func(c *Config) {
				c.MaxAttempts, c.MinBackoff, c.MaxBackoff = 30, 20*time.Millisecond, 300*time.Millisecond
			}
			a := rig.executor(t, s, log, mod)
			b := rig.executor(t, s2, log, mod)
			enqueue(t, s, time.Now(), as...)
			stopA, stopB := run(t, a), run(t, b)
			waitIdle(t, s, 120*time.Second)
			stopA()
			stopB()

			got := map[string]int{}
			for cmd, field := range map[string]string{
				tim.CommandForbidSendMsg:               "Members_Account",
				tim.CommandDeleteGroupMember:           "MemberToDel_Account",
				tim.CommandSendGroupSystemNotification: "ToMembers_Account",
			} {
				for k, n := range effective(t, rig.im, cmd, field) {
					got[cmd+" "+k] = n
				}
			}
			for k, n := range want {
				if got[k] != n && !(atMostOnce(k) && got[k] == 0) {
					t.Errorf("%s carried out %d times, want once", k, got[k])
				}
			}
			for k := range got {
				if _, ok := want[k]; !ok {
					t.Errorf("unexpected effect %s", k)
				}
			}
			results := log.byAction(t)
			for _, a := range as {
				dones, lost := 0, 0
				for _, r := range results[a.ID] {
					switch {
					case r.Result == audit.ResultDone:
						dones++
					case r.Result == audit.ResultRetry:
					case r.Result == audit.ResultDead && a.Kind == string(rules.ActWarn) && strings.Contains(r.Error, "may have delivered the notice"):
						lost++
					default:
						t.Errorf("%s: result %s (%s)", a.ID, r.Result, r.Error)
					}
				}
				if dones+lost != 1 {
					t.Errorf("%s has %d done and %d dead records, want one of them", a.ID, dones, lost)
				}
				if lost == 1 && got[tim.CommandSendGroupSystemNotification+" "+a.Group+"/"] != 0 {
					t.Errorf("%s: dead-lettered but carried out", a.ID)
				}
			}
			faults := 0
			for _, c := range rig.im.Calls() {
				if !c.Effective() {
					faults++
				}
			}
			if faults == 0 {
				t.Error("no call failed; the faults were not injected")
			}
			rig.checkRate(t)
			t.Logf("%d calls, %d failed", len(rig.im.Calls()), faults)
		})
	}
}

func TestAPermanentFailureIsDeadLetteredOnce(t *testing.T) {
	for _, sk := range storeKinds() {
		t.Run(sk.name, func(t *testing.T) {
			s, _ := sk.open(t)
			rig := newIMRig(t, 50, timtest.Options{})
			rig.im.AddGroup(timtest.Group{ID: grp, Type: "Public", Owner: "olga", Members: []string{"carol", "dave"}})
			rig.im.FailNext(tim.CommandForbidSendMsg, tim.CodeBadParameter, 1)
			log := &auditLog{}
			e := rig.executor(t, s, log, nil)
			all := []string{store.RoleOwner, store.RoleAdmin, string(rules.RoleAppAdmin)}
			bad := act("bad", string(rules.ActMute), grp, tim.GroupPublic, "carol", 600, "")
			gone := act("gone", string(rules.ActKick), "@TGS#nosuchgroup", tim.GroupPublic, "dave", 0, "spam")
			bad.Roles, gone.Roles = all, all
			enqueue(t, s, time.Now(), bad, gone)
			stop := run(t, e)
			waitIdle(t, s, 60*time.Second)
			time.Sleep(200 * time.Millisecond) // more polls: nothing comes back
			stop()
			if got := log.results(t); !mapsEqual(got, map[string]string{"bad": "dead", "gone": "dead"}) {
				t.Errorf("results %v, want both dead once", got)
			}
			if n := len(rig.im.CallsTo(tim.CommandForbidSendMsg)); n != 1 {
				t.Errorf("%d forbid_send_msg calls, want 1", n)
			}
			if n := len(rig.im.CallsTo(tim.CommandDeleteGroupMember)); n != 1 {
				t.Errorf("%d delete_group_member calls, want 1", n)
			}
			dead, err := s.Dead(context.Background(), 10)
			if err != nil || len(dead) != 2 {
				t.Fatalf("dead letters %+v, %v", dead, err)
			}
			for _, d := range dead {
				if d.Reason == "" {
					t.Errorf("dead letter %s without a reason", d.ID)
				}
			}
		})
	}
}

// killableStore lets a test kill its executor's access to the store, as if
// the process died: every call fails from then on.
type killableStore struct {
	store.Store
	mu   sync.Mutex
	dead bool
}

func (k *killableStore) kill() {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.dead = true
}

func (k *killableStore) check() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.dead {
		return fmt.Errorf("killed: %w", store.ErrUnavailable)
	}
	return nil
}

func (k *killableStore) Claim(ctx context.Context, now time.Time, limit int, lease time.Duration) ([]store.Claimed, error) {
	if err := k.check(); err != nil {
		return nil, err
	}
	return k.Store.Claim(ctx, now, limit, lease)
}

func (k *killableStore) Complete(ctx context.Context, c store.Claimed) error {
	if err := k.check(); err != nil {
		return err
	}
	return k.Store.Complete(ctx, c)
}

func (k *killableStore) Retry(ctx context.Context, c store.Claimed, at time.Time, e string) error {
	if err := k.check(); err != nil {
		return err
	}
	return k.Store.Retry(ctx, c, at, e)
}

func (k *killableStore) Release(ctx context.Context, cs ...store.Claimed) error {
	if err := k.check(); err != nil {
		return err
	}
	return k.Store.Release(ctx, cs...)
}

func (k *killableStore) DeadLetter(ctx context.Context, c store.Claimed, reason string) error {
	if err := k.check(); err != nil {
		return err
	}
	return k.Store.DeadLetter(ctx, c, reason)
}

// stuckClient blocks every call until released; released calls fail
// without reaching the server.
type stuckClient struct {
	*tim.Client
	entered chan struct{}
	once    sync.Once
	release chan struct{}
}

func (s *stuckClient) wait(ctx context.Context) error {
	s.once.Do(func() { close(s.entered) })
	select {
	case <-s.release:
		return &tim.TransportError{Command: "stuck", Op: tim.OpSend, Err: fmt.Errorf("the process was killed")}
	case <-ctx.Done():
		return &tim.TransportError{Command: "stuck", Op: tim.OpSend, Err: ctx.Err(), CallerDone: true}
	}
}

func (s *stuckClient) ForbidSendMsg(ctx context.Context, req tim.ForbidSendMsgRequest) error {
	return s.wait(ctx)
}

func (s *stuckClient) DeleteGroupMember(ctx context.Context, req tim.DeleteGroupMemberRequest) error {
	return s.wait(ctx)
}

func TestKillingAnExecutorMidRunLosesNoAction(t *testing.T) {
	tests := []struct {
		name string
		// kill stops executor A: abruptly (its store access dies, then its
		// context ends) or not at all (it hangs in its calls).
		hang bool
	}{
		{"an executor killed after it claimed", false},
		{"an executor that hangs in its calls", true},
	}
	for _, sk := range storeKinds() {
		for _, tt := range tests {
			t.Run(sk.name+"/"+tt.name, func(t *testing.T) {
				s, reopen := sk.open(t)
				rig := newIMRig(t, 50, timtest.Options{})
				var as []store.Action
				want := map[string]int{}
				for i := range 5 {
					g := fmt.Sprintf("@TGS#k%d", i)
					ms := members("m", 10)
					rig.im.AddGroup(timtest.Group{ID: g, Type: "Public", Owner: "olga", Members: append(ms, "x")})
					as = append(as, many(string(rules.ActMute), g, tim.GroupPublic, ms, 600, "")...)
					as = append(as, act("kick-"+g, string(rules.ActKick), g, tim.GroupPublic, "x", 0, "spam"))
					for _, m := range ms {
						want[g+"/"+m] = 1
					}
				}
				all := []string{store.RoleOwner, store.RoleAdmin, string(rules.RoleAppAdmin)}
				for i := range as {
					as[i].Roles = all
				}
				enqueue(t, s, time.Now(), as...)

				const lease = time.Second
				ks := &killableStore{Store: reopen(t)}
				stuck := &stuckClient{Client: rig.client(t, s), entered: make(chan struct{}), release: make(chan struct{})}
				logA := &auditLog{}
				a, err := New(Config{Store: ks, Client: stuck, Roles: rolecache.New(rolecache.Config{Client: stuck, Store: ks}),
					Audit: logA, Lease: lease, Grace: time.Millisecond, PollInterval: 10 * time.Millisecond})
				if err != nil {
					t.Fatal(err)
				}
				ctxA, cancelA := context.WithCancel(context.Background())
				defer cancelA()
				doneA := make(chan error, 1)
				go func() { doneA <- a.Run(ctxA) }()
				<-stuck.entered
				if !tt.hang {
					ks.kill()
					cancelA()
					<-doneA
				}

				logB := &auditLog{}
				b := rig.executor(t, reopen(t), logB, func(c *Config) { c.Lease = lease })
				stopB := run(t, b)
				waitIdle(t, s, 90*time.Second)
				if tt.hang {
					// The hung executor wakes up late: its claims are gone.
					close(stuck.release)
					cancelA()
					<-doneA
				}
				stopB()

				if got := effective(t, rig.im, tim.CommandForbidSendMsg, "Members_Account"); !mapsEqualInt(got, want) {
					t.Errorf("members muted %v, want each once", got)
				}
				if got := effective(t, rig.im, tim.CommandDeleteGroupMember, "MemberToDel_Account"); len(got) != 5 {
					t.Errorf("members removed %v, want 5", got)
				}
				for _, a := range as {
					if got := logB.results(t)[a.ID]; got != audit.ResultDone {
						t.Errorf("%s: executor B results %q, want done", a.ID, got)
					}
				}
				for id, r := range logA.results(t) {
					if r == audit.ResultDone {
						t.Errorf("executor A recorded %s done", id)
					}
				}
				if st, _ := s.Stats(context.Background(), time.Now()); st.Dead != 0 {
					t.Errorf("dead letters: %+v", st)
				}
			})
		}
	}
}

func mapsEqualInt(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}
