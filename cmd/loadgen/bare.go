package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/gin-gonic/gin"
)

// bareCommand is the hidden subcommand that serves the bare handler; the
// load generator runs itself with it as a separate process.
const bareCommand = "bare-server"

// okEnvelope is the answer of the bare handler, the same bytes the bot
// answers a callback it lets through with.
var okEnvelope = []byte(`{"ActionStatus":"OK","ErrorInfo":"","ErrorCode":0}`)

// serveBare serves POST /callback with a gin handler that reads the body and
// answers the OK envelope, on 127.0.0.1 at a free port, until SIGTERM or
// SIGINT. It prints "listening ADDR" on stdout once it accepts connections.
func serveBare(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("loadgen "+bareCommand, flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:0", "address to listen on")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	r.POST("/callback", func(c *gin.Context) {
		_, _ = io.Copy(io.Discard, c.Request.Body)
		c.Data(http.StatusOK, "application/json; charset=utf-8", okEnvelope)
	})
	return serveGin(r, *listen, "bare server", stdout, stderr)
}

// serveGin serves r on listen until SIGTERM or SIGINT, and prints
// "listening ADDR" on stdout once it accepts connections.
func serveGin(r *gin.Engine, listen, name string, stdout, stderr io.Writer) int {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return 1
	}
	srv := &http.Server{Handler: r, ReadHeaderTimeout: 5 * time.Second, IdleTimeout: 2 * time.Minute}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	fmt.Fprintf(stdout, "listening %s\n", ln.Addr())
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return 1
	}
	return 0
}

// server is a reference handler (bare or floor) running as a process of
// its own.
type server struct {
	URL    string
	cmd    *exec.Cmd
	exited chan struct{}
}

// PID is the server's process id.
func (b *server) PID() int { return b.cmd.Process.Pid }

// startServer runs this program with a server subcommand and waits until
// it listens.
func startServer(ctx context.Context, args ...string) (*server, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find the load generator's own binary: %w", err)
	}
	cmd := exec.Command(self, args...)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start the %s: %w", args[0], err)
	}
	b := &server{cmd: cmd, exited: make(chan struct{})}
	line := make(chan string, 1)
	go func() {
		// Wait only once everything is read from the pipe (os/exec's rule).
		br := bufio.NewReader(out)
		l, _ := br.ReadString('\n')
		line <- strings.TrimSpace(l)
		_, _ = io.Copy(io.Discard, br)
		_ = cmd.Wait()
		close(b.exited)
	}()
	select {
	case l := <-line:
		addr, found := strings.CutPrefix(l, "listening ")
		if !found {
			b.stop()
			return nil, fmt.Errorf("the %s did not start (it said %q)", args[0], l)
		}
		b.URL = "http://" + addr
		return b, nil
	case <-time.After(10 * time.Second):
		b.stop()
		return nil, fmt.Errorf("the %s did not listen within 10s", args[0])
	case <-ctx.Done():
		b.stop()
		return nil, ctx.Err()
	}
}

func (b *server) stop() {
	_ = b.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-b.exited:
	case <-time.After(5 * time.Second):
		_ = b.cmd.Process.Kill()
		<-b.exited
	}
}
