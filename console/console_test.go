package console

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/timguard/timguard/audit"
	"github.com/timguard/timguard/rules"
	"github.com/timguard/timguard/store"
	memstore "github.com/timguard/timguard/store/memory"
)

const testRules = `version: 1
rules:
  - name: spam-words
    on: message
    if: 'message.text contains "free crypto"'
    verdict: block
    reply: {code: 10101, text: "Blocked words are not allowed here."}
`

// rig is a console over the embedded store, served by httptest.
type rig struct {
	t      *testing.T
	srv    *httptest.Server
	store  *memstore.Store
	token  string
	mu     sync.Mutex
	audits []audit.Record
	file   string
	set    *rules.Set
}

func newRig(t *testing.T) *rig {
	t.Helper()
	rg := &rig{t: t, store: memstore.New(memstore.Options{}), token: "console-test-token"}
	t.Cleanup(func() { _ = rg.store.Close() })
	rg.file = filepath.Join(t.TempDir(), "rules.yaml")
	if err := os.WriteFile(rg.file, []byte(testRules), 0o644); err != nil {
		t.Fatal(err)
	}
	set, err := rules.Load(rg.file)
	if err != nil {
		t.Fatal(err)
	}
	rg.set = set
	c, err := New(Config{
		Token:     func() string { rg.mu.Lock(); defer rg.mu.Unlock(); return rg.token },
		Store:     rg.store,
		Rules:     func() *rules.Set { rg.mu.Lock(); defer rg.mu.Unlock(); return rg.set },
		RulesFile: func() string { return rg.file },
		Reload: func(context.Context) (string, error) {
			set, err := rules.Load(rg.file)
			if err != nil {
				return rg.set.Version, err
			}
			rg.mu.Lock()
			rg.set = set
			rg.mu.Unlock()
			return set.Version, nil
		},
		Audit: func(r *audit.Record) { rg.mu.Lock(); rg.audits = append(rg.audits, *r); rg.mu.Unlock() },
	})
	if err != nil {
		t.Fatal(err)
	}
	rg.srv = httptest.NewServer(c)
	t.Cleanup(rg.srv.Close)
	return rg
}

// client returns an HTTP client with a cookie jar that does not follow
// redirects.
func (rg *rig) client() *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func (rg *rig) login(c *http.Client, name, token string) *http.Response {
	rg.t.Helper()
	res, err := c.PostForm(rg.srv.URL+"/console/login", url.Values{"name": {name}, "token": {token}})
	if err != nil {
		rg.t.Fatal(err)
	}
	res.Body.Close()
	return res
}

func (rg *rig) get(c *http.Client, path string) (int, string) {
	rg.t.Helper()
	res, err := c.Get(rg.srv.URL + path)
	if err != nil {
		rg.t.Fatal(err)
	}
	defer res.Body.Close()
	var b strings.Builder
	buf := make([]byte, 32<<10)
	for {
		n, err := res.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return res.StatusCode, b.String()
}

var csrfField = regexp.MustCompile(`name="csrf" value="([0-9a-f]+)"`)

func (rg *rig) csrf(c *http.Client) string {
	rg.t.Helper()
	_, body := rg.get(c, "/console/act")
	m := csrfField.FindStringSubmatch(body)
	if m == nil {
		rg.t.Fatalf("no CSRF token on the act page:\n%s", body)
	}
	return m[1]
}

func (rg *rig) post(c *http.Client, path string, form url.Values) int {
	rg.t.Helper()
	res, err := c.PostForm(rg.srv.URL+path, form)
	if err != nil {
		rg.t.Fatal(err)
	}
	res.Body.Close()
	return res.StatusCode
}

func TestLoginSetsAStrictHttpOnlyExpiringCookie(t *testing.T) {
	rg := newRig(t)
	res := rg.login(rg.client(), "mia", rg.token)
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("login answered %d", res.StatusCode)
	}
	ck := res.Cookies()
	if len(ck) != 1 || ck[0].Name != cookieName || !ck[0].HttpOnly || ck[0].SameSite != http.SameSiteStrictMode || ck[0].MaxAge <= 0 || ck[0].Path != "/console/" {
		t.Fatalf("cookie %+v", ck)
	}
	if strings.Contains(ck[0].Value, rg.token) {
		t.Fatal("the cookie holds the token")
	}
}

func TestPagesWithoutASessionRedirectOrRefuse(t *testing.T) {
	rg := newRig(t)
	c := rg.client()
	for _, p := range []string{"/console/decisions?user=u", "/console/mutes", "/console/actions", "/console/act", "/console/rules", "/console/live"} {
		res, err := c.Get(rg.srv.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusSeeOther || !strings.HasPrefix(res.Header.Get("Location"), "/console/login?next=") {
			t.Errorf("GET %s without a session: %d %s", p, res.StatusCode, res.Header.Get("Location"))
		}
	}
	for _, p := range []string{"/console/act", "/console/mutes/lift", "/console/actions/retry", "/console/rules"} {
		if code := rg.post(c, p, url.Values{"csrf": {"x"}}); code != http.StatusUnauthorized {
			t.Errorf("POST %s without a session: %d, want 401", p, code)
		}
	}
}

func TestAWrongTokenOrNoNameLogsNobodyIn(t *testing.T) {
	rg := newRig(t)
	for _, tc := range []struct{ name, token string }{{"mia", "wrong"}, {"", rg.token}, {"<script>", rg.token}} {
		res := rg.login(rg.client(), tc.name, tc.token)
		if res.StatusCode == http.StatusSeeOther || len(res.Cookies()) != 0 {
			t.Errorf("login %q/%q answered %d with cookies %v", tc.name, tc.token, res.StatusCode, res.Cookies())
		}
	}
}

func TestFormsWithoutTheSessionsCSRFTokenAreRefused(t *testing.T) {
	rg := newRig(t)
	c := rg.client()
	rg.login(c, "mia", rg.token)
	other := rg.client()
	rg.login(other, "noa", rg.token)
	form := url.Values{"group": {"@TGS#g"}, "user": {"frank"}, "kind": {"mute"}, "duration": {"10m"}, "reason": {"spam"}, "nonce": {"n1"}}
	if code := rg.post(c, "/console/act", form); code != http.StatusForbidden {
		t.Errorf("no CSRF token: %d, want 403", code)
	}
	form.Set("csrf", rg.csrf(other))
	if code := rg.post(c, "/console/act", form); code != http.StatusForbidden {
		t.Errorf("another session's CSRF token: %d, want 403", code)
	}
	if ps, _ := rg.store.Pending(t.Context(), 10); len(ps) != 0 {
		t.Fatalf("refused forms queued %v", ps)
	}
	form.Set("csrf", rg.csrf(c))
	if code := rg.post(c, "/console/act", form); code != http.StatusSeeOther {
		t.Fatalf("with the CSRF token: %d", code)
	}
	// The same form sent twice queues one action.
	rg.post(c, "/console/act", form)
	ps, _ := rg.store.Pending(t.Context(), 10)
	if len(ps) != 1 || ps[0].Kind != "mute" || ps[0].Seconds != 600 || ps[0].User != "frank" || ps[0].Rule != "console" {
		t.Fatalf("queued %+v", ps)
	}
	rg.mu.Lock()
	defer rg.mu.Unlock()
	var found bool
	for _, r := range rg.audits {
		if r.Kind == audit.KindAdmin && strings.HasPrefix(r.Actor, "mia@") && r.Reason == "spam" && len(r.Actions) == 1 && r.Actions[0].Kind == "mute" {
			found = true
		}
	}
	if !found {
		t.Fatalf("no admin record of mia's mute in %+v", rg.audits)
	}
}

func TestRotatingTheTokenEndsEverySession(t *testing.T) {
	rg := newRig(t)
	c := rg.client()
	rg.login(c, "mia", rg.token)
	if code, _ := rg.get(c, "/console/mutes"); code != http.StatusOK {
		t.Fatalf("logged in: %d", code)
	}
	rg.mu.Lock()
	rg.token = "a-new-token"
	rg.mu.Unlock()
	if code, _ := rg.get(c, "/console/mutes"); code != http.StatusSeeOther {
		t.Fatalf("after the token changed: %d, want a redirect to the login", code)
	}
}

func TestAnExpiredOrTamperedCookieIsRefused(t *testing.T) {
	key := sessionKey("tok")
	now := time.Unix(1_800_000_000, 0)
	s := &session{Name: "mia", Expires: now.Add(time.Hour).Unix(), ID: "abc"}
	v := s.encode(key)
	if _, ok := decodeSession(key, v, now); !ok {
		t.Fatal("a fresh cookie is refused")
	}
	if _, ok := decodeSession(key, v, now.Add(time.Hour)); ok {
		t.Error("an expired cookie is accepted")
	}
	forged := &session{Name: "eve", Expires: now.Add(time.Hour).Unix(), ID: "abc"}
	p, _, _ := strings.Cut(forged.encode(sessionKey("other")), ".")
	_, sig, _ := strings.Cut(v, ".")
	if _, ok := decodeSession(key, p+"."+sig, now); ok {
		t.Error("a cookie with another payload is accepted")
	}
}

func TestDeadLettersAreRetriedAndDismissedWithAnAuditRecord(t *testing.T) {
	rg := newRig(t)
	c := rg.client()
	rg.login(c, "mia", rg.token)
	now := time.Now()
	for _, id := range []string{"d1", "d2"} {
		if err := rg.store.Enqueue(t.Context(), store.Action{ID: id, Kind: "mute", Group: "g", User: "u", Seconds: 60, Created: now}); err != nil {
			t.Fatal(err)
		}
	}
	cs, err := rg.store.Claim(t.Context(), now, 2, time.Minute)
	if err != nil || len(cs) != 2 {
		t.Fatal(cs, err)
	}
	for _, cl := range cs {
		if err := rg.store.DeadLetter(t.Context(), cl, "10004 no such member"); err != nil {
			t.Fatal(err)
		}
	}
	if _, body := rg.get(c, "/console/actions"); !strings.Contains(body, "10004 no such member") {
		t.Fatalf("the actions page does not show the reason:\n%s", body)
	}
	tok := rg.csrf(c)
	rg.post(c, "/console/actions/retry", url.Values{"csrf": {tok}, "id": {"d1"}})
	rg.post(c, "/console/actions/dismiss", url.Values{"csrf": {tok}, "id": {"d2"}})
	if ds, _ := rg.store.Dead(t.Context(), 10); len(ds) != 0 {
		t.Errorf("dead letters left: %+v", ds)
	}
	if ps, _ := rg.store.Pending(t.Context(), 10); len(ps) != 1 || ps[0].ID != "d1" {
		t.Errorf("waiting: %+v", ps)
	}
}

func TestApplyWritesTheRuleFileAndReloads(t *testing.T) {
	rg := newRig(t)
	c := rg.client()
	rg.login(c, "mia", rg.token)
	edited := strings.Replace(testRules, "Blocked words are not allowed here.", "No spam, please.", 1)
	code := rg.post(c, "/console/rules", url.Values{"csrf": {rg.csrf(c)}, "op": {"apply"}, "source": {edited}})
	if code != http.StatusSeeOther {
		t.Fatalf("apply answered %d", code)
	}
	got, _ := os.ReadFile(rg.file)
	if string(got) != edited {
		t.Fatalf("rules_file holds:\n%s", got)
	}
	rg.mu.Lock()
	reply := rg.set.Rules[0].Reply
	rg.mu.Unlock()
	if reply == nil || reply.Text != "No spam, please." {
		t.Fatalf("the rules in force reply %+v", reply)
	}
	// A broken file is not written.
	code = rg.post(c, "/console/rules", url.Values{"csrf": {rg.csrf(c)}, "op": {"apply"}, "source": {"version: 1\nrules: [{name: x}]\n"}})
	if code != http.StatusUnprocessableEntity {
		t.Fatalf("a broken file answered %d", code)
	}
	if got, _ := os.ReadFile(rg.file); string(got) != edited {
		t.Fatal("a broken file was written")
	}
}

func TestReplayOfPastedCallbacksShowsAReplyChange(t *testing.T) {
	rg := newRig(t)
	c := rg.client()
	rg.login(c, "mia", rg.token)
	cb, _ := json.Marshal(map[string]any{
		"CallbackCommand": "Group.CallbackBeforeSendMsg", "GroupId": "@TGS#g", "Type": "Public", "From_Account": "jared",
		"Operator_Account": "jared", "Random": 1, "MsgBody": []map[string]any{{"MsgType": "TIMTextElem", "MsgContent": map[string]any{"Text": "free crypto"}}},
	})
	edited := strings.Replace(testRules, "Blocked words are not allowed here.", "No spam, please.", 1)
	res, err := c.PostForm(rg.srv.URL+"/console/rules", url.Values{"csrf": {rg.csrf(c)}, "op": {"replay"}, "source": {edited}, "callback": {string(cb)}})
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	buf := new(strings.Builder)
	b := make([]byte, 64<<10)
	for {
		n, err := res.Body.Read(b)
		buf.Write(b[:n])
		if err != nil {
			break
		}
	}
	if !strings.Contains(buf.String(), "1 decisions change") || !strings.Contains(buf.String(), "No spam, please.") {
		t.Fatalf("replay page:\n%s", buf.String())
	}
}
