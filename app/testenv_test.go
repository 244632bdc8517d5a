package app

// The setup the in-process tests share: a config.yaml written from the few
// values a test varies, and the app that New builds from it, served on a
// port of its own and stopped when the test ends.

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/timguard/timguard/internal/redistest"
	"github.com/timguard/timguard/tim/timtest"
)

// fastRetries is an executor: section that retries within a test's patience.
const fastRetries = "  retry_min: 20ms\n  retry_max: 300ms\n  max_attempts: 30\n"

// botConfig is what a test's config.yaml says. An empty field leaves its
// keys out, so that the bot's default applies.
type botConfig struct {
	token, previousToken string
	// imURL is the REST API base; with it come the fake IM server's admin
	// and secret key. Empty means no REST calls.
	imURL     string
	rateLimit int
	redisURL  string
	prefix    string
	// rulesFile is rules.yaml when empty.
	rulesFile  string
	adminToken string
	// executor is the body of the executor: section, indented.
	executor string
	// http is the body of the http: section, indented.
	http string
	// auditStdout sends the audit records to standard output (the app's
	// Stdout) instead of audit.jsonl.
	auditStdout bool
	// stateDir is state_dir ("" leaves it out).
	stateDir string
	// storeTimeout is store.timeout (2s when empty).
	storeTimeout string
	// record is the body of the record: section, indented.
	record string
}

// yaml renders the configuration: the callback under /callback, the store
// with a 2s timeout, the audit log in audit.jsonl and the log at debug.
func (c botConfig) yaml() string {
	var b strings.Builder
	fmt.Fprintf(&b, "listen: \"127.0.0.1:0\"\ncallback:\n  path: /callback\n  token: %q\n", c.token)
	if c.previousToken != "" {
		fmt.Fprintf(&b, "  previous_token: %q\n", c.previousToken)
	}
	fmt.Fprintf(&b, "tencent:\n  sdk_app_id: %d\n", timtest.DefaultSDKAppID)
	if c.imURL != "" {
		fmt.Fprintf(&b, "  admin: %s\n  secret_key: %q\n  api_base: %s\n",
			timtest.DefaultAdmin, timtest.DefaultSecretKey, c.imURL)
	}
	if c.rateLimit != 0 {
		fmt.Fprintf(&b, "  rate_limit: %d\n", c.rateLimit)
	}
	storeTimeout := c.storeTimeout
	if storeTimeout == "" {
		storeTimeout = "2s"
	}
	fmt.Fprintf(&b, "store:\n  redis_url: %s\n  key_prefix: %q\n  timeout: %s\n", c.redisURL, c.prefix, storeTimeout)
	rulesFile := c.rulesFile
	if rulesFile == "" {
		rulesFile = "rules.yaml"
	}
	fmt.Fprintf(&b, "rules_file: %s\n", rulesFile)
	if c.stateDir != "" {
		fmt.Fprintf(&b, "state_dir: %q\n", c.stateDir)
	}
	if c.adminToken != "" {
		fmt.Fprintf(&b, "admin:\n  token: %q\n", c.adminToken)
	}
	if !c.auditStdout {
		b.WriteString("audit:\n  file: audit.jsonl\n")
	}
	if c.executor != "" {
		b.WriteString("executor:\n" + c.executor)
	}
	if c.http != "" {
		b.WriteString("http:\n" + c.http)
	}
	if c.record != "" {
		b.WriteString("record:\n" + c.record)
	}
	b.WriteString("log:\n  level: debug\n")
	return b.String()
}

// keyPrefix returns a Redis key prefix of the test's own; the keys under it
// on the server at url are deleted when the test ends.
func keyPrefix(t *testing.T, url string) string {
	t.Helper()
	prefix := redistest.Prefix(t)
	redistest.CleanupPrefix(t, url, prefix)
	return prefix
}

// bot is one running timguard against a fake IM server.
type bot struct {
	t      *testing.T
	im     *timtest.Server
	app    *App
	dir    string
	base   string
	audit  string
	stderr *lockedBuffer
	stop   func()
	seq    int
}

// startApp writes cfg as config.yaml and rules as rules.yaml into a new
// directory, builds the app from them and runs it on a port of 127.0.0.1
// until b.stop or the end of the test. reload stands for SIGHUP (nil:
// none); now is the app's clock (nil: the real one).
func startApp(t *testing.T, im *timtest.Server, cfg botConfig, rules string, reload <-chan os.Signal, now func() time.Time) *bot {
	t.Helper()
	return startAppWith(t, im, cfg, rules, reload, Options{Stdout: io.Discard, Now: now})
}

// startAppWith is startApp with the app's options (Stderr and Listener are
// the test's).
func startAppWith(t *testing.T, im *timtest.Server, cfg botConfig, rules string, reload <-chan os.Signal, opts Options) *bot {
	t.Helper()
	dir := t.TempDir()
	write(t, filepath.Join(dir, "config.yaml"), cfg.yaml())
	write(t, filepath.Join(dir, "rules.yaml"), rules)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	stderr := &lockedBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	opts.Stderr, opts.Listener = stderr, ln
	a, err := New(ctx, filepath.Join(dir, "config.yaml"), opts)
	if err != nil {
		cancel()
		t.Fatalf("newApp: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx, reload) }()
	b := &bot{t: t, im: im, app: a, dir: dir, base: "http://" + ln.Addr().String(), audit: filepath.Join(dir, "audit.jsonl"), stderr: stderr}
	var once sync.Once
	b.stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("run: %v", err)
				}
			case <-time.After(30 * time.Second):
				t.Error("the bot did not stop within 30s")
			}
		})
	}
	t.Cleanup(b.stop)
	return b
}

// lockedBuffer is a log destination the test reads while the bot writes.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// writeAtomic replaces path by renaming a temporary file over it, the way
// editors and configuration managers do, so that a watcher never reads a
// half-written file.
func writeAtomic(t *testing.T, path, content string) {
	t.Helper()
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
	write(t, tmp, content)
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// waitFor polls cond every 10ms and fails after within.
func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited %v for %s", within, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
