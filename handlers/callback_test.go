package handlers

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/timguard/timguard/audit"
	"github.com/timguard/timguard/policy"
	"github.com/timguard/timguard/rules"
	"github.com/timguard/timguard/store/memory"
	"github.com/timguard/timguard/tim"
	"github.com/timguard/timguard/tim/timtest"
)

const (
	testAppID = 1400000000
	testToken = "callback-token-xyz"
)

const handlerRules = `version: 1
lists: {spam: ["free crypto"], banned: [tommy]}
rules:
  - {name: no-leckie, on: join_request, if: 'user.id == "leckie"', verdict: reject, reply: {code: 10130, text: "Applications are closed."}}
  - {name: banned-invitee, on: invite, if: 'user.id in lists.banned', verdict: refuse}
  - {name: spam, on: message, if: 'contains_any(message.text, lists.spam)', verdict: rewrite, rewrite: {mask: lists.spam}}
  - {name: images, on: message, if: '"TIMImageElem" in message.types', verdict: drop}
  - {name: welcome, on: member_joined, if: 'true', actions: [{warn: "welcome"}]}
`

// spy counts the callbacks that reach the decider.
type spy struct {
	next  Decider
	calls atomic.Int64
	panic bool
}

func (s *spy) Handle(ctx context.Context, ev *policy.Event) policy.Outcome {
	s.calls.Add(1)
	if s.panic {
		panic("decider exploded")
	}
	return s.next.Handle(ctx, ev)
}

type auditLines struct {
	mu    sync.Mutex
	lines []string
}

func (a *auditLines) WriteLine(b []byte) {
	a.mu.Lock()
	a.lines = append(a.lines, string(b))
	a.mu.Unlock()
}

func (a *auditLines) count() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.lines)
}

type holder struct{ set *rules.Set }

func (h holder) Rules() *rules.Set { return h.set }

type testServer struct {
	srv   *httptest.Server
	spy   *spy
	audit *auditLines
	now   time.Time
}

func newTestServer(t testing.TB, ruleSrc string, tokens []string) *testServer {
	t.Helper()
	set, err := rules.Parse("test.yaml", []byte(ruleSrc))
	if err != nil {
		t.Fatal(err)
	}
	ts := &testServer{audit: &auditLines{}, now: time.Now()}
	engine := policy.New(policy.Config{Rules: holder{set}, Store: memory.New(memory.Options{}), Audit: ts.audit})
	ts.spy = &spy{next: engine}
	gin.SetMode(gin.ReleaseMode)
	r := New(Config{
		CallbackPath: "/callback", SDKAppID: testAppID, Tokens: func() []string { return tokens },
		MaxClockSkew: time.Minute, MaxBodyBytes: 64 << 10, Deadline: time.Second,
	}, Deps{Decider: ts.spy, Now: func() time.Time { return ts.now }, Ready: func(context.Context) error { return nil }})
	ts.srv = httptest.NewServer(r)
	t.Cleanup(ts.srv.Close)
	return ts
}

func (ts *testServer) post(t testing.TB, url string, body []byte) (int, string) {
	t.Helper()
	resp, err := http.Post(url, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

func readExample(t testing.TB, name string) ([]byte, string) {
	t.Helper()
	body, err := os.ReadFile(filepath.Join("..", "tim", "testdata", "callbacks", name+".json"))
	if err != nil {
		t.Fatal(err)
	}
	var head struct{ CallbackCommand string }
	if err := json.Unmarshal(body, &head); err != nil {
		t.Fatal(err)
	}
	return body, head.CallbackCommand
}

func TestEveryCallbackExampleGetsTheRightEnvelope(t *testing.T) {
	ts := newTestServer(t, handlerRules, []string{testToken})
	ok := `{"ActionStatus":"OK","ErrorInfo":"","ErrorCode":0}`
	tests := []struct {
		example string
		want    string
	}{
		{"BeforeApplyJoinGroup", `{"ActionStatus":"OK","ErrorInfo":"Applications are closed.","ErrorCode":10130}`},
		{"BeforeInviteJoinGroup", `{"ActionStatus":"OK","ErrorInfo":"","ErrorCode":0,"RefusedMembers_Account":["tommy"]}`},
		{"BeforeSendMsg", `{"ActionStatus":"OK","ErrorInfo":"","ErrorCode":0,"MsgBody":[{"MsgType":"TIMTextElem","MsgContent":{"Text":"red packet"}},{"MsgType":"TIMTextElem","MsgContent":{"Text":"*********** at t.me/example"}}]}`},
		{"BeforeSendMsgMixed", `{"ActionStatus":"OK","ErrorInfo":"","ErrorCode":2}`},
		{"AfterSendMsg", ok},
		{"AfterNewMemberJoin", ok},
		{"AfterNewMemberJoinInvited", ok},
		{"AfterMemberExit", ok},
		{"AfterMemberExitQuit", ok},
		{"AfterGroupDestroyed", ok},
		{"AfterGroupInfoChanged", ok},
		{"RequestOverLimit", ok},
	}
	for _, tt := range tests {
		t.Run(tt.example, func(t *testing.T) {
			body, cmd := readExample(t, tt.example)
			before := ts.audit.count()
			url := timtest.SignedURL(ts.srv.URL, "/callback", testAppID, cmd, testToken, ts.now)
			status, got := ts.post(t, url, body)
			if status != http.StatusOK || got != tt.want {
				t.Fatalf("status %d body %s\nwant 200 %s", status, got, tt.want)
			}
			if ts.audit.count() == before {
				t.Errorf("no audit record for %s", cmd)
			}
		})
	}
}

func TestForgedCallbacksAre401AndNotEvaluated(t *testing.T) {
	ts := newTestServer(t, handlerRules, []string{testToken})
	body, cmd := readExample(t, "BeforeSendMsg")
	rt := strconv.FormatInt(ts.now.Unix(), 10)
	base := ts.srv.URL + "/callback?CallbackCommand=" + cmd + "&contenttype=json"
	old := strconv.FormatInt(ts.now.Add(-5*time.Minute).Unix(), 10)
	tests := []struct {
		name string
		url  string
		code string
	}{
		{"a wrong sign", base + "&SdkAppid=1400000000&RequestTime=" + rt + "&Sign=" + tim.Sign("other-token", rt), "bad_sign"},
		{"a sign that is not hex", base + "&SdkAppid=1400000000&RequestTime=" + rt + "&Sign=not-a-signature", "bad_sign"},
		{"a missing sign", base + "&SdkAppid=1400000000&RequestTime=" + rt, "missing_sign"},
		{"a missing RequestTime", base + "&SdkAppid=1400000000&Sign=" + tim.Sign(testToken, rt), "missing_sign"},
		{"an old RequestTime, correctly signed", base + "&SdkAppid=1400000000&RequestTime=" + old + "&Sign=" + tim.Sign(testToken, old), "stale_request_time"},
		{"a RequestTime that is not a number", base + "&SdkAppid=1400000000&RequestTime=soon&Sign=" + tim.Sign(testToken, "soon"), "bad_request_time"},
		{"another SdkAppid, correctly signed", base + "&SdkAppid=1400000001&RequestTime=" + rt + "&Sign=" + tim.Sign(testToken, rt), "wrong_sdkappid"},
		{"no SdkAppid", base + "&RequestTime=" + rt + "&Sign=" + tim.Sign(testToken, rt), "wrong_sdkappid"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before, auditBefore := ts.spy.calls.Load(), ts.audit.count()
			status, got := ts.post(t, tt.url, body)
			if status != http.StatusUnauthorized {
				t.Fatalf("status %d, want 401 (body %s)", status, got)
			}
			var e errorBody
			if err := json.Unmarshal([]byte(got), &e); err != nil || e.Code != tt.code || e.Error == "" {
				t.Errorf("body %s; want a JSON error with code %q and a reason", got, tt.code)
			}
			if ts.spy.calls.Load() != before || ts.audit.count() != auditBefore {
				t.Errorf("a forged callback was evaluated")
			}
		})
	}
}

func TestTokenRotationAcceptsBothTokens(t *testing.T) {
	ts := newTestServer(t, handlerRules, []string{"new-token-123", "old-token-456"})
	body, cmd := readExample(t, "AfterSendMsg")
	for _, tok := range []string{"new-token-123", "old-token-456"} {
		status, got := ts.post(t, timtest.SignedURL(ts.srv.URL, "/callback", testAppID, cmd, tok, ts.now), body)
		if status != http.StatusOK {
			t.Errorf("token %s: status %d %s", tok, status, got)
		}
	}
}

func TestWithoutATokenNoSignatureIsNeeded(t *testing.T) {
	ts := newTestServer(t, handlerRules, nil)
	body, cmd := readExample(t, "BeforeApplyJoinGroup")
	status, got := ts.post(t, timtest.SignedURL(ts.srv.URL, "/callback", testAppID, cmd, "", ts.now), body)
	if status != http.StatusOK || !strings.Contains(got, "10130") {
		t.Errorf("status %d body %s; want the rule's answer", status, got)
	}
}

func TestBadBodies(t *testing.T) {
	ts := newTestServer(t, handlerRules, []string{testToken})
	signed := func(cmd string) string {
		return timtest.SignedURL(ts.srv.URL, "/callback", testAppID, cmd, testToken, ts.now)
	}
	tests := []struct {
		name   string
		cmd    string
		body   string
		status int
		code   string
		reason string
	}{
		{"malformed JSON", tim.CmdBeforeSendMsg, `{"GroupId": "@TGS#1", `, 400, "malformed", "malformed JSON"},
		{"not an object", tim.CmdBeforeSendMsg, `[1,2,3]`, 400, "malformed", "not a JSON object"},
		{"a field of the wrong type", tim.CmdBeforeSendMsg, `{"GroupId": 5, "From_Account": "a"}`, 400, "malformed", "GroupId"},
		{"a missing sender", tim.CmdBeforeSendMsg, `{"GroupId": "@TGS#1", "MsgBody": []}`, 400, "malformed", "From_Account is missing"},
		{"a body naming another command", tim.CmdBeforeSendMsg, `{"CallbackCommand": "Group.CallbackAfterSendMsg", "GroupId": "g", "From_Account": "a"}`, 400, "malformed", "but the query says"},
		{"an empty body", tim.CmdBeforeSendMsg, ``, 400, "malformed", "not a JSON object"},
		{"a body over the size limit", tim.CmdBeforeSendMsg, `{"GroupId": "` + strings.Repeat("x", 70<<10) + `"}`, 413, "too_large", "max_body_bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := ts.spy.calls.Load()
			status, got := ts.post(t, signed(tt.cmd), []byte(tt.body))
			var e errorBody
			if status != tt.status || json.Unmarshal([]byte(got), &e) != nil || e.Code != tt.code || !strings.Contains(e.Error, tt.reason) {
				t.Fatalf("status %d body %s; want %d with code %q mentioning %q", status, got, tt.status, tt.code, tt.reason)
			}
			if ts.spy.calls.Load() != before {
				t.Errorf("a bad body was evaluated")
			}
		})
	}
}

func TestPanicIsRecoveredAndAnswered(t *testing.T) {
	ts := newTestServer(t, handlerRules, []string{testToken})
	ts.spy.panic = true
	body, cmd := readExample(t, "BeforeSendMsg")
	status, got := ts.post(t, timtest.SignedURL(ts.srv.URL, "/callback", testAppID, cmd, testToken, ts.now), body)
	var e errorBody
	if status != http.StatusInternalServerError || json.Unmarshal([]byte(got), &e) != nil || e.Code != "internal" {
		t.Fatalf("status %d body %s; want 500 with a JSON error", status, got)
	}
	ts.spy.panic = false
	if status, _ := ts.post(t, timtest.SignedURL(ts.srv.URL, "/callback", testAppID, cmd, testToken, ts.now), body); status != http.StatusOK {
		t.Errorf("the server did not keep serving after a panic: %d", status)
	}
}

func TestHealthAndUnknownRoutes(t *testing.T) {
	gin.SetMode(gin.ReleaseMode)
	var readyErr error
	r := New(Config{CallbackPath: "/cb", SDKAppID: 1, MaxBodyBytes: 1024, Deadline: time.Second},
		Deps{Decider: &spy{}, Ready: func(context.Context) error { return readyErr }})
	get := func(method, path string) (int, string) {
		w := httptest.NewRecorder()
		r.ServeHTTP(w, httptest.NewRequest(method, path, nil))
		return w.Code, w.Body.String()
	}
	if code, body := get("GET", "/healthz"); code != 200 || !strings.Contains(body, "ok") {
		t.Errorf("healthz: %d %s", code, body)
	}
	if code, _ := get("GET", "/readyz"); code != 200 {
		t.Errorf("readyz while ready: %d", code)
	}
	readyErr = errors.New("store: redis unavailable")
	if code, body := get("GET", "/readyz"); code != 503 || !strings.Contains(body, "redis unavailable") {
		t.Errorf("readyz while the store is down: %d %s", code, body)
	}
	if code, body := get("GET", "/nope"); code != 404 || !strings.Contains(body, `"code":"not_found"`) {
		t.Errorf("unknown route: %d %s", code, body)
	}
	if code, body := get("GET", "/cb"); code != 405 || !strings.Contains(body, "method_not_allowed") {
		t.Errorf("GET on the callback: %d %s", code, body)
	}
}

// recordingAudit keeps decoded audit records.
func decodeAudit(t *testing.T, lines []string) []audit.Record {
	t.Helper()
	out := make([]audit.Record, len(lines))
	for i, l := range lines {
		if err := json.Unmarshal([]byte(l), &out[i]); err != nil {
			t.Fatalf("audit line %d is not JSON: %s", i, l)
		}
	}
	return out
}

func TestAuditRecordsNameTheDecision(t *testing.T) {
	ts := newTestServer(t, handlerRules, []string{testToken})
	body, cmd := readExample(t, "BeforeInviteJoinGroup")
	ts.post(t, timtest.SignedURL(ts.srv.URL, "/callback", testAppID, cmd, testToken, ts.now), body)
	recs := decodeAudit(t, ts.audit.lines)
	if len(recs) != 2 {
		t.Fatalf("%d records for two invitees, want 2", len(recs))
	}
	tommy := recs[1]
	if tommy.User != "tommy" || tommy.Verdict != "refuse" || len(tommy.Rules) != 1 || tommy.Rules[0] != "banned-invitee" ||
		tommy.Kind != audit.KindDecision || tommy.EventID == "" || tommy.RulesVersion == "" || tommy.Command != cmd {
		t.Errorf("record for tommy: %+v", tommy)
	}
	for _, l := range ts.audit.lines {
		if strings.Contains(l, testToken) {
			t.Errorf("the callback token reached the audit log: %s", l)
		}
	}
}
