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
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
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
		shared.srv.stop()
		shared.srv.cleanup()
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
		shared.srv, shared.err = startServer(0)
	}
	if shared.err != nil {
		t.Fatalf("redistest: start the shared redis-server: %v", shared.err)
	}
	return shared.srv.url()
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
	mu  sync.Mutex
	srv *server
}

// StartServer starts a redis-server only this test uses and stops it when
// the test ends. Without redis-server it skips the test, or fails it when
// TIMGUARD_REQUIRE_REDIS=1.
func StartServer(t testing.TB) *Server {
	t.Helper()
	requireBinary(t)
	srv, err := startServer(0)
	if err != nil {
		t.Fatalf("redistest: start redis-server: %v", err)
	}
	s := &Server{t: t, srv: srv}
	t.Cleanup(func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.srv.stop()
		s.srv.cleanup()
	})
	return s
}

// URL is the server's URL, the same across restarts.
func (s *Server) URL() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.srv.url()
}

// Stop stops the server; its data is lost. Stopping twice is harmless.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.srv.stop()
}

// Restart stops the server if it runs and starts it again, empty, on the
// same port so that clients reconnect to it.
func (s *Server) Restart() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.srv.stop()
	if err := s.srv.start(); err != nil {
		s.t.Fatalf("redistest: restart redis-server on port %d: %v", s.srv.port, err)
	}
}

// server runs one redis-server process.
type server struct {
	port   int
	dir    string
	cmd    *exec.Cmd
	exited chan struct{}
}

// startServer starts redis-server on port, or on a free port when port is 0
// (trying again with another port if the one picked is taken meanwhile).
func startServer(port int) (*server, error) {
	dir, err := os.MkdirTemp("", "redistest-")
	if err != nil {
		return nil, fmt.Errorf("temp dir: %w", err)
	}
	var lastErr error
	for range 5 {
		p := port
		if p == 0 {
			if p, err = freePort(); err != nil {
				_ = os.RemoveAll(dir)
				return nil, err
			}
		}
		s := &server{port: p, dir: dir}
		if lastErr = s.start(); lastErr == nil {
			return s, nil
		}
		if port != 0 {
			break
		}
	}
	_ = os.RemoveAll(dir)
	return nil, lastErr
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func (s *server) url() string {
	return "redis://127.0.0.1:" + strconv.Itoa(s.port) + "/0"
}

func (s *server) logPath() string {
	return filepath.Join(s.dir, "redis-"+strconv.Itoa(s.port)+".log")
}

// start runs redis-server and waits until it answers PING.
func (s *server) start() error {
	cmd := exec.Command("redis-server",
		"--port", strconv.Itoa(s.port),
		"--bind", "127.0.0.1",
		"--save", "",
		"--appendonly", "no",
		"--dir", s.dir,
		"--databases", "64",
		"--logfile", s.logPath(),
	)
	cmd.SysProcAttr = procAttr()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("run redis-server: %w", err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	s.cmd, s.exited = cmd, exited

	deadline := time.Now().Add(10 * time.Second)
	for {
		select {
		case <-exited:
			s.cmd = nil
			return fmt.Errorf("redis-server on port %d exited at start: %s", s.port, s.tailLog())
		default:
		}
		if err := rawPing(s.port); err == nil {
			return nil
		} else if time.Now().After(deadline) {
			s.stop()
			return fmt.Errorf("redis-server on port %d does not answer: %w: %s", s.port, err, s.tailLog())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stop ends the process: SIGTERM, then SIGKILL if it lingers.
func (s *server) stop() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(5 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
	s.cmd = nil
}

func (s *server) cleanup() {
	_ = os.RemoveAll(s.dir)
}

func (s *server) tailLog() string {
	b, err := os.ReadFile(s.logPath())
	if err != nil {
		return "(no log)"
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return strings.Join(lines[max(0, len(lines)-5):], "\n")
}

// rawPing sends PING over RESP and expects +PONG.
func rawPing(port int) error {
	c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("*1\r\n$4\r\nPING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if strings.TrimSpace(line) != "+PONG" {
		return errors.New("unexpected reply " + strings.TrimSpace(line))
	}
	return nil
}
