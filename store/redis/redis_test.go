package redis

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/timguard/timguard/internal/redistest"
	"github.com/timguard/timguard/store"
	"github.com/timguard/timguard/store/storetest"
)

func TestMain(m *testing.M) { redistest.Main(m) }

// newTestStore connects to url under a prefix of the test's own and
// removes the prefix's keys afterwards. opts.Timeout defaults to 10s here:
// these tests are about behaviour, and a busy machine running the race
// detector must not time their calls out.
func newTestStore(t testing.TB, url, prefix string, opts Options) *Store {
	t.Helper()
	opts.URL = url
	opts.KeyPrefix = prefix
	if opts.Timeout == 0 {
		opts.Timeout = 10 * time.Second
	}
	s, err := New(context.Background(), opts)
	if err != nil {
		t.Fatalf("new store: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func freshStore(t testing.TB, opts Options) *Store {
	t.Helper()
	url := redistest.URL(t)
	prefix := redistest.Prefix(t)
	redistest.CleanupPrefix(t, url, prefix)
	return newTestStore(t, url, prefix, opts)
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return freshStore(t, Options{}) })
}

func TestSharedConformance(t *testing.T) {
	storetest.RunShared(t, func(t *testing.T) (store.Store, store.Store) {
		url := redistest.URL(t)
		prefix := redistest.Prefix(t)
		redistest.CleanupPrefix(t, url, prefix)
		return newTestStore(t, url, prefix, Options{}), newTestStore(t, url, prefix, Options{})
	})
}

func TestDecisionCap(t *testing.T) {
	storetest.CheckDecisionCap(t, freshStore(t, Options{MaxDecisions: 5}), 5)
}

func TestDeadLettersAreCapped(t *testing.T) {
	t.Parallel()
	storetest.CheckDeadCap(t, freshStore(t, Options{DeadMax: 5}), 5)
}

func TestDeadLettersExpireAfterDeadTTL(t *testing.T) {
	t.Parallel()
	storetest.CheckDeadRetention(t, freshStore(t, Options{DeadTTL: time.Second}), func() { time.Sleep(1100 * time.Millisecond) })
}

func TestCompletedIDsAreForgottenAfterDoneTTL(t *testing.T) {
	t.Parallel()
	s := freshStore(t, Options{DoneTTL: 2 * time.Second})
	ctx := t.Context()
	now := time.Now()
	a := store.Action{ID: "a", Kind: "warn", Group: "g", Created: now}
	if err := s.Enqueue(ctx, a); err != nil {
		t.Fatal(err)
	}
	cs, err := s.Claim(ctx, now, 1, time.Minute)
	if err != nil || len(cs) != 1 {
		t.Fatalf("claim: %v, %d actions", err, len(cs))
	}
	if err := s.Complete(ctx, cs[0]); err != nil {
		t.Fatal(err)
	}
	ready := func() int {
		t.Helper()
		if err := s.Enqueue(ctx, a); err != nil {
			t.Fatal(err)
		}
		st, err := s.Stats(ctx, now)
		if err != nil {
			t.Fatal(err)
		}
		return st.Ready
	}
	if n := ready(); n != 0 {
		t.Errorf("ready after enqueueing a completed id = %d, want 0", n)
	}
	time.Sleep(2500 * time.Millisecond)
	if n := ready(); n != 1 {
		t.Errorf("ready after DoneTTL = %d, want 1", n)
	}
}

// tripCounter counts round trips: single commands and pipelines.
type tripCounter struct {
	single, pipelines atomic.Int64
	largest           atomic.Int64 // commands in the largest pipeline
}

func (c *tripCounter) DialHook(next goredis.DialHook) goredis.DialHook { return next }

func (c *tripCounter) ProcessHook(next goredis.ProcessHook) goredis.ProcessHook {
	return func(ctx context.Context, cmd goredis.Cmder) error {
		c.single.Add(1)
		return next(ctx, cmd)
	}
}

func (c *tripCounter) ProcessPipelineHook(next goredis.ProcessPipelineHook) goredis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []goredis.Cmder) error {
		c.pipelines.Add(1)
		for {
			most := c.largest.Load()
			if int64(len(cmds)) <= most || c.largest.CompareAndSwap(most, int64(len(cmds))) {
				break
			}
		}
		return next(ctx, cmds)
	}
}

func (c *tripCounter) reset() { c.single.Store(0); c.pipelines.Store(0); c.largest.Store(0) }

func countingStore(t *testing.T) (*Store, *tripCounter) {
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
	trips := &tripCounter{}
	rdb.AddHook(trips)
	s, err := NewFromClient(rdb, Options{KeyPrefix: prefix, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s, trips
}

func TestEnrichAndCommitAreOneRoundTrip(t *testing.T) {
	s, trips := countingStore(t)
	ctx := t.Context()
	now := time.Now()
	alice := store.UserRef{Group: "g", User: "alice"}
	enrich := store.EnrichRequest{
		Now: now, EventID: "ev1",
		Strikes: []store.UserRef{alice}, StrikeDecay: time.Hour,
		Dedupe: "ev1", DedupeTTL: time.Minute,
		RoleGroup: "g", RoleUsers: []string{"alice", "bob"},
		WithModes:   true,
		Activity:    []store.ActivityRef{{UserRef: alice, Seen: true, Message: "ev1"}, {UserRef: store.UserRef{Group: "g", User: "bob"}}},
		ActivityTTL: time.Hour,
	}
	for i := range 5 {
		enrich.Counters = append(enrich.Counters, store.CounterTouch{Key: "c" + string(rune('0'+i)), Window: time.Minute, Add: 1})
	}
	commit := func(id string) store.CommitRequest {
		return store.CommitRequest{
			Now: now, EventID: id, StrikeDecay: time.Hour,
			Strikes:   []store.StrikeAdd{{UserRef: alice, N: 1, ID: id}},
			Touch:     []store.CounterTouch{{Key: "budget", Window: time.Minute, Add: 1}},
			Actions:   []store.Action{{ID: id + "/mute", Kind: "mute", Group: "g", User: "alice", Created: now}},
			Decisions: []store.DecisionRecord{{Time: now, Group: "g", User: "alice", Body: []byte("{}")}},
		}
	}
	// The first commit may have to load the enqueue script, the first
	// enrich the activity script.
	if err := s.Commit(ctx, commit("warm")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Enrich(ctx, store.EnrichRequest{Now: now, Activity: enrich.Activity[1:]}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		call func() error
	}{
		{"Enrich with five counters, strikes, dedupe, roles, modes and activity", func() error {
			_, err := s.Enrich(ctx, enrich)
			return err
		}},
		{"Commit with strikes, a touch, an action and a decision", func() error {
			return s.Commit(ctx, commit("ev2"))
		}},
	} {
		t.Run(c.name+" is one round trip", func(t *testing.T) {
			trips.reset()
			if err := c.call(); err != nil {
				t.Fatal(err)
			}
			if p, n := trips.pipelines.Load(), trips.single.Load(); p != 1 || n != 0 {
				t.Errorf("%d pipelines and %d single commands, want 1 pipeline", p, n)
			}
		})
	}
}

// A sighting keeps a user's activity for another ActivityTTL; a read does not.
func TestActivityTTLIsRefreshedBySightingsOnly(t *testing.T) {
	s, _ := countingStore(t)
	ctx := t.Context()
	alice := store.UserRef{Group: "g", User: "alice"}
	key := s.k.activity("g", "alice")
	for _, c := range []struct {
		seen bool
		ttl  time.Duration
		want time.Duration
	}{
		{true, time.Hour, time.Hour},
		{false, 90 * 24 * time.Hour, time.Hour},
		{true, 90 * 24 * time.Hour, 90 * 24 * time.Hour},
	} {
		if _, err := s.Enrich(ctx, store.EnrichRequest{Now: time.Now(), ActivityTTL: c.ttl,
			Activity: []store.ActivityRef{{UserRef: alice, Seen: c.seen}}}); err != nil {
			t.Fatal(err)
		}
		left, err := s.rdb.PTTL(ctx, key).Result()
		if err != nil {
			t.Fatal(err)
		}
		if left > c.want || left < c.want-time.Minute {
			t.Errorf("after an enrich with seen %v and ttl %s, the activity has %s left; want about %s", c.seen, c.ttl, left, c.want)
		}
	}
}

// TestRolesCachedByAnOlderVersionReadAsLongAgo: a role cache written before
// the marker held the time the roles were read (its value "1") is still a
// cache, read as refreshed in 1970, so the next event refreshes it.
func TestRolesCachedByAnOlderVersionReadAsLongAgo(t *testing.T) {
	s, _ := countingStore(t)
	ctx := t.Context()
	key := s.k.roles("g")
	if err := s.rdb.HSet(ctx, key, roleMarker, "1", "ann", store.RoleAdmin).Err(); err != nil {
		t.Fatal(err)
	}
	res, err := s.Enrich(ctx, store.EnrichRequest{Now: time.Now(), RoleGroup: "g", RoleUsers: []string{"ann", "bob"}})
	if err != nil {
		t.Fatal(err)
	}
	if !res.RolesCached || res.Roles[0] != store.RoleAdmin || res.Roles[1] != store.RoleMember {
		t.Errorf("cached %v, roles %q; want cached, admin and member", res.RolesCached, res.Roles)
	}
	if want := time.UnixMilli(1).UTC(); !res.RolesAt.Equal(want) {
		t.Errorf("read at %v, want %v", res.RolesAt, want)
	}
}

// TestRolesExpiringBetweenPipelinesAreNotCached: an event with more role
// users than one pipeline carries reads the roles in several; when the cache
// goes between them, the event is judged as if nothing were cached, with no
// time the roles were read.
func TestRolesExpiringBetweenPipelinesAreNotCached(t *testing.T) {
	s, _ := countingStore(t)
	ctx := t.Context()
	now := time.Now()
	users := make([]string, chunk+10)
	for i := range users {
		users[i] = fmt.Sprintf("u%04d", i)
	}
	if err := s.SetRoles(ctx, "g", map[string]string{"u0000": store.RoleAdmin, users[chunk+5]: store.RoleOwner}, now, time.Minute); err != nil {
		t.Fatal(err)
	}
	parts := 0
	s.built = func(bufSize, bufSize) {
		if parts++; parts == 2 {
			if err := s.rdb.Del(ctx, s.k.roles("g")).Err(); err != nil {
				t.Error(err)
			}
		}
	}
	res, err := s.Enrich(ctx, store.EnrichRequest{Now: now, RoleGroup: "g", RoleUsers: users})
	if err != nil {
		t.Fatal(err)
	}
	if parts < 2 {
		t.Fatalf("the enrich took %d pipelines, want at least 2", parts)
	}
	if res.RolesCached || !res.RolesAt.IsZero() {
		t.Errorf("cached %v, read at %v; want not cached and no time", res.RolesCached, res.RolesAt)
	}
	for i, r := range res.Roles {
		if r != "" {
			t.Fatalf("user %d has role %q, want none", i, r)
		}
	}
}

// TestRestartedRedisIsUsedAgain restarts Redis under a live store: the
// store reconnects, and the scripts, gone from Redis' cache, are sent again
// (by Script.Run, and by Commit for the EVALSHA in its pipeline).
func TestRestartedRedisIsUsedAgain(t *testing.T) {
	srv := redistest.StartServer(t)
	s := newTestStore(t, srv.URL(), "restart:", Options{Timeout: 5 * time.Second})
	ctx := t.Context()
	now := time.Now()
	cycle := func(t *testing.T, id string) {
		t.Helper()
		if err := s.Commit(ctx, store.CommitRequest{
			Now: now, EventID: id,
			Actions:   []store.Action{{ID: id, Kind: "warn", Group: "g", Created: now}},
			Decisions: []store.DecisionRecord{{Time: now, Group: "g", Body: []byte(id)}},
		}); err != nil {
			t.Fatalf("commit: %v", err)
		}
		cs, err := s.Claim(ctx, now, 10, time.Minute)
		if err != nil || len(cs) != 1 {
			t.Fatalf("claim: %v, %d actions", err, len(cs))
		}
		if err := s.Complete(ctx, cs[0]); err != nil {
			t.Fatalf("complete: %v", err)
		}
		if err := s.SetMute(ctx, store.Mute{Group: "g", User: "u", Until: time.Now().Add(time.Hour)}); err != nil {
			t.Fatalf("set mute: %v", err)
		}
		if _, err := s.Stats(ctx, now); err != nil {
			t.Fatalf("stats: %v", err)
		}
		if _, _, err := s.Allow(ctx, 1, 100); err != nil {
			t.Fatalf("allow: %v", err)
		}
		res, err := s.Enrich(ctx, store.EnrichRequest{Now: now, ActivityTTL: time.Hour,
			Activity: []store.ActivityRef{{UserRef: store.UserRef{Group: "g", User: "u"}, Seen: true, Message: id}}})
		if err != nil || res.FirstSeen[0].IsZero() {
			t.Fatalf("enrich with activity: %v, first seen %v", err, res.FirstSeen)
		}
	}
	cycle(t, "before")

	srv.Restart()
	deadline := time.Now().Add(20 * time.Second)
	for {
		err := s.Ping(ctx)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("ping after restart: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := s.rdb.Do(ctx, "SCRIPT", "FLUSH").Err(); err != nil {
		t.Fatal(err)
	}
	for _, sc := range []*goredis.Script{s.scripts.enqueue, s.scripts.claim} {
		exists, err := sc.Exists(ctx, s.rdb).Result()
		if err != nil || exists[0] {
			t.Fatalf("script cached after restart and flush: %v, %v", exists, err)
		}
	}
	cycle(t, "after")
}

// TestUnreachableRedisFailsFast checks that every call returns an error
// matching store.ErrUnavailable, not a hang, both when nothing listens and
// when a server accepts connections but never answers.
func TestUnreachableRedisFailsFast(t *testing.T) {
	stopped := redistest.StartServer(t)
	silent := silentServer(t)

	for _, c := range []struct {
		name  string
		setup func(t *testing.T) *Store
	}{
		{"a stopped server", func(t *testing.T) *Store {
			s := newTestStore(t, stopped.URL(), "down:", Options{Timeout: 200 * time.Millisecond})
			stopped.Stop()
			return s
		}},
		{"a server that never answers", func(t *testing.T) *Store {
			opts, err := goredis.ParseURL("redis://" + silent + "/0")
			if err != nil {
				t.Fatal(err)
			}
			tune(200*time.Millisecond, &opts.DialTimeout, &opts.ReadTimeout, &opts.WriteTimeout, &opts.PoolTimeout, &opts.MaxRetries, &opts.MaxRetryBackoff)
			opts.ContextTimeoutEnabled = true
			s, err := NewFromClient(goredis.NewClient(opts), Options{KeyPrefix: "silent:", Timeout: 200 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = s.Close() })
			return s
		}},
	} {
		t.Run(c.name+" gives ErrUnavailable promptly", func(t *testing.T) {
			s := c.setup(t)
			ctx := context.Background()
			now := time.Now()
			claimed := store.Claimed{Action: store.Action{ID: "a"}, Token: "t"}
			for _, call := range []struct {
				name string
				do   func() error
			}{
				{"ping", func() error { return s.Ping(ctx) }},
				{"enrich", func() error {
					_, err := s.Enrich(ctx, store.EnrichRequest{Now: now, EventID: "e", Counters: []store.CounterTouch{{Key: "k", Window: time.Second, Add: 1}}})
					return err
				}},
				{"commit", func() error {
					return s.Commit(ctx, store.CommitRequest{Now: now, Actions: []store.Action{{ID: "a", Kind: "warn"}}})
				}},
				{"enqueue", func() error { return s.Enqueue(ctx, store.Action{ID: "a", Kind: "warn"}) }},
				{"claim", func() error { _, err := s.Claim(ctx, now, 1, time.Minute); return err }},
				{"complete", func() error { return s.Complete(ctx, claimed) }},
				{"release", func() error { return s.Release(ctx, claimed) }},
				{"stats", func() error { _, err := s.Stats(ctx, now); return err }},
				{"claim once", func() error { _, err := s.ClaimOnce(ctx, "k", time.Minute); return err }},
				{"allow", func() error { _, _, err := s.Allow(ctx, 1, 10); return err }},
				{"recent decisions", func() error { _, err := s.RecentDecisions(ctx, store.DecisionFilter{}); return err }},
				{"list mutes", func() error { _, err := s.ListMutes(ctx, "g"); return err }},
				{"muted groups", func() error { _, err := s.MutedGroups(ctx); return err }},
				{"set roles", func() error { return s.SetRoles(ctx, "g", nil, now, time.Minute) }},
				{"set mode", func() error { return s.SetMode(ctx, "m", now) }},
			} {
				t.Run(call.name, func(t *testing.T) {
					t.Parallel()
					start := time.Now()
					err := call.do()
					took := time.Since(start)
					if !errors.Is(err, store.ErrUnavailable) {
						t.Errorf("err = %v, want ErrUnavailable", err)
					}
					// The bound is loose on purpose: the point is no hang,
					// and a loaded machine under -race is slow.
					if took > 10*time.Second {
						t.Errorf("took %s", took)
					}
				})
			}
		})
	}
}

// silentServer accepts connections and never answers; it returns its
// address.
func silentServer(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		_ = l.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			_ = c.Close()
		}
	})
	return l.Addr().String()
}

func TestNewFailsFastWhenRedisIsDown(t *testing.T) {
	srv := redistest.StartServer(t)
	url := srv.URL()
	srv.Stop()
	start := time.Now()
	_, err := New(t.Context(), Options{URL: url})
	if !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("err = %v, want ErrUnavailable", err)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("New took %s", took)
	}
}

func TestURLs(t *testing.T) {
	for _, c := range []struct {
		name    string
		url     string
		cluster bool
		err     string
	}{
		{"a redis URL is one node", "redis://127.0.0.1:6379/2", false, ""},
		{"a rediss URL is one node over TLS", "rediss://user:pw@example.com:6380/0", false, ""},
		{"a unix URL is one node", "unix:///run/redis.sock?db=1", false, ""},
		{"a redis-sentinel URL with master_name is Sentinel", "redis-sentinel://s1:26379/0?master_name=mymaster&addr=s2:26379", false, ""},
		{"a redis URL with master_name is Sentinel", "redis://s1:26379?master_name=mymaster", false, ""},
		{"a redis-sentinel URL without master_name is refused", "redis-sentinel://s1:26379/0", false, "master_name"},
		{"a redis-cluster URL is Cluster", "redis-cluster://c1:7000?addr=c2:7001", true, ""},
		{"a redis URL with several addrs is Cluster", "redis://c1:7000?addr=c2:7001&addr=c3:7002", true, ""},
		{"an unknown scheme is refused", "http://127.0.0.1:6379", false, "scheme"},
		{"an empty URL is refused", "", false, "empty"},
		{"a bad URL is refused without showing the password", "redis://user:secret@host:port:bad/0", false, "parse"},
	} {
		t.Run(c.name, func(t *testing.T) {
			rdb, err := newClient(c.url, time.Second)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("err = %v, want one about %q", err, c.err)
				}
				if strings.Contains(err.Error(), "secret") {
					t.Errorf("error shows the password: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer rdb.Close()
			if _, ok := rdb.(*goredis.ClusterClient); ok != c.cluster {
				t.Errorf("client %T, want cluster %v", rdb, c.cluster)
			}
		})
	}
}

// The store speaks RESP2 unless the URL asks for a protocol: go-redis
// would otherwise look for push notifications before every reply.
func TestProtocolIsRESP2UnlessTheURLNamesOne(t *testing.T) {
	protocolOf := func(rdb goredis.UniversalClient) int {
		switch c := rdb.(type) {
		case *goredis.Client:
			return c.Options().Protocol
		case *goredis.ClusterClient:
			return c.Options().Protocol
		}
		t.Fatalf("client %T", rdb)
		return 0
	}
	for _, c := range []struct {
		url  string
		want int    // 0: refused
		err  string // what the refusal names
	}{
		{"redis://127.0.0.1:6379/2", 2, ""},
		{"redis://127.0.0.1:6379/2?protocol=3", 3, ""},
		{"redis://127.0.0.1:6379/2?protocol=2", 2, ""},
		{"unix:///run/redis.sock?db=1", 2, ""},
		{"unix:///run/redis.sock?db=1&protocol=3", 3, ""},
		{"redis-sentinel://s1:26379/0?master_name=mymaster", 2, ""},
		{"redis-sentinel://s1:26379/0?master_name=mymaster&protocol=3", 3, ""},
		{"redis-cluster://c1:7000?addr=c2:7001", 2, ""},
		{"redis-cluster://c1:7000?addr=c2:7001&protocol=3", 3, ""},
		// go-redis would quietly speak RESP3 for these.
		{"redis://127.0.0.1:6379/2?protocol=1", 0, `protocol="1"`},
		{"redis://127.0.0.1:6379/2?protocol=0", 0, `protocol="0"`},
		{"redis://127.0.0.1:6379/2?protocol=", 0, `protocol=""`},
		{"redis-cluster://c1:7000?addr=c2:7001&protocol=4", 0, `protocol="4"`},
		{"redis-sentinel://s1:26379/0?master_name=mymaster&protocol=1", 0, `protocol="1"`},
		// go-redis reads the last, a reader of the URL the first.
		{"redis://127.0.0.1:6379/2?protocol=3&protocol=1", 0, "more than once"},
		{"redis://127.0.0.1:6379/2?protocol=1&protocol=3", 0, "more than once"},
	} {
		rdb, err := newClient(c.url, time.Second)
		if c.want == 0 {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%s: err = %v, want one naming %q", c.url, err, c.err)
			}
			if rdb != nil {
				_ = rdb.Close()
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", c.url, err)
		}
		if got := protocolOf(rdb); got != c.want {
			t.Errorf("%s: protocol %d, want %d", c.url, got, c.want)
		}
		_ = rdb.Close()
	}

	// And the server agrees: HELLO without arguments names the
	// connection's protocol (proto), as an array on RESP2, a map on RESP3.
	u, err := url.Parse(redistest.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []int64{2, 3} {
		q := u.Query()
		q.Del("protocol")
		if want == 3 {
			q.Set("protocol", "3")
		}
		u.RawQuery = q.Encode()
		rdb, err := newClient(u.String(), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		hello, err := rdb.Do(t.Context(), "HELLO").Result()
		_ = rdb.Close()
		if err != nil {
			t.Fatal(err)
		}
		if got := helloProto(hello); got != want {
			t.Errorf("protocol %d: HELLO says proto %d (%v)", want, got, hello)
		}
	}
}

// helloProto is the proto field of a HELLO reply, -1 if it has none.
func helloProto(reply any) int64 {
	switch r := reply.(type) {
	case []any:
		for i := 0; i+1 < len(r); i += 2 {
			if r[i] == "proto" {
				if n, ok := r[i+1].(int64); ok {
					return n
				}
			}
		}
	case map[any]any:
		if n, ok := r["proto"].(int64); ok {
			return n
		}
	}
	return -1
}

func TestKeyPrefixWithABraceIsRefused(t *testing.T) {
	if _, err := NewFromClient(goredis.NewClient(&goredis.Options{}), Options{KeyPrefix: "a{b}:"}); err == nil {
		t.Error("a prefix with braces was accepted")
	}
}

func TestOutboxKeysShareOneSlot(t *testing.T) {
	k := newKeys("timguard:")
	tag := func(key string) string {
		i := strings.IndexByte(key, '{')
		j := strings.IndexByte(key[i+1:], '}')
		return key[i+1 : i+1+j]
	}
	for _, key := range k.outbox {
		if got := tag(key); got != "timguard:outbox" {
			t.Errorf("%s has hash tag %q", key, got)
		}
	}
	for _, key := range []string{k.groupMutes("@TGS#1{x}"), k.muted} {
		if got := tag(key); got != "timguard:mutes" {
			t.Errorf("%s has hash tag %q", key, got)
		}
	}
}

func BenchmarkEnrich5Counters(b *testing.B) {
	storetest.BenchEnrich5Counters(b, freshStore(b, Options{}))
}

func BenchmarkEnrich5CountersAndActivity(b *testing.B) {
	storetest.BenchEnrich5CountersAndActivity(b, freshStore(b, Options{}))
}

func BenchmarkOutboxCycle(b *testing.B) {
	storetest.BenchOutboxCycle(b, freshStore(b, Options{}))
}

// A join wave of 8,000 members (issue 12, item 5) is read and written in
// round trips of bounded size, each of which fits store.timeout, and
// nothing is lost on the way: every count, strike, role and action is
// there.
func TestAnEventWithThousandsOfSubjectsIsSplitIntoBoundedRoundTrips(t *testing.T) {
	s, trips := countingStore(t)
	ctx := t.Context()
	now := time.Now()
	const members = 8000
	enrich := store.EnrichRequest{Now: now, EventID: "wave", StrikeDecay: time.Hour, RoleGroup: "g", WithModes: true,
		Dedupe: "wave", DedupeTTL: time.Minute, ActivityTTL: time.Hour}
	commit := store.CommitRequest{Now: now, EventID: "wave", StrikeDecay: time.Hour}
	for i := range members {
		u := fmt.Sprintf("new%05d", i)
		enrich.Counters = append(enrich.Counters, store.CounterTouch{Key: "joins/" + u, Window: time.Minute, Add: 1})
		enrich.Strikes = append(enrich.Strikes, store.UserRef{Group: "g", User: u})
		enrich.RoleUsers = append(enrich.RoleUsers, u)
		enrich.Activity = append(enrich.Activity, store.ActivityRef{UserRef: store.UserRef{Group: "g", User: u}, Seen: true})
		commit.Strikes = append(commit.Strikes, store.StrikeAdd{UserRef: store.UserRef{Group: "g", User: u}, N: 1, ID: "wave/" + u})
		commit.Actions = append(commit.Actions, store.Action{ID: "wave/" + u + "/mute", Kind: "mute", Group: "g", User: u, Seconds: 300, Created: now})
		commit.Decisions = append(commit.Decisions, store.DecisionRecord{Time: now, Group: "g", User: u, Body: []byte(`{"kind":"decision"}`)})
	}
	if err := s.SetRoles(ctx, "g", map[string]string{"new00042": store.RoleAdmin, "new07999": store.RoleOwner}, now, time.Minute); err != nil {
		t.Fatal(err)
	}
	trips.reset()
	res, err := s.Enrich(ctx, enrich)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Commit(ctx, commit); err != nil {
		t.Fatal(err)
	}
	// 256 items of a few commands each (a strike is three, a mute one
	// script argument set): a round trip that fits store.timeout (the
	// whole event is over 40,000 commands).
	const most = 4*256 + 8
	if n := trips.largest.Load(); n > most {
		t.Errorf("the largest pipeline held %d commands, want at most %d: one round trip for thousands of members never fits store.timeout", n, most)
	}
	t.Logf("%d pipelines, the largest of %d commands", trips.pipelines.Load(), trips.largest.Load())

	if len(res.Counts) != members || len(res.Strikes) != members || len(res.Roles) != members || !res.RolesCached {
		t.Fatalf("enrich answered %d counts, %d strikes, %d roles (cached %v), want %d each", len(res.Counts), len(res.Strikes), len(res.Roles), res.RolesCached, members)
	}
	for i := range members {
		if res.Counts[i] != 1 || res.Strikes[i] != 0 {
			t.Fatalf("member %d: count %d, strikes %d; want 1 and 0", i, res.Counts[i], res.Strikes[i])
		}
	}
	if len(res.FirstSeen) != members || !res.FirstSeen[members-1].Equal(now.Truncate(time.Millisecond)) {
		t.Errorf("enrich answered %d first sightings, the last %v; want %d, the last at %v", len(res.FirstSeen), res.FirstSeen[len(res.FirstSeen)-1], members, now)
	}
	if !res.RolesAt.Equal(now.Truncate(time.Millisecond)) {
		t.Errorf("roles read at %v, want %v", res.RolesAt, now.Truncate(time.Millisecond))
	}
	if res.Roles[42] != store.RoleAdmin || res.Roles[7999] != store.RoleOwner || res.Roles[4000] != store.RoleMember {
		t.Errorf("roles of members 42, 7999 and 4000 = %q, %q, %q; want admin, owner, member", res.Roles[42], res.Roles[7999], res.Roles[4000])
	}
	st, err := s.Stats(ctx, now.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if st.Ready != members {
		t.Errorf("the outbox holds %d actions, want %d", st.Ready, members)
	}
	again, err := s.Enrich(ctx, store.EnrichRequest{Now: now, StrikeDecay: time.Hour, Strikes: enrich.Strikes[members-3:]})
	if err != nil {
		t.Fatal(err)
	}
	if again.Strikes[2] != 1 {
		t.Errorf("the last member has %d strikes after the commit, want 1", again.Strikes[2])
	}
}

// A full Redis (maxmemory with maxmemory-policy noeviction, as the docs
// advise) refuses writes with OOM while it still answers PING and reads.
// That is an outage of the store, not a wrong write: every write fails with
// store.ErrUnavailable, so that callers keep what they meant to write and
// try again, and Ping (behind /readyz) fails until Redis takes writes again.
// (A script whose first write frees memory, such as the enqueue script,
// may still run: Redis refuses only a script's first write.)
func TestAFullRedisIsUnavailableUntilItTakesWritesAgain(t *testing.T) {
	srv := redistest.StartServer(t)
	s := newTestStore(t, srv.URL(), "full:", Options{Timeout: 5 * time.Second})
	ctx := t.Context()
	now := time.Now()
	commit := func(id string) store.CommitRequest {
		return store.CommitRequest{
			Now: now, EventID: id, StrikeDecay: time.Hour,
			Strikes:   []store.StrikeAdd{{UserRef: store.UserRef{Group: "g", User: id}, N: 1, ID: id}},
			Actions:   []store.Action{{ID: id + "/mute", Kind: "mute", Group: "g", User: id, Created: now}},
			Decisions: []store.DecisionRecord{{Time: now, Group: "g", User: id, Body: []byte("{}")}},
		}
	}
	if err := s.Commit(ctx, commit("before")); err != nil {
		t.Fatal(err)
	}
	cs, err := s.Claim(ctx, now, 1, time.Minute)
	if err != nil || len(cs) != 1 {
		t.Fatalf("claim before Redis is full: %v, %d", err, len(cs))
	}
	setMaxMemory := func(v string) {
		t.Helper()
		for _, kv := range [][2]string{{"maxmemory-policy", "noeviction"}, {"maxmemory", v}} {
			if err := s.rdb.ConfigSet(ctx, kv[0], kv[1]).Err(); err != nil {
				t.Fatalf("CONFIG SET %s %s: %v", kv[0], kv[1], err)
			}
		}
	}
	setMaxMemory("1")
	if err := s.rdb.Ping(ctx).Err(); err != nil {
		t.Fatalf("a full Redis still answers PING: %v", err)
	}
	for op, err := range map[string]error{
		"commit": s.Commit(ctx, commit("during")),
		"enrich touching a counter": func() error {
			_, err := s.Enrich(ctx, store.EnrichRequest{Now: now, EventID: "e", Counters: []store.CounterTouch{{Key: "c", Window: time.Minute, Add: 1}}})
			return err
		}(),
		"set mute": s.SetMute(ctx, store.Mute{Group: "g", User: "u", Until: now.Add(time.Hour)}),
		"ping":     s.Ping(ctx),
	} {
		if !errors.Is(err, store.ErrUnavailable) || !strings.Contains(err.Error(), "OOM") {
			t.Errorf("%s while Redis is full: err = %v, want store.ErrUnavailable naming OOM", op, err)
		}
	}

	setMaxMemory("0")
	if err := s.Ping(ctx); err != nil {
		t.Fatalf("ping once Redis takes writes again: %v", err)
	}
	if err := s.Commit(ctx, commit("during")); err != nil {
		t.Fatalf("the commit kept while Redis was full, tried again: %v", err)
	}
	if err := s.Complete(ctx, cs[0]); err != nil {
		t.Fatalf("complete the action claimed before: %v", err)
	}
	st, err := s.Stats(ctx, now)
	if err != nil {
		t.Fatal(err)
	}
	if st.Ready != 1 {
		t.Errorf("the outbox holds %d actions, want the one committed after Redis had room again", st.Ready)
	}
}

// go-redis's own messages (a failed dial during an outage) become JSON log
// records of the bot's logger, not plain text lines on standard error; one
// repeated for every failed dial is logged once per period, with a count.
func TestLibraryMessagesAreStructuredLogRecords(t *testing.T) {
	var buf bytes.Buffer
	now := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	l := newLibraryLog(slog.New(slog.NewJSONHandler(&buf, nil)).With("component", "go-redis"), func() time.Time { return now })
	dial := func() {
		l.Printf(t.Context(), "redis: connection pool: failed to dial after %d attempts: %v\n", 5, errors.New("dial tcp 127.0.0.1:6379: connect: connection refused"))
	}
	for range 40 {
		dial()
		now = now.Add(100 * time.Millisecond)
	}
	now = now.Add(libraryLogEvery)
	dial()
	var recs []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("a record is not one JSON line: %q: %v", line, err)
		}
		recs = append(recs, rec)
	}
	if len(recs) != 2 {
		t.Fatalf("%d records for 41 repeats of one message over 14s, want 2:\n%s", len(recs), buf.String())
	}
	want := map[string]any{
		"level": "WARN", "component": "go-redis",
		"msg": "connection pool: failed to dial after 5 attempts: dial tcp 127.0.0.1:6379: connect: connection refused",
	}
	for k, v := range want {
		if recs[0][k] != v || recs[1][k] != v {
			t.Errorf("%s = %q and %q, want %q", k, recs[0][k], recs[1][k], v)
		}
	}
	if recs[1]["repeats_not_logged"] != float64(39) {
		t.Errorf("the second record counts %v repeats not logged, want 39", recs[1]["repeats_not_logged"])
	}
}

// BenchmarkCommitStrikeAndTouch measures the commit of a typical decision:
// one strike and one budget touch, without actions or decision records.
func BenchmarkCommitStrikeAndTouch(b *testing.B) {
	s := freshStore(b, Options{})
	ctx := context.Background()
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		i++
		id := "ev" + strconv.Itoa(i)
		req := store.CommitRequest{Now: time.Now(), EventID: id, StrikeDecay: 24 * time.Hour,
			Strikes: []store.StrikeAdd{{UserRef: store.UserRef{Group: "@TGS#bench", User: "u" + strconv.Itoa(i%1000)}, N: 1, ID: id}},
			Touch:   []store.CounterTouch{{Key: "budget|flood|@TGS#bench", Window: time.Minute, Add: 1}}}
		if err := s.Commit(ctx, req); err != nil {
			b.Fatal(err)
		}
	}
}
