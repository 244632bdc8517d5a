package harness

import (
	"bufio"
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
	"time"
)

// ErrNoRedis is returned when redis-server is not on PATH.
var ErrNoRedis = errors.New("redis-server is not on PATH: install it (apt-get install redis-server) or point REDIS_URL at a running server")

// RedisOptions configure a private redis-server.
type RedisOptions struct {
	// Dir holds the server's files (log, append-only file). Required.
	Dir string
	// Persist turns on the append-only file with an fsync per write
	// (appendonly yes, appendfsync always), so that a killed server
	// restarted on the same Dir keeps every write it acknowledged.
	// Without it the server keeps nothing on disk.
	Persist bool
}

// Redis is a private redis-server. Its methods are safe for concurrent use.
type Redis struct {
	opts RedisOptions
	port int

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
}

// StartRedis starts redis-server on a free port of 127.0.0.1.
func StartRedis(opts RedisOptions) (*Redis, error) {
	if _, err := exec.LookPath("redis-server"); err != nil {
		return nil, ErrNoRedis
	}
	if opts.Dir == "" {
		return nil, errors.New("harness: RedisOptions.Dir is empty")
	}
	var lastErr error
	for range 5 {
		port, err := FreePort()
		if err != nil {
			return nil, err
		}
		r := &Redis{opts: opts, port: port}
		if lastErr = r.Start(); lastErr == nil {
			return r, nil
		}
	}
	return nil, lastErr
}

// URL is the server's URL; it stays the same across restarts.
func (r *Redis) URL() string { return "redis://127.0.0.1:" + strconv.Itoa(r.port) + "/0" }

// PID is the server's process id, 0 when it is not running.
func (r *Redis) PID() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cmd == nil {
		return 0
	}
	return r.cmd.Process.Pid
}

// Port is the server's port.
func (r *Redis) Port() int { return r.port }

func (r *Redis) logPath() string { return filepath.Join(r.opts.Dir, "redis.log") }

// Start starts the server on its port if it is not running, and waits until
// it answers PING (up to 10 s). With Persist, it loads what the append-only
// file holds first.
func (r *Redis) Start() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cmd != nil {
		return nil
	}
	args := []string{
		"--port", strconv.Itoa(r.port),
		"--bind", "127.0.0.1",
		"--save", "",
		"--dir", r.opts.Dir,
		"--logfile", r.logPath(),
	}
	if r.opts.Persist {
		args = append(args, "--appendonly", "yes", "--appendfsync", "always")
	} else {
		args = append(args, "--appendonly", "no")
	}
	cmd := exec.Command("redis-server", args...)
	cmd.SysProcAttr = childAttr()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("run redis-server: %w", err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	r.cmd, r.exited = cmd, exited
	deadline := time.Now().Add(10 * time.Second)
	for {
		select {
		case <-exited:
			r.cmd = nil
			return fmt.Errorf("redis-server on port %d exited at start: %s", r.port, tail(r.logPath(), 5))
		default:
		}
		err := redisPing(r.port)
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			r.stopLocked(syscall.SIGKILL)
			return fmt.Errorf("redis-server on port %d does not answer: %w: %s", r.port, err, tail(r.logPath(), 5))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Kill ends the server with SIGKILL, as a crash would, and waits until it
// has exited. Killing a stopped server does nothing.
func (r *Redis) Kill() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.stopLocked(syscall.SIGKILL)
}

// Stop ends the server with SIGTERM (SIGKILL after 5 s) and waits.
func (r *Redis) Stop() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.stopLocked(syscall.SIGTERM)
}

func (r *Redis) stopLocked(sig syscall.Signal) {
	if r.cmd == nil {
		return
	}
	_ = r.cmd.Process.Signal(sig)
	select {
	case <-r.exited:
	case <-time.After(5 * time.Second):
		_ = r.cmd.Process.Kill()
		<-r.exited
	}
	r.cmd = nil
}

// redisPing sends PING over RESP and expects +PONG.
func redisPing(port int) error {
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
		return fmt.Errorf("PING answered %q", strings.TrimSpace(line))
	}
	return nil
}

// FreePort returns a TCP port of 127.0.0.1 that was free a moment ago.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// tail returns the last n lines of the file at path.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
