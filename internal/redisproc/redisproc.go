// Package redisproc runs a private redis-server: on a free port of
// 127.0.0.1, bound to that address only, with its files in a directory the
// caller owns. Start waits until the server answers PING; the server can be
// stopped, killed and started again on the same port, so that clients
// reconnect to it.
//
// It serves the test helpers (internal/redistest) and the load harness
// (test/harness), and so does not import testing.
package redisproc

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

// ErrNotInstalled is returned when redis-server is not on PATH.
var ErrNotInstalled = errors.New("redis-server is not on PATH: install it (apt-get install redis-server) or point REDIS_URL at a running server")

// Options configure a server.
type Options struct {
	// Persist turns on the append-only file with an fsync per write
	// (appendonly yes, appendfsync always), so that a killed server
	// started again on the same directory keeps every write it
	// acknowledged. Without it the server keeps nothing on disk.
	Persist bool
	// Databases is the number of databases (--databases); 0 keeps
	// redis-server's default.
	Databases int
}

// Server is one redis-server process. Its methods are safe for concurrent
// use.
type Server struct {
	dir  string
	opts Options
	port int

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
}

// Start starts redis-server on a free port of 127.0.0.1 with its files in
// dir, trying another port when the one picked is taken meanwhile. On Linux
// the kernel kills the server when the process that started it dies.
func Start(dir string, opts Options) (*Server, error) {
	if _, err := exec.LookPath("redis-server"); err != nil {
		return nil, ErrNotInstalled
	}
	if dir == "" {
		return nil, errors.New("redisproc: no directory for the server's files")
	}
	var lastErr error
	for range 5 {
		port, err := FreePort()
		if err != nil {
			return nil, err
		}
		s := &Server{dir: dir, opts: opts, port: port}
		if lastErr = s.Start(); lastErr == nil {
			return s, nil
		}
	}
	return nil, lastErr
}

// URL is the server's URL (database 0); it stays the same across restarts.
func (s *Server) URL() string { return "redis://127.0.0.1:" + strconv.Itoa(s.port) + "/0" }

// Port is the server's port.
func (s *Server) Port() int { return s.port }

// PID is the server's process id, 0 when it is not running.
func (s *Server) PID() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return 0
	}
	return s.cmd.Process.Pid
}

func (s *Server) logPath() string {
	return filepath.Join(s.dir, "redis-"+strconv.Itoa(s.port)+".log")
}

// Start starts the server on its port if it is not running, and waits until
// it answers PING (up to 10 s). With Persist, it loads what the append-only
// file holds first.
func (s *Server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.startLocked()
}

// Restart stops the server if it runs (SIGTERM) and starts it again on the
// same port.
func (s *Server) Restart() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopLocked(syscall.SIGTERM)
	return s.startLocked()
}

// Stop ends the server with SIGTERM (SIGKILL after 5 s) and waits until it
// has exited. Stopping a stopped server does nothing.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopLocked(syscall.SIGTERM)
}

// Kill ends the server with SIGKILL, as a crash would, and waits until it
// has exited. Killing a stopped server does nothing.
func (s *Server) Kill() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopLocked(syscall.SIGKILL)
}

func (s *Server) startLocked() error {
	if s.cmd != nil {
		return nil
	}
	args := []string{
		"--port", strconv.Itoa(s.port),
		"--bind", "127.0.0.1",
		"--save", "",
		"--dir", s.dir,
		"--logfile", s.logPath(),
	}
	if s.opts.Persist {
		args = append(args, "--appendonly", "yes", "--appendfsync", "always")
	} else {
		args = append(args, "--appendonly", "no")
	}
	if s.opts.Databases > 0 {
		args = append(args, "--databases", strconv.Itoa(s.opts.Databases))
	}
	cmd := exec.Command("redis-server", args...)
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
			return fmt.Errorf("redis-server on port %d exited at start: %s", s.port, s.logTail(5))
		default:
		}
		err := ping(s.port)
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			s.stopLocked(syscall.SIGKILL)
			return fmt.Errorf("redis-server on port %d does not answer: %w: %s", s.port, err, s.logTail(5))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stopLocked sends sig, then SIGKILL if the server has not exited within
// 5 s, and waits for it.
func (s *Server) stopLocked(sig syscall.Signal) {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Signal(sig)
	select {
	case <-s.exited:
	case <-time.After(5 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
	s.cmd = nil
}

// logTail returns the last n lines of the server's log.
func (s *Server) logTail(n int) string {
	b, err := os.ReadFile(s.logPath())
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// ping sends PING over RESP to 127.0.0.1:port and expects +PONG.
func ping(port int) error {
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
