package handlers

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/timguard/timguard/audit"
	"github.com/timguard/timguard/store"
	"github.com/timguard/timguard/store/memory"
)

type fakeLifter struct {
	mu    sync.Mutex
	calls []string
	err   error
}

func (f *fakeLifter) Unmute(_ context.Context, group, user string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, "unmute "+group+" "+user)
	return f.err
}

func (f *fakeLifter) UnmuteGroup(_ context.Context, group string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, "unmute_group "+group)
	return f.err
}

type adminFixture struct {
	router  http.Handler
	store   *memory.Store
	lifter  *fakeLifter
	records []audit.Record
	reload  error
	token   string
}

func newAdminFixture(t *testing.T) *adminFixture {
	t.Helper()
	f := &adminFixture{store: memory.New(memory.Options{}), lifter: &fakeLifter{}, token: "admin-secret-1"}
	gin.SetMode(gin.ReleaseMode)
	f.router = New(Config{CallbackPath: "/callback", SDKAppID: 1, MaxBodyBytes: 1024, Deadline: time.Second}, Deps{
		Decider: &spy{},
		Admin: Admin(AdminConfig{
			Token:  func() string { return f.token },
			Store:  f.store,
			Lifter: f.lifter,
			Simulate: func(_ context.Context, body []byte, state json.RawMessage) (any, error) {
				if !json.Valid(body) {
					return nil, errors.New("event: not JSON")
				}
				return map[string]any{"verdict": "block", "state": state}, nil
			},
			Reload: func(context.Context) (string, error) { return "abc123", f.reload },
			Audit:  func(r *audit.Record) { f.records = append(f.records, *r) },
		}),
	})
	return f
}

func (f *adminFixture) do(method, path, token, body string) (int, string) {
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("X-Timguard-Actor", "moderator-anna")
	w := httptest.NewRecorder()
	f.router.ServeHTTP(w, req)
	return w.Code, w.Body.String()
}

func TestAdminAPIRefusesAMissingOrWrongToken(t *testing.T) {
	f := newAdminFixture(t)
	paths := []struct{ method, path string }{
		{"GET", "/v1/groups/g1/mutes"}, {"DELETE", "/v1/groups/g1/mutes/u1"}, {"GET", "/v1/decisions"},
		{"POST", "/v1/simulate"}, {"POST", "/v1/reload"}, {"GET", "/v1/actions/dead"}, {"GET", "/v1/rules"},
	}
	for _, p := range paths {
		for _, tok := range []string{"", "wrong-token", "admin-secret-"} {
			code, body := f.do(p.method, p.path, tok, "{}")
			if code != http.StatusUnauthorized || !strings.Contains(body, `"code"`) {
				t.Errorf("%s %s with token %q: %d %s; want 401 with a JSON error", p.method, p.path, tok, code, body)
			}
		}
	}
	if len(f.lifter.calls) != 0 || len(f.records) != 0 {
		t.Errorf("refused calls did something: lifter %v, audit %v", f.lifter.calls, f.records)
	}
	t.Run("with no token configured the admin API is off", func(t *testing.T) {
		f.token = ""
		if code, body := f.do("GET", "/v1/decisions", "", ""); code != 401 || !strings.Contains(body, "admin_off") {
			t.Errorf("%d %s; want 401 admin_off", code, body)
		}
	})
}

func TestAdminAPIWorksWithTheRightToken(t *testing.T) {
	f := newAdminFixture(t)
	ctx := context.Background()
	until := time.Now().Add(time.Hour).Truncate(time.Second)
	if err := f.store.SetMute(ctx, store.Mute{Group: "g1", User: "u1", Until: until, Since: time.Now(), Rule: "flood"}); err != nil {
		t.Fatal(err)
	}
	t.Run("lists the group's mutes", func(t *testing.T) {
		code, body := f.do("GET", "/v1/groups/g1/mutes", f.token, "")
		if code != 200 || !strings.Contains(body, `"user":"u1"`) || !strings.Contains(body, `"rule":"flood"`) {
			t.Errorf("%d %s", code, body)
		}
	})
	t.Run("lifts a mute now, forgets it and audits who did it", func(t *testing.T) {
		code, body := f.do("DELETE", "/v1/groups/g1/mutes/u1", f.token, "")
		if code != 200 || !strings.Contains(body, `"lifted":true`) {
			t.Fatalf("%d %s", code, body)
		}
		if len(f.lifter.calls) != 1 || f.lifter.calls[0] != "unmute g1 u1" {
			t.Errorf("lifter calls %v", f.lifter.calls)
		}
		if ms, _ := f.store.ListMutes(ctx, "g1"); len(ms) != 0 {
			t.Errorf("mute record still there: %v", ms)
		}
		rec := f.records[len(f.records)-1]
		if rec.Kind != audit.KindAdmin || rec.Result != audit.ResultDone || !strings.HasPrefix(rec.Actor, "moderator-anna@") || rec.User != "u1" {
			t.Errorf("audit record %+v", rec)
		}
	})
	t.Run("a refusal from the IM server is a 502 and audited", func(t *testing.T) {
		f.lifter.err = errors.New("tim forbid_send_msg: 10007 no permission")
		code, body := f.do("DELETE", "/v1/groups/g2/mute", f.token, "")
		f.lifter.err = nil
		if code != http.StatusBadGateway || !strings.Contains(body, "10007") {
			t.Errorf("%d %s", code, body)
		}
		if rec := f.records[len(f.records)-1]; rec.Result != audit.ResultDead || !strings.Contains(rec.Error, "10007") {
			t.Errorf("audit record %+v", rec)
		}
	})
	t.Run("recent decisions are filtered by group and user", func(t *testing.T) {
		err := f.store.Commit(ctx, store.CommitRequest{Now: time.Now(), Decisions: []store.DecisionRecord{
			{Time: time.Now(), Group: "g1", User: "u1", Body: []byte(`{"user":"u1","verdict":"block"}`)},
			{Time: time.Now(), Group: "g1", User: "u2", Body: []byte(`{"user":"u2","verdict":"drop"}`)},
		}})
		if err != nil {
			t.Fatal(err)
		}
		code, body := f.do("GET", "/v1/decisions?group=g1&user=u2", f.token, "")
		if code != 200 || !strings.Contains(body, `"verdict":"drop"`) || strings.Contains(body, `"u1"`) {
			t.Errorf("%d %s", code, body)
		}
		if code, _ := f.do("GET", "/v1/decisions?limit=0", f.token, ""); code != 400 {
			t.Errorf("limit=0: %d, want 400", code)
		}
	})
	t.Run("simulates an event", func(t *testing.T) {
		code, body := f.do("POST", "/v1/simulate", f.token, `{"event": {"CallbackCommand": "x"}, "state": {"strikes": 2}}`)
		if code != 200 || !strings.Contains(body, `"verdict":"block"`) || !strings.Contains(body, `"strikes":2`) {
			t.Errorf("%d %s", code, body)
		}
		if code, _ := f.do("POST", "/v1/simulate", f.token, `{"state": {}}`); code != 400 {
			t.Errorf("simulate without an event: %d, want 400", code)
		}
	})
	t.Run("a failed reload answers 422 with the reason and is audited", func(t *testing.T) {
		f.reload = errors.New("rules.yaml:3: rule \"x\": if: unknown name")
		code, body := f.do("POST", "/v1/reload", f.token, "")
		if code != http.StatusUnprocessableEntity || !strings.Contains(body, "unknown name") {
			t.Errorf("%d %s", code, body)
		}
		if rec := f.records[len(f.records)-1]; rec.Result != "failed" || rec.Kind != audit.KindAdmin {
			t.Errorf("audit %+v", rec)
		}
		f.reload = nil
		if code, body := f.do("POST", "/v1/reload", f.token, ""); code != 200 || !strings.Contains(body, "abc123") {
			t.Errorf("%d %s", code, body)
		}
	})
}
