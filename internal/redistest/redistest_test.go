package redistest

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

func TestMain(m *testing.M) { Main(m) }

func client(t *testing.T, url string) *redis.Client {
	t.Helper()
	opts, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	opts.MaxRetries = -1
	c := redis.NewClient(opts)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func TestPrefixIsUniqueAndPlain(t *testing.T) {
	t.Run("a name with {braces}, *globs* and [brackets]", func(t *testing.T) {
		a, b := Prefix(t), Prefix(t)
		if a == b {
			t.Errorf("two prefixes are both %q", a)
		}
		for _, p := range []string{a, b} {
			if strings.ContainsAny(p, "{}*?[]\\ ") || !strings.HasSuffix(p, ":") {
				t.Errorf("prefix %q has glob or hash-tag characters or does not end in ':'", p)
			}
		}
	})
}

func TestURLStartsOnePrivateServerWhenREDIS_URLIsUnset(t *testing.T) {
	t.Setenv(EnvURL, "")
	a, b := URL(t), URL(t)
	if a != b {
		t.Errorf("URL gave %s then %s, want one server", a, b)
	}
	if err := client(t, a).Ping(t.Context()).Err(); err != nil {
		t.Errorf("ping %s: %v", a, err)
	}
}

func TestURLReturnsREDIS_URLWhenSet(t *testing.T) {
	srv := StartServer(t)
	t.Setenv(EnvURL, srv.URL())
	if got := URL(t); got != srv.URL() {
		t.Errorf("URL = %s, want %s", got, srv.URL())
	}
}

func TestCleanupPrefixDeletesOnlyThePrefix(t *testing.T) {
	url := URL(t)
	c := client(t, url)
	other := Prefix(t)
	CleanupPrefix(t, url, other)
	var prefix string
	t.Run("a test that leaves keys", func(t *testing.T) {
		prefix = Prefix(t)
		CleanupPrefix(t, url, prefix)
		for i := range 1200 {
			c.Set(t.Context(), fmt.Sprintf("%sk%d", prefix, i), "v", time.Minute)
		}
		c.Set(t.Context(), other+"k", "v", time.Minute)
	})
	keys, err := c.Keys(t.Context(), prefix+"*").Result()
	if err != nil || len(keys) != 0 {
		t.Errorf("keys left under the prefix: %d (%v)", len(keys), err)
	}
	if n, err := c.Exists(t.Context(), other+"k").Result(); err != nil || n != 1 {
		t.Errorf("a key under another prefix was deleted: %d (%v)", n, err)
	}
}

func TestServerStopsAndRestartsOnTheSamePort(t *testing.T) {
	srv := StartServer(t)
	url := srv.URL()
	c := client(t, url)
	ctx := t.Context()
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	srv.Stop()
	srv.Stop()
	pctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	if err := c.Ping(pctx).Err(); err == nil {
		t.Error("ping answered after Stop")
	}
	srv.Restart()
	if srv.URL() != url {
		t.Errorf("URL after restart = %s, want %s", srv.URL(), url)
	}
	if err := c.Ping(ctx).Err(); err != nil {
		t.Fatalf("ping after restart: %v", err)
	}
	if n, err := c.Exists(ctx, "k").Result(); err != nil || n != 0 {
		t.Errorf("key after restart: %d (%v), want a fresh server", n, err)
	}
	srv.Restart()
	if err := c.Ping(ctx).Err(); err != nil {
		t.Fatalf("ping after a restart of a running server: %v", err)
	}
}

// fakeTB records how a helper ended the test, as Fatal and Skip would.
type fakeTB struct {
	testing.TB
	fatal, skip string
}

func (f *fakeTB) Helper()           {}
func (f *fakeTB) Name() string      { return "fake" }
func (f *fakeTB) Fatal(args ...any) { f.fatal = fmt.Sprint(args...); runtime.Goexit() }
func (f *fakeTB) Fatalf(format string, args ...any) {
	f.fatal = fmt.Sprintf(format, args...)
	runtime.Goexit()
}
func (f *fakeTB) Skip(args ...any) { f.skip = fmt.Sprint(args...); runtime.Goexit() }

func run(f func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	<-done
}

func TestMissingRedisServer(t *testing.T) {
	for _, c := range []struct {
		name      string
		require   string
		wantFatal bool
	}{
		{"skips the test by default", "", false},
		{"fails the test when TIMGUARD_REQUIRE_REDIS=1", "1", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Setenv("PATH", t.TempDir())
			t.Setenv(EnvURL, "")
			t.Setenv(EnvRequire, c.require)
			for name, call := range map[string]func(testing.TB){
				"URL":         func(tb testing.TB) { URL(tb) },
				"StartServer": func(tb testing.TB) { StartServer(tb) },
			} {
				f := &fakeTB{TB: t}
				run(func() { call(f) })
				if got := f.fatal != ""; got != c.wantFatal {
					t.Errorf("%s: fatal %q, skip %q", name, f.fatal, f.skip)
				}
				if msg := f.fatal + f.skip; !strings.Contains(msg, "redis-server") {
					t.Errorf("%s: message %q does not name redis-server", name, msg)
				}
			}
		})
	}
}

func TestUnreachableREDIS_URLFails(t *testing.T) {
	srv := StartServer(t)
	url := srv.URL()
	srv.Stop()
	t.Setenv(EnvURL, url)
	f := &fakeTB{TB: t}
	run(func() { URL(f) })
	if !strings.Contains(f.fatal, "does not answer") {
		t.Errorf("fatal = %q, want one saying REDIS_URL does not answer", f.fatal)
	}
}
