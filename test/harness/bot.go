package harness

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// BotPackage is the import path of the bot's main package.
const BotPackage = "github.com/timguard/timguard/cmd/bot"

// BuildBot compiles the bot into dir and returns the binary's path. It runs
// the go command found on PATH, so it must be called from inside the
// timguard module (the repository or any folder below it).
func BuildBot(ctx context.Context, dir string) (string, error) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		return "", errors.New("the go command is not on PATH; install Go or pass the path of a built bot binary")
	}
	out := filepath.Join(dir, "timguard-bot")
	cmd := exec.CommandContext(ctx, goBin, "build", "-o", out, BotPackage)
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s: %w\n%s", BotPackage, err, b)
	}
	return out, nil
}

// BotConfig is what the harness writes into the bot's config file. Zero
// fields take the values given in their comments.
type BotConfig struct {
	// Port the bot listens on, on 127.0.0.1 (a free port when 0).
	Port int
	// Token signs the callbacks ("" switches the check off).
	Token string
	// SDKAppID of the app (timtest.DefaultSDKAppID when 0).
	SDKAppID uint64
	// Admin and SecretKey authenticate REST calls with the fake IM server
	// at IMURL (timtest's defaults when empty).
	Admin, SecretKey, IMURL string
	// RateLimit is tencent.rate_limit (200).
	RateLimit int
	// RESTTimeout is tencent.timeout (3s).
	RESTTimeout time.Duration
	// RedisURL and KeyPrefix select the store (the embedded one when
	// RedisURL is empty).
	RedisURL, KeyPrefix string
	// StoreTimeout is store.timeout (250ms).
	StoreTimeout time.Duration
	// FailMode is store.fail_mode.
	FailMode map[string]string
	// Executor settings; zero values keep the bot's defaults.
	Lease, RetryMin, RetryMax time.Duration
	MaxAttempts, Workers      int
	// LogLevel is log.level (info).
	LogLevel string
	// StateDir is state_dir: where the bot keeps the decisions Redis did
	// not take (none when empty).
	StateDir string
	// AuditFile is audit.file, an absolute path (audit.jsonl beside the
	// config when empty). The bot watches the config's directory for
	// reloads: an audit log elsewhere spares it a file event per record.
	AuditFile string
}

// YAML renders the config file. The rules are in rules.yaml beside it; the
// audit log goes to AuditFile, or audit.jsonl beside it.
func (c BotConfig) YAML() string {
	var b strings.Builder
	dur := func(d time.Duration) string { return strconv.Quote(d.String()) }
	fmt.Fprintf(&b, "listen: \"127.0.0.1:%d\"\n", c.Port)
	fmt.Fprintf(&b, "callback:\n  path: /callback\n  token: %q\n", c.Token)
	fmt.Fprintf(&b, "tencent:\n  sdk_app_id: %d\n  admin: %q\n  secret_key: %q\n  api_base: %q\n",
		orUint(c.SDKAppID, 1400000000), orString(c.Admin, "administrator"),
		orString(c.SecretKey, "timtest-secret-key-0123456789abcdef"), c.IMURL)
	fmt.Fprintf(&b, "  rate_limit: %d\n  timeout: %s\n", orInt(c.RateLimit, 200), dur(orDur(c.RESTTimeout, 3*time.Second)))
	fmt.Fprintf(&b, "store:\n  redis_url: %q\n  key_prefix: %q\n  timeout: %s\n", c.RedisURL, orString(c.KeyPrefix, "timguard:"),
		dur(orDur(c.StoreTimeout, 250*time.Millisecond)))
	if len(c.FailMode) > 0 {
		b.WriteString("  fail_mode:\n")
		kinds := make([]string, 0, len(c.FailMode))
		for k := range c.FailMode {
			kinds = append(kinds, k)
		}
		sort.Strings(kinds)
		for _, k := range kinds {
			fmt.Fprintf(&b, "    %s: %s\n", k, c.FailMode[k])
		}
	}
	fmt.Fprintf(&b, "rules_file: rules.yaml\naudit:\n  file: %q\n", orString(c.AuditFile, "audit.jsonl"))
	if c.StateDir != "" {
		fmt.Fprintf(&b, "state_dir: %q\n", c.StateDir)
	}
	b.WriteString("executor:\n")
	if c.Lease > 0 {
		fmt.Fprintf(&b, "  lease: %s\n", dur(c.Lease))
	}
	if c.RetryMin > 0 {
		fmt.Fprintf(&b, "  retry_min: %s\n", dur(c.RetryMin))
	}
	if c.RetryMax > 0 {
		fmt.Fprintf(&b, "  retry_max: %s\n", dur(c.RetryMax))
	}
	if c.MaxAttempts > 0 {
		fmt.Fprintf(&b, "  max_attempts: %d\n", c.MaxAttempts)
	}
	if c.Workers > 0 {
		fmt.Fprintf(&b, "  workers: %d\n", c.Workers)
	}
	fmt.Fprintf(&b, "  shutdown_grace: \"5s\"\nlog:\n  level: %s\n  format: json\n", orString(c.LogLevel, "info"))
	return b.String()
}

func orString(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

func orInt(v, def int) int {
	if v == 0 {
		return def
	}
	return v
}

func orUint(v, def uint64) uint64 {
	if v == 0 {
		return def
	}
	return v
}

func orDur(v, def time.Duration) time.Duration {
	if v == 0 {
		return def
	}
	return v
}

// Bot is a running bot process.
type Bot struct {
	// Name tells bots apart in messages.
	Name string
	// URL is the base URL, http://127.0.0.1:PORT.
	URL string
	// Dir holds config.yaml, rules.yaml, audit.jsonl (unless
	// BotConfig.AuditFile names another file) and bot.log (the
	// operational log, standard error).
	Dir string

	audit string

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
	killed atomic.Bool
	err    error // how the process ended, once exited is closed
}

// AuditPath is the bot's audit log.
func (b *Bot) AuditPath() string {
	if b.audit != "" {
		return b.audit
	}
	return filepath.Join(b.Dir, "audit.jsonl")
}

// LogPath is the bot's operational log.
func (b *Bot) LogPath() string { return filepath.Join(b.Dir, "bot.log") }

// StartBot writes cfg and rules into dir, runs binary serve, and waits up to
// 30 s until /readyz answers 200. A port taken in between is retried with
// another free port when cfg.Port is 0.
func StartBot(ctx context.Context, name, binary, dir string, cfg BotConfig, rules string) (*Bot, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "rules.yaml"), []byte(rules), 0o600); err != nil {
		return nil, err
	}
	fixed := cfg.Port != 0
	var lastErr error
	for range 3 {
		if !fixed {
			p, err := FreePort()
			if err != nil {
				return nil, err
			}
			cfg.Port = p
		}
		b, err := startBot(ctx, name, binary, dir, cfg)
		if err == nil {
			return b, nil
		}
		lastErr = err
		if fixed || !strings.Contains(err.Error(), "address already in use") {
			break
		}
	}
	return nil, lastErr
}

func startBot(ctx context.Context, name, binary, dir string, cfg BotConfig) (*Bot, error) {
	cfgPath := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg.YAML()), 0o600); err != nil {
		return nil, err
	}
	logFile, err := os.OpenFile(filepath.Join(dir, "bot.log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	defer logFile.Close() // the child keeps its own descriptor
	cmd := exec.Command(binary, "serve", "--config", cfgPath)
	cmd.Dir = dir
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.SysProcAttr = childAttr()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", binary, err)
	}
	b := &Bot{Name: name, URL: "http://127.0.0.1:" + strconv.Itoa(cfg.Port), Dir: dir, audit: cfg.AuditFile, cmd: cmd, exited: make(chan struct{})}
	go func() {
		err := cmd.Wait()
		b.mu.Lock()
		b.err = err
		b.mu.Unlock()
		close(b.exited)
	}()
	if err := b.waitReady(ctx, 30*time.Second); err != nil {
		b.Kill()
		return nil, err
	}
	return b, nil
}

// waitReady polls /readyz until it answers 200.
func (b *Bot) waitReady(ctx context.Context, within time.Duration) error {
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(within)
	for {
		select {
		case <-b.exited:
			return fmt.Errorf("bot %s exited at start (%w); its log ends:\n%s", b.Name, b.exitErr(), tail(b.LogPath(), 10))
		case <-ctx.Done():
			return ctx.Err()
		default:
		}
		resp, err := client.Get(b.URL + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("bot %s not ready within %v (last: %w); its log ends:\n%s", b.Name, within, err, tail(b.LogPath(), 10))
		}
		time.Sleep(25 * time.Millisecond)
	}
}

func (b *Bot) exitErr() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.err
}

// Kill ends the bot with SIGKILL, as a crash or an OOM kill would, and
// waits until it has exited.
func (b *Bot) Kill() {
	b.killed.Store(true)
	_ = b.cmd.Process.Signal(syscall.SIGKILL)
	<-b.exited
}

// Killed reports whether Kill was called: the process may have been cut in
// the middle of writing its log or audit file.
func (b *Bot) Killed() bool { return b.killed.Load() }

// Stop asks the bot to stop with SIGTERM and waits up to within for it to
// exit (then kills it). It returns an error when the bot had to be killed
// or exited with an error.
func (b *Bot) Stop(within time.Duration) error {
	_ = b.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-b.exited:
	case <-time.After(within):
		b.Kill()
		return fmt.Errorf("bot %s did not stop within %v after SIGTERM; killed", b.Name, within)
	}
	if err := b.exitErr(); err != nil {
		return fmt.Errorf("bot %s exited with %w; its log ends:\n%s", b.Name, err, tail(b.LogPath(), 10))
	}
	return nil
}

// PID is the bot's process id.
func (b *Bot) PID() int { return b.cmd.Process.Pid }

// Exited reports whether the process has ended.
func (b *Bot) Exited() bool {
	select {
	case <-b.exited:
		return true
	default:
		return false
	}
}

// LogTail returns the last n lines of the bot's operational log.
func (b *Bot) LogTail(n int) string { return tail(b.LogPath(), n) }

// tail returns the last n lines of the file at path.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
