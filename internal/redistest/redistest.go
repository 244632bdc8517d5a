// Package redistest gives tests a real Redis.
//
// URL returns the server REDIS_URL names or, when it is not set, a private
// redis-server started once per test binary on a free port; call Main from
// TestMain so that server stops when the tests end. StartServer starts a
// server of the test's own, for tests that stop and restart Redis.
//
// Many packages share one server in parallel, so tests isolate their keys
// with Prefix and never flush a database.
//
// Without redis-server on PATH the tests that need Redis are skipped, unless
// TIMGUARD_REQUIRE_REDIS=1, which makes them fail (CI sets it).
package redistest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/timguard/timguard/internal/redisproc"
)

const (
	// EnvURL names the Redis server tests use instead of a private one.
	EnvURL = "REDIS_URL"
	// EnvRequire set to 1 turns a missing redis-server into a test failure.
	EnvRequire = "TIMGUARD_REQUIRE_REDIS"
)

// shared is the private server URL starts for the whole test binary, and
// the results of checking each REDIS_URL once. Test-only state: Main stops
// the server.
var shared struct {
	mu      sync.Mutex
	started bool
	srv     *server
	err     error
	checked map[string]error
}

// Main runs the package's tests, then stops the private server URL may have
// started. Call it from TestMain:
//
//	func TestMain(m *testing.M) { redistest.Main(m) }
func Main(m *testing.M) {
	code := m.Run()
	shared.mu.Lock()
	if shared.srv != nil {
		shared.srv.close()
		shared.srv = nil
	}
	shared.mu.Unlock()
	os.Exit(code)
}

// URL returns the Redis URL tests use: REDIS_URL when set, otherwise the URL
// of a private redis-server started on the first call. Without redis-server
// it skips the test, or fails it when TIMGUARD_REQUIRE_REDIS=1.
func URL(t testing.TB) string {
	t.Helper()
	if u := os.Getenv(EnvURL); u != "" {
		shared.mu.Lock()
		err, ok := shared.checked[u]
		if !ok {
			err = ping(u)
			if shared.checked == nil {
				shared.checked = make(map[string]error)
			}
			shared.checked[u] = err
		}
		shared.mu.Unlock()
		if err != nil {
			t.Fatalf("redistest: %s=%s does not answer: %v", EnvURL, u, err)
		}
		return u
	}
	requireBinary(t)
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if !shared.started {
		shared.started = true
		shared.srv, shared.err = startServer()
	}
	if shared.err != nil {
		t.Fatalf("redistest: start the shared redis-server: %v", shared.err)
	}
	return shared.srv.URL()
}

// requireBinary skips or fails t when redis-server is not on PATH.
func requireBinary(t testing.TB) {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err == nil {
		return
	}
	msg := fmt.Sprintf("redistest: redis-server is not on PATH and %s is not set; install redis-server (apt-get install redis-server) or set %s", EnvURL, EnvURL)
	if os.Getenv(EnvRequire) == "1" {
		t.Fatal(msg + " (" + EnvRequire + "=1 makes this a failure)")
	}
	t.Skip(msg)
}

// ping checks that the server at rawURL answers, when rawURL is a URL that
// go-redis parses as a single node; other forms are not checked here.
func ping(rawURL string) error {
	opts, err := redis.ParseURL(rawURL)
	if err != nil {
		return nil
	}
	opts.DialTimeout = 2 * time.Second
	opts.MaxRetries = -1
	c := redis.NewClient(opts)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	return c.Ping(ctx).Err()
}

// Prefix returns a key prefix no other test uses, on any server: the test's
// name and random bytes, ending in ":". It contains no glob or hash-tag
// characters.
func Prefix(t testing.TB) string {
	t.Helper()
	name := strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '.', r == '/':
			return r
		}
		return '_'
	}, t.Name())
	if len(name) > 80 {
		name = name[:80]
	}
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatalf("redistest: random prefix: %v", err)
	}
	return "tgtest:" + name + ":" + hex.EncodeToString(b[:]) + ":"
}

// CleanupPrefix deletes, when the test ends, every key under prefix on the
// server at url. Errors are ignored: the server may be gone by then.
func CleanupPrefix(t testing.TB, url, prefix string) {
	t.Helper()
	t.Cleanup(func() {
		opts, err := redis.ParseURL(url)
		if err != nil {
			return
		}
		opts.MaxRetries = -1
		c := redis.NewClient(opts)
		defer c.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		iter := c.Scan(ctx, 0, prefix+"*", 1000).Iterator()
		var keys []string
		for iter.Next(ctx) {
			keys = append(keys, iter.Val())
			if len(keys) == 500 {
				c.Unlink(ctx, keys...)
				keys = keys[:0]
			}
		}
		if len(keys) > 0 {
			c.Unlink(ctx, keys...)
		}
	})
}

// Server is a private redis-server that a test may stop and restart.
type Server struct {
	t   testing.TB
	srv *server
}

// StartServer starts a redis-server only this test uses and stops it when
// the test ends. Without redis-server it skips the test, or fails it when
// TIMGUARD_REQUIRE_REDIS=1.
func StartServer(t testing.TB) *Server {
	t.Helper()
	requireBinary(t)
	srv, err := startServer()
	if err != nil {
		t.Fatalf("redistest: start redis-server: %v", err)
	}
	t.Cleanup(srv.close)
	return &Server{t: t, srv: srv}
}

// URL is the server's URL, the same across restarts.
func (s *Server) URL() string { return s.srv.URL() }

// Stop stops the server; its data is lost. Stopping twice is harmless.
func (s *Server) Stop() { s.srv.Stop() }

// Restart stops the server if it runs and starts it again, empty, on the
// same port so that clients reconnect to it.
func (s *Server) Restart() {
	s.t.Helper()
	if err := s.srv.Restart(); err != nil {
		s.t.Fatalf("redistest: restart redis-server on port %d: %v", s.srv.Port(), err)
	}
}

// server is a redis-server in a temporary directory of its own, with 64
// databases and nothing kept on disk. On Linux the kernel kills it when the
// test binary dies without running Main's cleanup.
type server struct {
	*redisproc.Server
	dir string
}

func startServer() (*server, error) {
	dir, err := os.MkdirTemp("", "redistest-")
	if err != nil {
		return nil, fmt.Errorf("temp dir: %w", err)
	}
	srv, err := redisproc.Start(dir, redisproc.Options{Databases: 64})
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	return &server{Server: srv, dir: dir}, nil
}

// close stops the server and removes its directory.
func (s *server) close() {
	s.Stop()
	_ = os.RemoveAll(s.dir)
}
