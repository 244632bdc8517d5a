package console

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode"

	"github.com/timguard/timguard/audit"
)

// cookieName is the session cookie.
const cookieName = "timguard_console"

// session is a logged-in moderator, as the signed cookie holds it.
type session struct {
	Name string `json:"n"`
	// Expires is a Unix time in seconds.
	Expires int64 `json:"e"`
	// ID is random; the CSRF token is derived from it.
	ID string `json:"s"`
	// csrf is the CSRF token of this session (not in the cookie).
	csrf string
}

// sessionKey derives the cookie signing key from the admin token: a new
// token makes every cookie signed with the old one invalid.
func sessionKey(token string) []byte {
	m := hmac.New(sha256.New, []byte(token))
	m.Write([]byte("timguard console session key v1"))
	return m.Sum(nil)
}

func mac(key []byte, parts ...string) []byte {
	m := hmac.New(sha256.New, key)
	for _, p := range parts {
		m.Write([]byte(p))
		m.Write([]byte{0})
	}
	return m.Sum(nil)
}

// encode signs s into a cookie value: payload.signature, both base64url.
func (s *session) encode(key []byte) string {
	payload, _ := json.Marshal(s) // strings and an int: never fails
	p := base64.RawURLEncoding.EncodeToString(payload)
	return p + "." + base64.RawURLEncoding.EncodeToString(mac(key, "cookie", p))
}

// decodeSession checks a cookie value's signature and expiry.
func decodeSession(key []byte, value string, now time.Time) (*session, bool) {
	p, sig, ok := strings.Cut(value, ".")
	if !ok {
		return nil, false
	}
	got, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil || !hmac.Equal(got, mac(key, "cookie", p)) {
		return nil, false
	}
	payload, err := base64.RawURLEncoding.DecodeString(p)
	if err != nil {
		return nil, false
	}
	var s session
	if err := json.Unmarshal(payload, &s); err != nil || s.ID == "" || s.Name == "" {
		return nil, false
	}
	if now.Unix() >= s.Expires {
		return nil, false
	}
	s.csrf = hex.EncodeToString(mac(key, "csrf", s.ID)[:16])
	return &s, true
}

func randomID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms.
	return hex.EncodeToString(b[:])
}

// current returns the caller's valid session, if any.
func (c *Console) current(r *http.Request) (*session, bool) {
	token := c.token()
	if token == "" {
		return nil, false
	}
	ck, err := r.Cookie(cookieName)
	if err != nil {
		return nil, false
	}
	return decodeSession(sessionKey(token), ck.Value, c.cfg.Now())
}

func (c *Console) token() string {
	if c.cfg.Token == nil {
		return ""
	}
	return c.cfg.Token()
}

// authed lets through callers with a valid session; a state-changing
// request must also carry the session's CSRF token in the form field
// csrf. Without a session a GET is sent to the login page and anything
// else gets 401; without the right CSRF token, 403.
func (c *Console) authed(h func(http.ResponseWriter, *http.Request, *session)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s, ok := c.current(r)
		if !ok {
			if r.Method == http.MethodGet || r.Method == http.MethodHead {
				http.Redirect(w, r, Prefix+"/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
				return
			}
			http.Error(w, "log in to the console first", http.StatusUnauthorized)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			r.Body = http.MaxBytesReader(w, r.Body, 2<<20)
			if err := r.ParseForm(); err != nil {
				http.Error(w, "the form could not be read: "+err.Error(), http.StatusBadRequest)
				return
			}
			if subtle.ConstantTimeCompare([]byte(r.PostForm.Get("csrf")), []byte(s.csrf)) != 1 {
				c.log.Warn("console form refused: missing or wrong CSRF token", "moderator", s.Name, "path", r.URL.Path, "client", client(r))
				http.Error(w, "this form has no valid CSRF token; reload the page and try again", http.StatusForbidden)
				return
			}
		}
		h(w, r, s)
	}
}

type loginView struct {
	Next, Error, Name string
	Off               bool
}

func (c *Console) loginPage(w http.ResponseWriter, r *http.Request) {
	c.render(w, r, http.StatusOK, "login", nil, loginView{Next: safeNext(r.URL.Query().Get("next")), Off: c.token() == ""})
}

// login checks the admin token (constant time) and the moderator's name,
// then sets the session cookie.
func (c *Console) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		http.Error(w, "the form could not be read", http.StatusBadRequest)
		return
	}
	name := strings.TrimSpace(r.PostForm.Get("name"))
	next := safeNext(r.PostForm.Get("next"))
	want := c.token()
	view := loginView{Next: next, Name: name, Off: want == ""}
	if want == "" {
		view.Error = "The console is off: set admin.token."
		c.render(w, r, http.StatusUnauthorized, "login", nil, view)
		return
	}
	if subtle.ConstantTimeCompare([]byte(r.PostForm.Get("token")), []byte(want)) != 1 {
		c.log.Warn("console login refused: wrong token", "client", client(r))
		view.Error = "The token is wrong."
		c.render(w, r, http.StatusUnauthorized, "login", nil, view)
		return
	}
	if !validName(name) {
		view.Error = "Give your name (1 to 64 letters, digits, spaces or . _ - @): every change you make is audited with it."
		c.render(w, r, http.StatusBadRequest, "login", nil, view)
		return
	}
	now := c.cfg.Now()
	s := &session{Name: name, Expires: now.Add(c.cfg.SessionTTL).Unix(), ID: randomID()}
	//nolint:gosec // G124: Secure is admin.secure_cookie (off only for plain-HTTP tests and local use); HttpOnly and SameSite are set
	http.SetCookie(w, &http.Cookie{
		Name: cookieName, Value: s.encode(sessionKey(want)), Path: Prefix + "/",
		MaxAge: int(c.cfg.SessionTTL / time.Second), HttpOnly: true, Secure: c.cfg.SecureCookie,
		SameSite: http.SameSiteStrictMode,
	})
	c.log.Info("moderator logged in to the console", "moderator", name, "client", client(r))
	c.audit(r, s, &audit.Record{Result: audit.ResultDone, Reason: "console login"})
	http.Redirect(w, r, next, http.StatusSeeOther) //nolint:gosec // G710: safeNext keeps next a path under the console
}

func (c *Console) logout(w http.ResponseWriter, r *http.Request, s *session) {
	//nolint:gosec // G124: Secure is admin.secure_cookie; HttpOnly and SameSite are set
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: "", Path: Prefix + "/", MaxAge: -1, HttpOnly: true,
		Secure: c.cfg.SecureCookie, SameSite: http.SameSiteStrictMode})
	c.log.Info("moderator logged out of the console", "moderator", s.Name)
	http.Redirect(w, r, Prefix+"/login", http.StatusSeeOther)
}

// validName accepts a moderator's name that reads well in an audit record.
func validName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, r := range s {
		if !unicode.IsLetter(r) && !unicode.IsDigit(r) && !strings.ContainsRune(" ._-@", r) {
			return false
		}
	}
	return true
}

// safeNext keeps a post-login destination inside the console.
func safeNext(next string) string {
	if !strings.HasPrefix(next, Prefix+"/") || strings.HasPrefix(next, "//") || strings.Contains(next, "\\") {
		return Prefix + "/decisions"
	}
	return next
}
