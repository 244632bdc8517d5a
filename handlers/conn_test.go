package handlers

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/timguard/timguard/policy"
	"github.com/timguard/timguard/tim"
)

// exchange sends one raw HTTP/1.1 request on conn and reads the answer.
func exchange(t *testing.T, conn net.Conn, r *bufio.Reader, method, target, header, body string) *http.Response {
	t.Helper()
	req := fmt.Sprintf("%s %s HTTP/1.1\r\nHost: bot\r\nContent-Type: application/json\r\nContent-Length: %d\r\n%s\r\n%s",
		method, target, len(body), header, body)
	if _, err := io.WriteString(conn, req); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(r, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

// closedByServer reports whether the server closed conn: a read returns EOF.
// The deadline only keeps a broken server from hanging the test.
func closedByServer(t *testing.T, conn net.Conn, r *bufio.Reader) bool {
	t.Helper()
	if err := conn.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	_, err := r.ReadByte()
	return errors.Is(err, io.EOF)
}

func TestAConnectionIsClosedAfterA401(t *testing.T) {
	ts := newTestServer(t, handlerRules, []string{testToken})
	body, cmd := readExample(t, "BeforeSendMsg")
	rt := strconv.FormatInt(ts.now.Unix(), 10)
	signed := "/callback?SdkAppid=1400000000&CallbackCommand=" + cmd + "&RequestTime=" + rt + "&Sign=" + tim.Sign(testToken, rt)
	forged := "/callback?SdkAppid=1400000000&CallbackCommand=" + cmd + "&RequestTime=" + rt + "&Sign=" + tim.Sign("guess", rt)

	admin := newAdminFixture(t)
	adminSrv := httptest.NewServer(admin.router)
	t.Cleanup(adminSrv.Close)

	tests := []struct {
		name           string
		srv            *httptest.Server
		method, target string
		header, body   string
		status         int
		closed         bool
	}{
		{"a forged callback", ts.srv, "POST", forged, "", string(body), http.StatusUnauthorized, true},
		{"an admin call with a wrong token", adminSrv, "GET", "/v1/rules", "Authorization: Bearer wrong\r\n", "", http.StatusUnauthorized, true},
		{"an admin call without a token", adminSrv, "GET", "/v1/rules", "", "", http.StatusUnauthorized, true},
		{"a signed callback keeps its connection", ts.srv, "POST", signed, "", string(body), http.StatusOK, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conn, err := net.Dial("tcp", strings.TrimPrefix(tt.srv.URL, "http://"))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			r := bufio.NewReader(conn)
			resp := exchange(t, conn, r, tt.method, tt.target, tt.header, tt.body)
			if resp.StatusCode != tt.status || resp.Close != tt.closed {
				t.Fatalf("answer %d with Connection: close %v; want %d and %v", resp.StatusCode, resp.Close, tt.status, tt.closed)
			}
			if !tt.closed {
				// The connection serves a second request.
				if again := exchange(t, conn, r, tt.method, tt.target, tt.header, tt.body); again.StatusCode != tt.status {
					t.Errorf("second request answered %d", again.StatusCode)
				}
				return
			}
			if !closedByServer(t, conn, r) {
				t.Error("the server kept the connection open after the 401")
			}
		})
	}
}

func TestA401WithABodyStillComingClosesAtOnce(t *testing.T) {
	ts := newTestServer(t, handlerRules, []string{testToken})
	_, cmd := readExample(t, "BeforeSendMsg")
	rt := strconv.FormatInt(ts.now.Unix(), 10)
	forged := "/callback?SdkAppid=1400000000&CallbackCommand=" + cmd + "&RequestTime=" + rt + "&Sign=" + tim.Sign("guess", rt)
	conn, err := net.Dial("tcp", strings.TrimPrefix(ts.srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// Half of the body is sent, the rest never comes.
	if _, err := fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: bot\r\nContent-Length: 1000\r\n\r\n%s", forged, strings.Repeat("x", 500)); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(conn)
	resp, err := http.ReadResponse(r, nil)
	if err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("answer %v, %v; want 401", resp, err)
	}
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		t.Fatal(err)
	}
	if !closedByServer(t, conn, r) {
		t.Error("the server kept the connection open, waiting for the rest of a refused body")
	}
}

// slowDecider decides after wait and records whether the request's context
// was still alive then.
type slowDecider struct {
	wait      time.Duration
	cancelled chan bool
}

func (d *slowDecider) Handle(ctx context.Context, _ *policy.Event) policy.Outcome {
	time.Sleep(d.wait)
	d.cancelled <- ctx.Err() != nil
	return policy.Outcome{Reply: tim.OK()}
}

func TestACallbackOutlivingTheReadTimeoutKeepsItsContext(t *testing.T) {
	dec := &slowDecider{wait: 400 * time.Millisecond, cancelled: make(chan bool, 1)}
	gin.SetMode(gin.ReleaseMode)
	router := New(Config{CallbackPath: "/callback", SDKAppID: testAppID, MaxBodyBytes: 64 << 10, Deadline: 5 * time.Second},
		Deps{Decider: dec})
	srv := httptest.NewUnstartedServer(router)
	// The request must arrive within 100ms; deciding may take longer.
	srv.Config.ReadTimeout = 100 * time.Millisecond
	srv.Config.ReadHeaderTimeout = 100 * time.Millisecond
	srv.Start()
	t.Cleanup(srv.Close)
	body, cmd := readExample(t, "BeforeSendMsg")
	resp, err := http.Post(srv.URL+"/callback?SdkAppid=1400000000&CallbackCommand="+cmd, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if <-dec.cancelled {
		t.Error("the callback's context was cancelled when the read timeout passed after its body was read")
	}
}

// A decision that outlives the server's write timeout (an 8,000-member join
// commits in many round trips) is still answered: the timeout bounds
// writing the answer, from when it is ready.
func TestACallbackOutlivingTheWriteTimeoutIsAnswered(t *testing.T) {
	dec := &slowDecider{wait: 400 * time.Millisecond, cancelled: make(chan bool, 1)}
	gin.SetMode(gin.ReleaseMode)
	router := New(Config{CallbackPath: "/callback", SDKAppID: testAppID, MaxBodyBytes: 64 << 10, Deadline: 5 * time.Second},
		Deps{Decider: dec})
	srv := httptest.NewUnstartedServer(router)
	srv.Config.WriteTimeout = 100 * time.Millisecond
	srv.Start()
	t.Cleanup(srv.Close)
	body, cmd := readExample(t, "BeforeSendMsg")
	resp, err := http.Post(srv.URL+"/callback?SdkAppid=1400000000&CallbackCommand="+cmd, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatalf("the callback got no answer: %v", err)
	}
	defer resp.Body.Close()
	if out, err := io.ReadAll(resp.Body); err != nil || resp.StatusCode != http.StatusOK || !bytes.Contains(out, []byte(`"ActionStatus":"OK"`)) {
		t.Errorf("answer %d %q, %v; want 200 OK", resp.StatusCode, out, err)
	}
}
