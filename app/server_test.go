package app

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/timguard/timguard/internal/redistest"
	"github.com/timguard/timguard/tim"
	"github.com/timguard/timguard/tim/timtest"
)

// startPlainBot runs the bot on e2eRules with http: set to httpSection
// (indented keys; empty leaves the defaults).
func startPlainBot(t *testing.T, httpSection string) *bot {
	t.Helper()
	im := timtest.New(timtest.Options{})
	t.Cleanup(im.Close)
	url := redistest.URL(t)
	cfg := botConfig{token: e2eToken, redisURL: url, prefix: keyPrefix(t, url), adminToken: e2eAdminTok, http: httpSection}
	return startApp(t, im, cfg, e2eRules, nil, nil)
}

// slowClient opens a connection and sends a callback's headers and half of
// its body, then nothing: a client that is slow, or stalls on purpose.
func slowClient(t *testing.T, base string) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	body := strings.Repeat("x", 1000)
	target := strings.TrimPrefix(timtest.SignedURL(base, "/callback", timtest.DefaultSDKAppID, tim.CmdBeforeSendMsg, e2eToken, time.Now()), base)
	req := fmt.Sprintf("POST %s HTTP/1.1\r\nHost: bot\r\nContent-Length: %d\r\n\r\n%s", target, len(body), body[:500])
	if _, err := io.WriteString(conn, req); err != nil {
		t.Fatal(err)
	}
	return conn
}

func TestStopWithASlowClientCutsItAndEndsCleanly(t *testing.T) {
	b := startPlainBot(t, "")
	// Signed: the bot reads its body, which never comes whole.
	conn := slowClient(t, b.base)
	// Stop only once the bot serves the slow request (its handler waits
	// for the rest of the body): on a busy machine the connection may
	// still sit in the listen queue, and closing the listener would reset
	// it without the bot ever holding it.
	waitFor(t, 10*time.Second, "the slow request to be served", func() bool { return b.app.requests.Load() == 1 })
	// The bot answers others meanwhile.
	if r := b.message(e2eGroup, "frank", "hello"); r.ErrorCode != 0 {
		t.Fatalf("a callback answered %+v", r)
	}
	b.stop() // fails the test when run returns an error (bot serve would exit 1)
	if err := conn.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if b, err := bufio.NewReader(conn).ReadByte(); !errors.Is(err, io.EOF) && !isReset(err) {
		t.Errorf("the slow client's connection read %q, %v; want it closed unanswered", b, err)
	}
	if !strings.Contains(b.stderr.String(), "cut the connections still open") {
		t.Errorf("the log does not say slow connections were cut:\n%s", b.stderr.String())
	}
}

func isReset(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && strings.Contains(op.Err.Error(), "reset")
}

func TestTheConnectionLimitHoldsNewConnectionsUntilOneCloses(t *testing.T) {
	b := startPlainBot(t, "  max_connections: 16\n  idle_timeout: 5m\n")
	// Sixteen keep-alive connections, each used once, then idle.
	var held []net.Conn
	for range 16 {
		conn, err := net.Dial("tcp", strings.TrimPrefix(b.base, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		if _, err := io.WriteString(conn, "GET /healthz HTTP/1.1\r\nHost: bot\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("connection %d: %v %v", len(held), resp, err)
		}
		resp.Body.Close()
		held = append(held, conn)
	}
	answered := make(chan int, 1)
	go func() {
		client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
		resp, err := client.Get(b.base + "/healthz")
		if err != nil {
			answered <- -1
			return
		}
		resp.Body.Close()
		answered <- resp.StatusCode
	}()
	// A seventeenth connection waits. Seeing no answer for a while cannot
	// prove it waits forever, but an answer now proves the limit broken.
	select {
	case code := <-answered:
		t.Fatalf("a 17th connection was answered (%d) while 16 were open", code)
	case <-time.After(300 * time.Millisecond):
	}
	held[0].Close()
	if code := <-answered; code != http.StatusOK {
		t.Errorf("after one connection closed the waiting request got %d, want 200", code)
	}
}
