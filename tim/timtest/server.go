// Package timtest is a fake Tencent Cloud IM server for tests. It serves
// the group commands of the REST API over httptest and checks what the real
// server checks: the path, the query parameters, the admin's UserSig, the
// JSON body's fields and types, the documented limits, that the group
// exists and the rules of its type. It keeps the state those commands
// change, records every call, and can inject faults and enforce a rate
// limit without changing that state.
//
// The fake behaves as Tencent documents its server, always: there is no
// lenient mode, so a test cannot pass on a call the real server refuses.
// Per command, with the page each rule comes from:
//
//   - get_group_member_info (https://intl.cloud.tencent.com/document/product/1047/34948):
//     refused in AVChatRoom groups ("AVChatRoom: No"; they store no member
//     information); in Community groups Next is required ("" for the first
//     page), Offset is not accepted and Limit is at most 100; elsewhere
//     Limit is at most 6000. The fake also refuses Next outside Community
//     groups, where the documentation does not define it.
//   - get_group_info (https://intl.cloud.tencent.com/document/product/1047/34961):
//     without a ResponseFilter every base field and the member list of each
//     group are answered; with one, only the fields it names. An answer
//     over 1 MB is refused with 10018. A filter name that is not a field is
//     refused (the real server would leave it out, which a client would
//     read as an empty value).
//   - send_group_system_notification (https://intl.cloud.tencent.com/document/product/1047/34958):
//     ToMembers_Account has at most 500 accounts and is refused in
//     AVChatRoom groups ("only to all group members").
//   - send_group_msg (https://intl.cloud.tencent.com/document/product/1047/34959):
//     Random is required; a message with the Random and content of one
//     accepted within 5 minutes is dropped as a repeat (answered OK, not
//     delivered again); @all (GroupAtAllFlag 1) is refused in AVChatRoom
//     groups.
//   - ban_group_member and unban_group_member
//     (https://intl.cloud.tencent.com/document/product/1047/50296,
//     https://intl.cloud.tencent.com/document/product/1047/50297): AVChatRoom
//     groups only; they need the Ultimate edition and the console switch
//     "Audio-video group member banning", without which the server answers
//     10007 (Options.LiveGroupBan says the app has both); at most 20
//     accounts (10005); Description at most 1,000 bytes.
//   - forbid_send_msg (https://intl.cloud.tencent.com/document/product/1047/34951):
//     not in Private (Work) groups; at most 500 accounts.
//   - delete_group_member (https://intl.cloud.tencent.com/document/product/1047/34949):
//     not in AVChatRoom groups (10004, documented).
//
// Error codes follow tencent-im.md. Where the documentation does not say
// which code a refusal gets, the fake answers 10007 (no permission) for an
// operation the group's type does not support, and 10004 (bad parameter)
// for a malformed or out-of-range request:
//
//   - forbid_send_msg, and MuteTime or Role in modify_group_member_info,
//     and MuteAllMember in modify_group_base_info, in a Private (Work)
//     group: 10007.
//   - get_group_member_info, and send_group_system_notification to chosen
//     members, in an AVChatRoom group: 10007.
//   - add_group_member in an AVChatRoom group: 10007 (documented).
//   - ban_group_member and unban_group_member outside AVChatRoom: 10007.
//   - A JSON field of the wrong type: 60003, like a body that does not parse.
package timtest

import (
	"encoding/json"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/timguard/timguard/tim"
)

// Defaults for Options fields left zero.
const (
	DefaultSDKAppID  = 1400000000
	DefaultAdmin     = "administrator"
	DefaultSecretKey = "timtest-secret-key-0123456789abcdef"
)

// maxBodyBytes bounds a request body.
const maxBodyBytes = 1 << 20

// maxAnswerBytes bounds an answer: "The response packet length exceeds the
// maximum packet length of 1 MB" (10018, get_group_info and
// get_group_member_info).
const maxAnswerBytes = 1 << 20

// Options configures a Server.
type Options struct {
	SDKAppID  uint64 // DefaultSDKAppID when zero
	Admin     string // DefaultAdmin when empty
	SecretKey string // DefaultSecretKey when empty
	// RateLimit is the most calls answered in any one-second window; calls
	// beyond it are answered 60007 and change nothing. 0 turns it off.
	RateLimit int
	// Now is the server's clock (time.Now when nil). It decides UserSig
	// expiry, mute expiry and the rate-limit window.
	Now func() time.Time
	// LiveGroupBan says the app has what ban_group_member and
	// unban_group_member need: the Ultimate edition, with "Audio-video
	// group member banning" switched on in the console. Without it (the
	// default, as for a new app) both answer 10007.
	LiveGroupBan bool
}

// Call is one request the fake received.
type Call struct {
	Command    string
	Body       json.RawMessage
	At         time.Time
	Identifier string
	// UserSig is the usersig query parameter as received.
	UserSig string
	// Code is the ErrorCode answered: 0 when the call was accepted (and
	// changed state if the command changes state), -1 when no envelope was
	// answered (an injected HTTP 500 or dropped connection, or a slowed call
	// whose client gave up).
	Code int
	// HTTPStatus is the status answered, 0 when the connection was dropped.
	HTTPStatus int
	// Fault names the injected fault that decided the answer: "" for none,
	// "fail_next", "error", "server_error", "drop" or "slow" (a slowed call
	// whose client gave up; a slowed call that was answered has Fault "").
	Fault string
}

// Effective reports whether the call was accepted and carried out.
func (c Call) Effective() bool { return c.Code == 0 }

// Faults are injected at random into calls that pass the rate limit. A
// fault decides the answer before authentication, and never changes state.
type Faults struct {
	// ErrorRate is the fraction of calls answered with ErrorCode.
	ErrorRate float64
	// ErrorCode is the code of ErrorRate answers (10002 when zero).
	ErrorCode int
	// ServerErrorRate is the fraction answered HTTP 500 without an envelope.
	ServerErrorRate float64
	// DropRate is the fraction whose connection is closed without an answer.
	DropRate float64
	// SlowRate is the fraction delayed by SlowDelay before being handled
	// normally. A delayed call whose client gives up changes nothing.
	SlowRate  float64
	SlowDelay time.Duration
	// Seed makes the draws repeatable.
	Seed int64
}

type failRule struct {
	command string // "" matches every command
	code    int
	left    int
}

type lateRule struct {
	command string // "" matches every command
	delay   time.Duration
	left    int
}

// Server is the fake IM server. Its methods are safe for concurrent use.
type Server struct {
	appID  uint64
	admin  string
	key    string
	limit  int
	now    func() time.Time
	srv    *httptest.Server
	groups *groups

	mu       sync.Mutex
	calls    []Call
	failNext []failRule
	late     []lateRule
	faults   Faults
	rng      *rand.Rand
	admitted []time.Time // calls inside the current rate-limit window

	// sigs keeps UserSigs decoded (tim.ParseUserSig inflates and parses
	// JSON, most of the fake's work per call under load); each request's
	// is still verified in full (tim.UserSigInfo.Verify).
	sigMu sync.Mutex
	sigs  map[string]tim.UserSigInfo

	// closing is closed by Close: answers held back by AnswerLate or a
	// slow fault end at once, so that Close, which waits for calls in
	// flight, cannot wait out a long delay.
	closing   chan struct{}
	closeOnce sync.Once
}

// New starts a fake server. Close it when done.
func New(opts Options) *Server {
	s := &Server{
		appID: opts.SDKAppID,
		admin: opts.Admin,
		key:   opts.SecretKey,
		limit: opts.RateLimit,
		now:   opts.Now,
		rng:   rand.New(rand.NewPCG(0, 0)),

		closing: make(chan struct{}),
	}
	if s.appID == 0 {
		s.appID = DefaultSDKAppID
	}
	if s.admin == "" {
		s.admin = DefaultAdmin
	}
	if s.key == "" {
		s.key = DefaultSecretKey
	}
	if s.now == nil {
		s.now = time.Now
	}
	s.groups = newGroups()
	s.groups.liveBan = opts.LiveGroupBan
	s.srv = httptest.NewServer(http.HandlerFunc(s.serveHTTP))
	return s
}

// URL returns the base URL to put in tim.ClientConfig.BaseURL.
func (s *Server) URL() string { return s.srv.URL }

// Close shuts the server down, waiting for calls in flight. Answers still
// held back (AnswerLate, a slow fault) are dropped: the client sees the
// connection close, as when a real server goes away mid-call.
func (s *Server) Close() {
	s.closeOnce.Do(func() { close(s.closing) })
	s.srv.Close()
}

// ClientConfig returns a tim.ClientConfig that authenticates with this
// server; fill in the optional fields as the test needs.
func (s *Server) ClientConfig() tim.ClientConfig {
	return tim.ClientConfig{BaseURL: s.srv.URL, SDKAppID: s.appID, Admin: s.admin, SecretKey: s.key}
}

// Calls returns a copy of every call received, in the order they finished.
func (s *Server) Calls() []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Call(nil), s.calls...)
}

// CallsTo returns the calls to one command.
func (s *Server) CallsTo(command string) []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Call
	for _, c := range s.calls {
		if c.Command == command {
			out = append(out, c)
		}
	}
	return out
}

// EffectiveCallsTo returns the calls to one command that were carried out.
func (s *Server) EffectiveCallsTo(command string) []Call {
	var out []Call
	for _, c := range s.CallsTo(command) {
		if c.Effective() {
			out = append(out, c)
		}
	}
	return out
}

// ResetCalls forgets the recorded calls.
func (s *Server) ResetCalls() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = nil
}

// MaxCallsPerSecond returns the largest number of effective calls that
// arrived within any one-second sliding window.
func (s *Server) MaxCallsPerSecond() int {
	s.mu.Lock()
	var at []time.Time
	for _, c := range s.calls {
		if c.Effective() {
			at = append(at, c.At)
		}
	}
	s.mu.Unlock()
	sort.Slice(at, func(i, j int) bool { return at[i].Before(at[j]) })
	best := 0
	for i, j := 0, 0; j < len(at); j++ {
		for at[j].Sub(at[i]) >= time.Second {
			i++
		}
		best = max(best, j-i+1)
	}
	return best
}

// FailNext answers the next n calls to command with code, before
// authentication and without changing state. An empty command matches
// every command. Rules queue up in the order they were added. A code of 0
// is a test mistake and panics.
func (s *Server) FailNext(command string, code, n int) {
	if code == 0 {
		panic("timtest: FailNext with code 0")
	}
	if n <= 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failNext = append(s.failNext, failRule{command: command, code: code, left: n})
}

// AnswerLate carries out the next n accepted calls to command as usual and
// then holds each answer back for delay, as a real server that finished
// its work slowly does: a client that gives up first has the call carried
// out all the same (the record shows it effective). An empty command
// matches every command.
func (s *Server) AnswerLate(command string, delay time.Duration, n int) {
	if n <= 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.late = append(s.late, lateRule{command: command, delay: delay, left: n})
}

// lateness takes the delay of the first AnswerLate rule matching command.
func (s *Server) lateness(command string) time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range s.late {
		r := &s.late[i]
		if r.command == "" || r.command == command {
			r.left--
			d := r.delay
			if r.left == 0 {
				s.late = append(s.late[:i], s.late[i+1:]...)
			}
			return d
		}
	}
	return 0
}

// SetFaults replaces the random faults and reseeds their draws. The zero
// Faults turns them off.
func (s *Server) SetFaults(f Faults) {
	if f.ErrorCode == 0 {
		f.ErrorCode = tim.CodeInternalError
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = f
	s.rng = rand.New(rand.NewPCG(uint64(f.Seed), uint64(f.Seed)>>1|1))
}

// fault is what the pre-checks decided for one call.
type fault struct {
	kind string // "", "rate_limit", "fail_next", "error", "server_error", "drop"
	code int
	slow time.Duration
}

// admit applies the rate limit, the FailNext rules and the random faults.
func (s *Server) admit(command string, now time.Time) fault {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.limit > 0 {
		keep := s.admitted[:0]
		for _, t := range s.admitted {
			if now.Sub(t) < time.Second {
				keep = append(keep, t)
			}
		}
		s.admitted = keep
		if len(s.admitted) >= s.limit {
			return fault{kind: "rate_limit", code: tim.CodeRateLimit}
		}
		s.admitted = append(s.admitted, now)
	}
	for i := range s.failNext {
		r := &s.failNext[i]
		if r.command == "" || r.command == command {
			r.left--
			code := r.code
			if r.left == 0 {
				s.failNext = append(s.failNext[:i], s.failNext[i+1:]...)
			}
			return fault{kind: "fail_next", code: code}
		}
	}
	f := s.faults
	var out fault
	if f.SlowRate > 0 && s.rng.Float64() < f.SlowRate {
		out.slow = f.SlowDelay
	}
	if f.DropRate+f.ServerErrorRate+f.ErrorRate > 0 {
		switch x := s.rng.Float64(); {
		case x < f.DropRate:
			out.kind = "drop"
		case x < f.DropRate+f.ServerErrorRate:
			out.kind = "server_error"
		case x < f.DropRate+f.ServerErrorRate+f.ErrorRate:
			out.kind, out.code = "error", f.ErrorCode
		}
	}
	return out
}

func (s *Server) record(c Call) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, c)
}

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	now := s.now()
	body, readErr := io.ReadAll(io.LimitReader(r.Body, maxBodyBytes+1))
	q := r.URL.Query()
	command := strings.TrimPrefix(r.URL.Path, "/v4/"+tim.ServiceGroup+"/")
	if command == r.URL.Path {
		command = r.URL.Path
	}
	call := Call{
		Command:    command,
		Body:       json.RawMessage(body),
		At:         now,
		Identifier: q.Get("identifier"),
		UserSig:    q.Get("usersig"),
		HTTPStatus: http.StatusOK,
	}

	f := s.admit(command, now)
	if f.slow > 0 {
		t := time.NewTimer(f.slow)
		select {
		case <-t.C:
		case <-s.closing:
			t.Stop()
			call.Code, call.HTTPStatus, call.Fault = -1, 0, "slow"
			s.record(call)
			panic(http.ErrAbortHandler)
		case <-r.Context().Done():
			t.Stop()
			call.Code, call.HTTPStatus, call.Fault = -1, 0, "slow"
			s.record(call)
			return
		}
	}
	switch f.kind {
	case "rate_limit":
		call.Code = f.code
		s.record(call)
		writeError(w, &apiError{f.code, "REST API call frequency exceeds the limit"})
		return
	case "fail_next", "error":
		call.Code, call.Fault = f.code, f.kind
		s.record(call)
		writeError(w, &apiError{f.code, "injected fault"})
		return
	case "server_error":
		call.Code, call.HTTPStatus, call.Fault = -1, http.StatusInternalServerError, f.kind
		s.record(call)
		http.Error(w, "injected server error", http.StatusInternalServerError)
		return
	case "drop":
		call.Code, call.HTTPStatus, call.Fault = -1, 0, f.kind
		s.record(call)
		if hj, ok := w.(http.Hijacker); ok {
			if conn, _, err := hj.Hijack(); err == nil {
				_ = conn.Close()
				return
			}
		}
		panic(http.ErrAbortHandler)
	}

	resp, err := s.handle(r, q, command, body, readErr, now)
	var answer []byte
	if err == nil {
		answer, err = encodeOK(resp)
	}
	if err != nil {
		call.Code = err.code
		s.record(call)
		writeError(w, err)
		return
	}
	// The record is written before the answer so that a test that has the
	// answer also finds the call.
	s.record(call)
	if d := s.lateness(command); d > 0 {
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-s.closing:
			t.Stop()
			panic(http.ErrAbortHandler) // the call was carried out; no answer
		case <-r.Context().Done():
			t.Stop()
			return // the client gave up; the call was carried out anyway
		}
	}
	writeBytes(w, answer)
}

// handle authenticates, validates and carries out one call.
func (s *Server) handle(r *http.Request, q map[string][]string, command string, body []byte, readErr error, now time.Time) (map[string]any, *apiError) {
	if r.Method != http.MethodPost {
		return nil, &apiError{tim.CodeHTTPParse, "the method must be POST"}
	}
	exec, ok := commandFunc(command)
	if !ok || !strings.HasPrefix(r.URL.Path, "/v4/"+tim.ServiceGroup+"/") {
		return nil, &apiError{tim.CodeBadCommand, "unknown command " + r.URL.Path}
	}
	if err := s.authenticate(q, now); err != nil {
		return nil, err
	}
	if readErr != nil {
		return nil, &apiError{tim.CodeHTTPParse, "reading the body failed"}
	}
	if len(body) > maxBodyBytes {
		return nil, &apiError{tim.CodeHTTPParse, "the body is larger than 1 MB"}
	}
	fs, err := parseFields(body)
	if err != nil {
		return nil, err
	}
	s.groups.mu.Lock()
	defer s.groups.mu.Unlock()
	return exec(s.groups, fs, now)
}

func (s *Server) authenticate(q map[string][]string, now time.Time) *apiError {
	get := func(k string) string {
		if v := q[k]; len(v) > 0 {
			return v[0]
		}
		return ""
	}
	for _, k := range []string{"sdkappid", "identifier", "usersig", "random", "contenttype"} {
		if get(k) == "" {
			return &apiError{tim.CodeHTTPParse, "query parameter " + k + " is missing"}
		}
	}
	appID, err := strconv.ParseUint(get("sdkappid"), 10, 64)
	if err != nil {
		return &apiError{tim.CodeHTTPParse, "sdkappid is not a number"}
	}
	if appID != s.appID {
		return &apiError{tim.CodeBadSDKAppID, "SDKAppID " + get("sdkappid") + " is invalid"}
	}
	if _, err := strconv.ParseUint(get("random"), 10, 32); err != nil {
		return &apiError{tim.CodeHTTPParse, "random is not a 32-bit unsigned integer"}
	}
	if get("contenttype") != "json" {
		return &apiError{tim.CodeHTTPParse, "contenttype must be json"}
	}
	identifier := get("identifier")
	if err := s.verifyUserSig(get("usersig"), identifier, now); err != nil {
		code := tim.Code(err)
		if code == 0 {
			code = tim.CodeUserSigMalformed
		}
		return &apiError{code, err.Error()}
	}
	if identifier != s.admin {
		return &apiError{tim.CodeNeedAdmin, identifier + " is not an App admin"}
	}
	return nil
}

// maxSigs bounds the UserSigs the fake keeps decoded; a client signs anew
// only when its UserSig nears expiry, so a handful are in use at a time.
const maxSigs = 64

// verifyUserSig checks sig as tim.VerifyUserSig does, decoding it only the
// first time it is seen.
func (s *Server) verifyUserSig(sig, identifier string, now time.Time) error {
	s.sigMu.Lock()
	info, ok := s.sigs[sig]
	s.sigMu.Unlock()
	if !ok {
		var err error
		if info, err = tim.ParseUserSig(sig); err != nil {
			return err
		}
		s.sigMu.Lock()
		if s.sigs == nil || len(s.sigs) >= maxSigs {
			s.sigs = make(map[string]tim.UserSigInfo, maxSigs)
		}
		s.sigs[sig] = info
		s.sigMu.Unlock()
	}
	return info.Verify(s.appID, s.key, identifier, now)
}

// apiError is a refusal with an IM error code.
type apiError struct {
	code int
	info string
}

func writeError(w http.ResponseWriter, e *apiError) {
	writeJSON(w, map[string]any{"ActionStatus": "FAIL", "ErrorCode": e.code, "ErrorInfo": e.info})
}

// encodeOK encodes a successful answer, or refuses it with 10018 when it is
// larger than the IM server answers.
func encodeOK(resp map[string]any) ([]byte, *apiError) {
	if resp == nil {
		resp = map[string]any{}
	}
	resp["ActionStatus"] = "OK"
	resp["ErrorCode"] = 0
	resp["ErrorInfo"] = ""
	b, err := json.Marshal(resp)
	if err != nil {
		return nil, &apiError{tim.CodeInternalError, "encode the answer: " + err.Error()}
	}
	if len(b) > maxAnswerBytes {
		return nil, &apiError{tim.CodeResponseTooLarge, "the answer would exceed the maximum packet length of 1 MB; ask for less (ResponseFilter, Limit)"}
	}
	return b, nil
}

func writeJSON(w http.ResponseWriter, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	writeBytes(w, b)
}

func writeBytes(w http.ResponseWriter, b []byte) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(b)
}
