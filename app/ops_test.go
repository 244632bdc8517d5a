package app

// Operations tests: the whole bot built by New, with real Redis and the
// fake IM server, seen the way an operator sees it: GET /metrics parsed as
// Prometheus text, reloads by POST /v1/reload, by a file change and by
// SIGHUP, the callback token rotated with previous_token, and the admin API
// with and without its bearer token.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/timguard/timguard/audit"
	"github.com/timguard/timguard/internal/redistest"
	"github.com/timguard/timguard/tim"
	"github.com/timguard/timguard/tim/timtest"
)

const (
	opsGroup    = "@TGS#ops"
	opsNewToken = "ops-rotated-callback-token-9d3e"
)

// opsRules is e2eRules with a shadow rule: links are noted, not acted on.
const opsRules = e2eRules + `  - name: links-watch
    on: message
    if: len(message.urls) > 0
    shadow: true
    actions: [{strike: 1}]
`

// opsSettings are the configuration values a test may change and reload.
type opsSettings struct {
	token, previousToken, adminToken string
	// rulesFile is rules.yaml when empty.
	rulesFile string
}

// opsBot is a running bot whose configuration and rule files a test
// rewrites, with the channel that stands for SIGHUP.
type opsBot struct {
	*bot
	reload chan os.Signal
	// config is the configuration startOps wrote; writeConfig replaces
	// the values of opsSettings in it.
	config botConfig
}

// startOps starts the bot on rules with the e2e tokens. redisURL empty
// means the shared test Redis; mods change the configuration.
func startOps(t *testing.T, rules, redisURL string, mods ...func(*botConfig)) *opsBot {
	t.Helper()
	im := timtest.New(timtest.Options{})
	t.Cleanup(im.Close)
	im.AddGroup(timtest.Group{ID: opsGroup, Type: "Public", Owner: "olga", Admins: []string{"adam"},
		Members: []string{"frank", "eve", "gina", "carol"}})
	if redisURL == "" {
		redisURL = redistest.URL(t)
	}
	o := &opsBot{reload: make(chan os.Signal, 1), config: botConfig{
		token: e2eToken, imURL: im.URL(), rateLimit: 50, redisURL: redisURL, prefix: keyPrefix(t, redisURL),
		adminToken: e2eAdminTok, executor: fastRetries,
	}}
	for _, mod := range mods {
		mod(&o.config)
	}
	o.bot = startApp(t, im, o.config, rules, o.reload, nil)
	t.Cleanup(func() {
		o.stop()
		o.checkNoSecrets()
		o.checkNoSecret("the rotated callback token", opsNewToken)
	})
	return o
}

// writeConfig writes config.yaml with s; the other values stay those of
// startOps.
func (o *opsBot) writeConfig(s opsSettings) {
	o.t.Helper()
	c := o.config
	c.token, c.previousToken, c.adminToken, c.rulesFile = s.token, s.previousToken, s.adminToken, s.rulesFile
	writeAtomic(o.t, filepath.Join(o.dir, "config.yaml"), c.yaml())
}

// checkNoSecret fails when the log or the audit file holds s.
func (b *bot) checkNoSecret(what, s string) {
	b.flushAudit()
	data, _ := os.ReadFile(b.audit)
	if strings.Contains(b.stderr.String(), s) || bytes.Contains(data, []byte(s)) {
		b.t.Errorf("the log or the audit file contains %s", what)
	}
}

// signed posts a callback signed with token and returns the status and the
// body.
func (b *bot) signed(command, token string, body map[string]any) (int, []byte) {
	b.t.Helper()
	body["CallbackCommand"] = command
	data, err := json.Marshal(body)
	if err != nil {
		b.t.Fatal(err)
	}
	u := timtest.SignedURL(b.base, "/callback", timtest.DefaultSDKAppID, command, token, time.Now())
	return b.do(http.MethodPost, u, nil, data)
}

// do sends one request and returns the status and the body.
func (b *bot) do(method, u string, header http.Header, body []byte) (int, []byte) {
	b.t.Helper()
	req, err := http.NewRequest(method, u, bytes.NewReader(body))
	if err != nil {
		b.t.Fatal(err)
	}
	req.Header = header.Clone()
	if req.Header == nil {
		req.Header = http.Header{}
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		b.t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		b.t.Fatalf("%s %s: read the answer: %v", method, u, err)
	}
	return resp.StatusCode, out
}

// adminCall calls the admin API with token (none when empty) and actor (no
// X-Timguard-Actor when empty), and decodes the JSON answer.
func (b *bot) adminCall(method, path, token, actor string, body any) (int, map[string]any) {
	b.t.Helper()
	h := http.Header{}
	if token != "" {
		h.Set("Authorization", "Bearer "+token)
	}
	if actor != "" {
		h.Set("X-Timguard-Actor", actor)
	}
	var data []byte
	if body != nil {
		var err error
		if data, err = json.Marshal(body); err != nil {
			b.t.Fatal(err)
		}
	}
	status, out := b.do(method, b.base+path, h, data)
	var m map[string]any
	if err := json.Unmarshal(out, &m); err != nil {
		b.t.Fatalf("%s %s answered %d with %q, not a JSON object", method, path, status, out)
	}
	return status, m
}

// metricSet is one scrape of /metrics, parsed.
type metricSet map[string]*dto.MetricFamily

// scrape reads GET /metrics and parses the Prometheus text exposition.
func (b *bot) scrape() metricSet {
	b.t.Helper()
	status, body := b.do(http.MethodGet, b.base+"/metrics", nil, nil)
	if status != http.StatusOK {
		b.t.Fatalf("GET /metrics answered %d: %s", status, body)
	}
	return parseMetrics(b.t, body)
}

func parseMetrics(t *testing.T, body []byte) metricSet {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("GET /metrics is not Prometheus text: %v\n%s", err, body)
	}
	return fams
}

// series returns the series of name whose labels include every pair of
// labels (name, value, name, value, ...).
func (m metricSet) series(name string, labels ...string) []*dto.Metric {
	f := m[name]
	if f == nil {
		return nil
	}
	var out []*dto.Metric
	for _, s := range f.GetMetric() {
		have := map[string]string{}
		for _, l := range s.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		ok := true
		for i := 0; i+1 < len(labels); i += 2 {
			if have[labels[i]] != labels[i+1] {
				ok = false
			}
		}
		if ok {
			out = append(out, s)
		}
	}
	return out
}

// value sums the counters or gauges of name that carry labels; 0 when
// there are none.
func (m metricSet) value(name string, labels ...string) float64 {
	var v float64
	for _, s := range m.series(name, labels...) {
		switch {
		case s.Counter != nil:
			v += s.GetCounter().GetValue()
		case s.Gauge != nil:
			v += s.GetGauge().GetValue()
		}
	}
	return v
}

// histogram sums the sample counts and sums of the histograms of name that
// carry labels.
func (m metricSet) histogram(name string, labels ...string) (count uint64, sum float64) {
	for _, s := range m.series(name, labels...) {
		count += s.GetHistogram().GetSampleCount()
		sum += s.GetHistogram().GetSampleSum()
	}
	return count, sum
}

// waitMetric scrapes until cond holds, or fails after within.
func (b *bot) waitMetric(within time.Duration, what string, cond func(metricSet) bool) metricSet {
	b.t.Helper()
	deadline := time.Now().Add(within)
	for {
		m := b.scrape()
		if cond(m) {
			return m
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("waited %v for %s; log:\n%s", within, what, b.stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// reloads is how many reloads succeeded and failed, the start included.
func (m metricSet) reloads() (ok, failed float64) {
	return m.value("timguard_config_reloads_total", "result", "success"),
		m.value("timguard_config_reloads_total", "result", "failure")
}

// rulesVersion is the version timguard_rules_info names.
func (m metricSet) rulesVersion() string {
	for _, s := range m.series("timguard_rules_info") {
		for _, l := range s.GetLabel() {
			if l.GetName() == "version" && s.GetGauge().GetValue() == 1 {
				return l.GetValue()
			}
		}
	}
	return ""
}

// watcherReady waits until the file watcher, which starts with run a
// little after the first callback can be answered, has logged that it
// watches the rule file, then writes the file unchanged once and waits for
// the one reload that follows. It returns the metrics after it. No other
// reload can follow later: the watcher turns the events of one rename into
// one reload.
func (o *opsBot) watcherReady(rules string) metricSet {
	o.t.Helper()
	o.watching("rules.yaml")
	before, _ := o.scrape().reloads()
	writeAtomic(o.t, filepath.Join(o.dir, "rules.yaml"), rules)
	return o.waitMetric(30*time.Second, "the watcher's reload of the unchanged rule file", func(m metricSet) bool {
		ok, _ := m.reloads()
		return ok > before
	})
}

// watching waits until the file watcher has logged that it watches file,
// a name in the test's directory: when it starts, and again after every
// successful reload.
func (o *opsBot) watching(file string) {
	o.t.Helper()
	path := filepath.Join(o.dir, file)
	waitFor(o.t, 30*time.Second, "the file watcher to watch "+file, func() bool {
		for line := range strings.Lines(o.stderr.String()) {
			if strings.Contains(line, "watching files for changes") && strings.Contains(line, path) {
				return true
			}
		}
		return false
	})
}

// lastDecision returns the newest decision record for user.
func (b *bot) lastDecision(user string) audit.Record {
	b.t.Helper()
	var last *audit.Record
	recs := b.records()
	for i := range recs {
		if recs[i].Kind == audit.KindDecision && recs[i].User == user {
			last = &recs[i]
		}
	}
	if last == nil {
		b.t.Fatalf("no decision record for %s", user)
	}
	return *last
}

// recordsOf returns the audit records of kind.
func (b *bot) recordsOf(kind string) []audit.Record {
	var out []audit.Record
	for _, r := range b.records() {
		if r.Kind == kind {
			out = append(out, r)
		}
	}
	return out
}

func TestOpsMetricsCountRealCallbacks(t *testing.T) {
	o := startOps(t, opsRules, "")
	for i := range 6 {
		if r := o.message(opsGroup, "frank", fmt.Sprintf("hello %d", i)); r.ErrorCode != 0 {
			t.Fatalf("message %d answered %+v", i, r)
		}
	}
	if r := o.message(opsGroup, "eve", "FREE CRYPTO inside"); r.ErrorCode != 10101 {
		t.Fatalf("spam answered %+v, want 10101", r)
	}
	if r := o.message(opsGroup, "gina", "see https://example.com/x"); r.ErrorCode != 0 {
		t.Fatalf("a link answered %+v; a shadow rule must not refuse", r)
	}
	if status, body := o.signed(tim.CmdBeforeSendMsg, "not-the-token", map[string]any{"GroupId": opsGroup}); status != http.StatusUnauthorized {
		t.Fatalf("a wrong signature answered %d %s, want 401", status, body)
	}
	u := timtest.SignedURL(o.base, "/callback", timtest.DefaultSDKAppID, tim.CmdBeforeSendMsg, e2eToken, time.Now())
	if status, body := o.do(http.MethodPost, u, nil, []byte(`{"CallbackCommand":`)); status != http.StatusBadRequest {
		t.Fatalf("a malformed body answered %d %s, want 400", status, body)
	}
	o.settle(60*time.Second, func() bool { return len(o.im.EffectiveCallsTo(tim.CommandForbidSendMsg)) > 0 })
	m := o.waitMetric(30*time.Second, "the mute's result to be counted", func(m metricSet) bool {
		return m.value("timguard_actions_total", "kind", "mute", "result", "done") == 1
	})

	const cmd = tim.CmdBeforeSendMsg
	counters := []struct {
		name   string
		labels []string
		want   float64
	}{
		{"timguard_callbacks_total", []string{"command", cmd, "status", "200"}, 8},
		{"timguard_callbacks_total", []string{"command", cmd, "status", "401"}, 1},
		{"timguard_callbacks_total", []string{"command", cmd, "status", "400"}, 1},
		{"timguard_callbacks_total", nil, 10},
		{"timguard_decisions_total", []string{"command", cmd, "verdict", "none"}, 7},
		{"timguard_decisions_total", []string{"command", cmd, "verdict", "block"}, 1},
		{"timguard_decisions_total", nil, 8},
		{"timguard_rule_hits_total", []string{"rule", "flood", "shadow", "false"}, 1},
		{"timguard_rule_hits_total", []string{"rule", "spam-words", "shadow", "false"}, 1},
		{"timguard_rule_hits_total", []string{"rule", "links-watch", "shadow", "true"}, 1},
		{"timguard_rule_hits_total", nil, 3},
		{"timguard_actions_total", []string{"kind", "mute", "result", "done"}, 1},
		{"timguard_actions_total", nil, 1},
		{"timguard_rest_calls_total", []string{"command", tim.CommandForbidSendMsg, "code", "0"}, 1},
		{"timguard_rest_calls_total", []string{"command", tim.CommandGetGroupMemberInfo, "code", "0"}, 1},
		{"timguard_rest_calls_total", nil, 2},
		{"timguard_config_reloads_total", []string{"result", "success"}, 1},
		{"timguard_config_reloads_total", []string{"result", "failure"}, 0},
		{"timguard_config_last_reload_successful", nil, 1},
		{"timguard_store_errors_total", nil, 0},
	}
	for _, c := range counters {
		if got := m.value(c.name, c.labels...); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	if n, sum := m.histogram("timguard_decision_duration_seconds", "command", cmd); n != 8 || sum <= 0 {
		t.Errorf("timguard_decision_duration_seconds{command=%s}: count %d, sum %v; want 8 observations", cmd, n, sum)
	}
	if n, _ := m.histogram("timguard_rest_call_duration_seconds", "command", tim.CommandForbidSendMsg); n != 1 {
		t.Errorf("timguard_rest_call_duration_seconds{command=forbid_send_msg}: count %d, want 1", n)
	}
	for _, name := range []string{"timguard_outbox_ready", "timguard_outbox_due", "timguard_outbox_claimed",
		"timguard_outbox_dead", "timguard_outbox_oldest_age_seconds", "timguard_rules",
		"timguard_config_last_reload_success_timestamp_seconds", "go_goroutines", "process_open_fds"} {
		if len(m.series(name)) == 0 {
			t.Errorf("%s is not exposed", name)
		}
	}
	if at := m.value("timguard_config_last_reload_success_timestamp_seconds"); time.Since(time.Unix(int64(at), 0)) > time.Hour {
		t.Errorf("last successful reload at %v", time.Unix(int64(at), 0))
	}
	// The version in the metric is the one decisions carry.
	if v := m.rulesVersion(); v == "" || v != o.lastDecision("eve").RulesVersion {
		t.Errorf("timguard_rules_info version %q, decisions made with %q", v, o.lastDecision("eve").RulesVersion)
	}
	// An unauthenticated caller cannot grow the command label without
	// bound.
	o.signed("Evil.Command"+strings.Repeat("x", 20), "wrong", map[string]any{})
	if got := o.scrape().value("timguard_callbacks_total", "command", "other", "status", "401"); got != 1 {
		t.Errorf("an unknown command was counted as %v under command=other", got)
	}
}

func TestOpsAStoreOutageIsCountedAndAnsweredInTime(t *testing.T) {
	srv := redistest.StartServer(t)
	// Production's store.timeout: a callback waits for a Redis that is
	// gone at most this long, far inside the IM server's 2s (the tests'
	// usual 2s would leave no room on a busy machine).
	o := startOps(t, opsRules, srv.URL(), func(c *botConfig) { c.storeTimeout = "250ms" })
	o.message(opsGroup, "frank", "hello") // fills the role cache: one REST call
	o.settle(30*time.Second, func() bool { return len(o.im.Calls()) > 0 })

	srv.Stop()
	start := time.Now()
	if r := o.message(opsGroup, "carol", "hello while Redis is down"); r.ErrorCode != 0 {
		t.Errorf("answered %+v while Redis is down; a message fails open", r)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("answered after %v, past the IM server's 2s", took)
	}
	if status, _ := o.do(http.MethodGet, o.base+"/readyz", nil, nil); status != http.StatusServiceUnavailable {
		t.Errorf("/readyz answered %d with Redis down, want 503", status)
	}
	m := o.scrape()
	if got := m.value("timguard_store_errors_total", "op", "enrich"); got != 1 {
		t.Errorf("timguard_store_errors_total{op=enrich} = %v, want 1", got)
	}
	if d := o.lastDecision("carol"); d.Result != audit.ResultDegraded || d.Error == "" {
		t.Errorf("decision while Redis is down: %+v, want result degraded with the error", d)
	}

	srv.Restart()
	deadline := time.Now().Add(30 * time.Second)
	for {
		status, _ := o.do(http.MethodGet, o.base+"/readyz", nil, nil)
		if status == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz still answers %d 30s after Redis came back", status)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// Callbacks skip a store that failed moments ago (half a second), then
	// use it again: without a restart, every callback is decided with it.
	n := 0
	waitFor(t, 30*time.Second, "a callback decided with Redis again", func() bool {
		n++
		if r := o.message(opsGroup, "carol", fmt.Sprintf("back again %d", n)); r.ErrorCode != 0 {
			t.Fatalf("after Redis came back: %+v", r)
		}
		return o.lastDecision("carol").Result == ""
	})
}

// brokenRules has two problems; a reload must name both and change nothing.
const brokenRules = `version: 1
rules:
  - name: typo-in-field
    on: message
    if: message.txt contains "x"
    verdict: block
  - name: bad-verdict
    on: message
    if: "true"
    verdict: maybe
`

func TestOpsReloadKeepsTheOldRulesOnErrorAndSwapsGoodOnes(t *testing.T) {
	o := startOps(t, opsRules, "")
	first := o.message(opsGroup, "eve", "free crypto, again")
	if first.ErrorCode != 10101 {
		t.Fatalf("spam answered %+v", first)
	}
	v1 := o.lastDecision("eve").RulesVersion
	m := o.watcherReady(opsRules)
	okBase, _ := m.reloads()

	// A broken rule file, written in place: the watcher's reload fails,
	// then so does POST /v1/reload, and both keep the rules in force.
	writeAtomic(t, filepath.Join(o.dir, "rules.yaml"), brokenRules)
	o.waitMetric(30*time.Second, "the watcher's reload of the broken file", func(m metricSet) bool {
		_, failed := m.reloads()
		return failed == 1
	})
	status, body := o.adminCall(http.MethodPost, "/v1/reload", e2eAdminTok, "rita", nil)
	if status != http.StatusUnprocessableEntity || body["code"] != "reload_failed" || body["rules_version"] != v1 {
		t.Fatalf("POST /v1/reload of a broken file answered %d %v; want 422 reload_failed with version %s", status, body, v1)
	}
	reason, _ := body["error"].(string)
	for _, want := range []string{"typo-in-field", "bad-verdict", "maybe"} {
		if !strings.Contains(reason, want) {
			t.Errorf("the reload error does not name %q: %s", want, reason)
		}
	}
	m = o.scrape()
	if ok, failed := m.reloads(); ok != okBase || failed != 2 {
		t.Errorf("reloads: %v succeeded (want %v), %v failed (want 2)", ok, okBase, failed)
	}
	if got := m.value("timguard_config_last_reload_successful"); got != 0 {
		t.Errorf("timguard_config_last_reload_successful = %v after a failed reload, want 0", got)
	}
	if v := m.rulesVersion(); v != v1 {
		t.Errorf("timguard_rules_info names %q after a failed reload, want %q", v, v1)
	}
	if !strings.Contains(o.stderr.String(), "reload failed; the configuration and rules in force stay") {
		t.Error("the failed reload was not logged")
	}
	if r := o.message(opsGroup, "eve", "free crypto, again"); r.ErrorCode != first.ErrorCode || r.ErrorInfo != first.ErrorInfo {
		t.Errorf("after a failed reload the same message answered %+v, before %+v", r, first)
	}
	if d := o.lastDecision("eve"); d.RulesVersion != v1 || !slices.Equal(d.Rules, []string{"spam-words"}) {
		t.Errorf("after a failed reload the decision is %+v; want spam-words with version %s", d, v1)
	}

	// A good change through the watcher: the new rules decide from the
	// next callback on, and decisions carry the new version.
	good := strings.Replace(opsRules, `["free crypto", "airdrop"]`, `["airdrop"]`, 1)
	writeAtomic(t, filepath.Join(o.dir, "rules.yaml"), good)
	o.waitMetric(30*time.Second, "the watcher's reload of the good file", func(m metricSet) bool {
		ok, _ := m.reloads()
		return ok == okBase+1
	})
	// The coordinator counts a reload last, after its other metrics, but
	// one scrape may read them before the count: the next sees them.
	m = o.scrape()
	v2 := m.rulesVersion()
	if v2 == v1 || v2 == "" || m.value("timguard_config_last_reload_successful") != 1 {
		t.Errorf("after a good reload: version %q (was %q), last reload successful %v", v2, v1,
			m.value("timguard_config_last_reload_successful"))
	}
	if r := o.message(opsGroup, "eve", "free crypto, again"); r.ErrorCode != 0 {
		t.Errorf("after the reload the message answered %+v, want delivered", r)
	}
	if d := o.lastDecision("eve"); d.RulesVersion != v2 || len(d.Rules) != 0 {
		t.Errorf("after the reload the decision is %+v; want no rule with version %s", d, v2)
	}
	if r := o.message(opsGroup, "eve", "AIRDROP now"); r.ErrorCode != 10101 {
		t.Errorf("the new spam word answered %+v, want 10101", r)
	}
	_, info := o.adminCall(http.MethodGet, "/v1/rules", e2eAdminTok, "", nil)
	if info["version"] != v2 {
		t.Errorf("GET /v1/rules names version %v, want %s", info["version"], v2)
	}

	// SIGHUP (the channel serveCmd feeds from signal.Notify) reloads too.
	o.reload <- syscall.SIGHUP
	o.waitMetric(30*time.Second, "the SIGHUP reload", func(m metricSet) bool {
		ok, _ := m.reloads()
		return ok == okBase+2
	})
	if !strings.Contains(o.stderr.String(), "SIGHUP: reloading") {
		t.Error("the SIGHUP reload was not logged")
	}

	// The audit log has every reload, and the admin call with its actor.
	var reloads []string
	for _, r := range o.recordsOf(audit.KindReload) {
		reloads = append(reloads, r.Result+" "+r.RulesVersion)
		if r.Result == "failed" && (r.Error == "" || r.RulesVersion != v1) {
			t.Errorf("failed reload record %+v", r)
		}
	}
	tail := reloads[len(reloads)-4:]
	want := []string{"failed " + v1, "failed " + v1, "done " + v2, "done " + v2}
	if !slices.Equal(tail, want) {
		t.Errorf("reload records end with %q, want %q", tail, want)
	}
	admins := o.recordsOf(audit.KindAdmin)
	if len(admins) != 1 || admins[0].Actor != "rita@127.0.0.1" || admins[0].Result != "failed" || !strings.Contains(admins[0].Error, "typo-in-field") {
		t.Errorf("admin records %+v, want rita's failed reload", admins)
	}
}

func TestOpsRotatingTheCallbackTokenNeedsNoDowntime(t *testing.T) {
	o := startOps(t, opsRules, "")
	o.watcherReady(opsRules)
	msg := func() map[string]any {
		o.seq++
		return map[string]any{"GroupId": opsGroup, "Type": "Public", "From_Account": "carol", "Operator_Account": "carol",
			"Random": o.seq, "MsgBody": []map[string]any{{"MsgType": "TIMTextElem", "MsgContent": map[string]any{"Text": "hi"}}}}
	}
	accepts := func(token string) int {
		status, _ := o.signed(tim.CmdBeforeSendMsg, token, msg())
		return status
	}
	if accepts(e2eToken) != http.StatusOK || accepts(opsNewToken) != http.StatusUnauthorized {
		t.Fatal("before the rotation the old token must work and the new one not")
	}

	// Step 1: the new token in force, the old one still accepted. The
	// operator reloads explicitly; the watcher may reload the same file too.
	o.writeConfig(opsSettings{token: opsNewToken, previousToken: e2eToken, adminToken: e2eAdminTok})
	if status, body := o.adminCall(http.MethodPost, "/v1/reload", e2eAdminTok, "", nil); status != http.StatusOK {
		t.Fatalf("reload answered %d %v", status, body)
	}
	if got := []int{accepts(e2eToken), accepts(opsNewToken)}; !slices.Equal(got, []int{200, 200}) {
		t.Errorf("during the rotation old and new tokens answered %v, want both 200", got)
	}

	// Step 2, after the IM console uses the new token: the old one is
	// refused.
	o.writeConfig(opsSettings{token: opsNewToken, adminToken: e2eAdminTok})
	if status, body := o.adminCall(http.MethodPost, "/v1/reload", e2eAdminTok, "", nil); status != http.StatusOK {
		t.Fatalf("reload answered %d %v", status, body)
	}
	status, body := o.signed(tim.CmdBeforeSendMsg, e2eToken, msg())
	if status != http.StatusUnauthorized || !strings.Contains(string(body), "bad_sign") {
		t.Errorf("after the rotation the old token answered %d %s, want 401 bad_sign", status, body)
	}
	if accepts(opsNewToken) != http.StatusOK {
		t.Error("after the rotation the new token is refused")
	}
	if strings.Contains(o.stderr.String(), "take effect only after a restart") {
		t.Error("a token change was reported as needing a restart")
	}
	// The callbacks the rest of the bot's checks send use the e2e token.
	o.writeConfig(opsSettings{token: e2eToken, adminToken: e2eAdminTok})
	if status, _ := o.adminCall(http.MethodPost, "/v1/reload", e2eAdminTok, "", nil); status != http.StatusOK {
		t.Fatal("reload back to the e2e token failed")
	}
	o.message(opsGroup, "frank", "hello") // a REST call for the secret checks
	o.settle(30*time.Second, func() bool { return len(o.im.Calls()) > 0 })
}

func TestOpsAdminAPIRefusesWrongTokensAndWorksWithTheRightOne(t *testing.T) {
	o := startOps(t, opsRules, "")
	group := "/v1/groups/" + url.PathEscape(opsGroup)

	// Flood: frank is muted by the executor, which records the mute.
	for i := range 6 {
		o.message(opsGroup, "frank", fmt.Sprintf("hello %d", i))
	}
	o.message(opsGroup, "eve", "free crypto")
	o.settle(60*time.Second, func() bool { return !o.im.MuteUntil(opsGroup, "frank").IsZero() })
	mutesBefore, _ := o.app.store.ListMutes(context.Background(), opsGroup)
	if len(mutesBefore) != 1 {
		t.Fatalf("recorded mutes %+v, want frank's", mutesBefore)
	}

	endpoints := []struct{ method, path string }{
		{http.MethodGet, "/v1/rules"},
		{http.MethodGet, group + "/mutes"},
		{http.MethodDelete, group + "/mutes/frank"},
		{http.MethodDelete, group + "/mute"},
		{http.MethodGet, "/v1/decisions?user=frank"},
		{http.MethodGet, "/v1/actions/dead"},
		{http.MethodGet, "/v1/actions/pending"},
		{http.MethodPost, "/v1/simulate"},
		{http.MethodPost, "/v1/reload"},
	}
	reloadsBefore, _ := o.scrape().reloads()
	for _, e := range endpoints {
		for _, c := range []struct{ name, header, code string }{
			{"no Authorization", "", "missing_token"},
			{"a wrong token", "Bearer " + e2eAdminTok + "x", "bad_token"},
			{"a token prefix", "Bearer " + e2eAdminTok[:len(e2eAdminTok)-1], "bad_token"},
			{"the callback token", "Bearer " + e2eToken, "bad_token"},
			{"another scheme", "Basic " + e2eAdminTok, "missing_token"},
			{"an empty bearer", "Bearer ", "missing_token"},
		} {
			h := http.Header{}
			if c.header != "" {
				h.Set("Authorization", c.header)
			}
			status, body := o.do(e.method, o.base+e.path, h, []byte(`{}`))
			if status != http.StatusUnauthorized || !strings.Contains(string(body), c.code) {
				t.Errorf("%s %s with %s answered %d %s, want 401 %s", e.method, e.path, c.name, status, body, c.code)
			}
		}
	}
	if !o.im.MuteUntil(opsGroup, "frank").After(time.Now()) {
		t.Fatal("a refused call lifted frank's mute")
	}
	if ok, _ := o.scrape().reloads(); ok != reloadsBefore {
		t.Error("a refused call reloaded the rules")
	}
	if recs := o.recordsOf(audit.KindAdmin); len(recs) != 0 {
		t.Errorf("refused calls were audited as admin actions: %+v", recs)
	}

	// With the right token.
	status, body := o.adminCall(http.MethodGet, group+"/mutes", e2eAdminTok, "", nil)
	mutes, _ := body["mutes"].([]any)
	if status != http.StatusOK || len(mutes) != 1 {
		t.Fatalf("GET mutes answered %d %v, want frank's mute", status, body)
	}
	if m, _ := mutes[0].(map[string]any); m["user"] != "frank" || m["rule"] != "flood" || m["group"] != opsGroup {
		t.Errorf("mute %v, want frank by flood", m)
	}

	status, body = o.adminCall(http.MethodGet, "/v1/decisions?user=frank", e2eAdminTok, "", nil)
	decisions, _ := body["decisions"].([]any)
	if status != http.StatusOK || len(decisions) != 1 {
		t.Fatalf("GET decisions?user=frank answered %d %v, want the flood decision", status, body)
	}
	if d, _ := decisions[0].(map[string]any); d["user"] != "frank" || fmt.Sprint(d["rules"]) != "[flood]" || d["rules_version"] == "" {
		t.Errorf("decision %v", d)
	}
	_, body = o.adminCall(http.MethodGet, "/v1/decisions?group="+url.QueryEscape(opsGroup), e2eAdminTok, "", nil)
	if all, _ := body["decisions"].([]any); len(all) != 2 {
		t.Errorf("GET decisions?group= returned %d decisions, want frank's and eve's", len(all))
	}
	if status, _ := o.adminCall(http.MethodGet, "/v1/decisions?limit=0", e2eAdminTok, "", nil); status != http.StatusBadRequest {
		t.Errorf("limit=0 answered %d, want 400", status)
	}
	for _, path := range []string{"/v1/actions/dead", "/v1/actions/pending"} {
		status, body := o.adminCall(http.MethodGet, path, e2eAdminTok, "", nil)
		if status != http.StatusOK || len(body) != 1 {
			t.Errorf("GET %s answered %d %v", path, status, body)
		}
	}

	event := map[string]any{"CallbackCommand": tim.CmdBeforeSendMsg, "GroupId": opsGroup, "Type": "Public",
		"From_Account": "zed", "Operator_Account": "zed", "Random": 1,
		"MsgBody": []map[string]any{{"MsgType": "TIMTextElem", "MsgContent": map[string]any{"Text": "hi"}}}}
	status, body = o.adminCall(http.MethodPost, "/v1/simulate", e2eAdminTok, "",
		map[string]any{"event": event, "state": map[string]any{"counters": map[string]int{"user_msgs_10s": 9}}})
	if status != http.StatusOK {
		t.Fatalf("simulate answered %d %v", status, body)
	}
	sim, _ := body["decisions"].([]any)
	if d, _ := sim[0].(map[string]any); len(sim) != 1 || fmt.Sprint(d["rules"]) != "[flood]" {
		t.Errorf("simulate decided %v, want flood", body["decisions"])
	}
	if status, _ := o.adminCall(http.MethodPost, "/v1/simulate", e2eAdminTok, "", map[string]any{"nope": 1}); status != http.StatusBadRequest {
		t.Errorf("simulate without an event answered %d, want 400", status)
	}
	if n := len(o.recordsOf(audit.KindDecision)); n != 7 {
		t.Errorf("%d decision records after simulate, want the 7 real ones: simulate has side effects", n)
	}

	// Lift frank's mute now, as rita.
	status, body = o.adminCall(http.MethodDelete, group+"/mutes/frank", e2eAdminTok, "rita", nil)
	if status != http.StatusOK || body["lifted"] != true {
		t.Fatalf("lift answered %d %v", status, body)
	}
	if until := o.im.MuteUntil(opsGroup, "frank"); !until.IsZero() {
		t.Errorf("the IM server still mutes frank until %v", until)
	}
	unmutes := o.im.EffectiveCallsTo(tim.CommandForbidSendMsg)
	if last := callJSON(t, unmutes[len(unmutes)-1]); last["MuteTime"] != 0.0 || fmt.Sprint(last["Members_Account"]) != "[frank]" {
		t.Errorf("the last forbid_send_msg was %v, want frank's unmute", last)
	}
	if _, body := o.adminCall(http.MethodGet, group+"/mutes", e2eAdminTok, "", nil); len(body["mutes"].([]any)) != 0 {
		t.Errorf("mutes after the lift: %v", body["mutes"])
	}

	status, body = o.adminCall(http.MethodPost, "/v1/reload", e2eAdminTok, "", nil)
	if status != http.StatusOK || body["reloaded"] != true || body["rules_version"] == "" {
		t.Errorf("reload answered %d %v", status, body)
	}

	admins := o.recordsOf(audit.KindAdmin)
	if len(admins) != 2 {
		t.Fatalf("admin records %+v, want the lift and the reload", admins)
	}
	lift := admins[0]
	if lift.Actor != "rita@127.0.0.1" || lift.Result != audit.ResultDone || lift.Group != opsGroup || lift.User != "frank" ||
		len(lift.Actions) != 1 || lift.Actions[0].Kind != "unmute" {
		t.Errorf("lift record %+v, want rita's unmute of frank, done", lift)
	}
	if admins[1].Actor != "admin-token@127.0.0.1" || admins[1].Result != audit.ResultDone {
		t.Errorf("reload record %+v, want the anonymous token holder's reload, done", admins[1])
	}

	// No admin.token: the admin API is off, read per request.
	o.writeConfig(opsSettings{token: e2eToken})
	o.reload <- syscall.SIGHUP
	deadline := time.Now().Add(10 * time.Second)
	for {
		status, body := o.adminCall(http.MethodGet, "/v1/rules", e2eAdminTok, "", nil)
		if status == http.StatusUnauthorized && body["code"] == "admin_off" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("without admin.token GET /v1/rules answers %d %v, want 401 admin_off", status, body)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// callJSON decodes a call's JSON body (body, for tests whose variables
// shadow it).
func callJSON(t *testing.T, c timtest.Call) map[string]any { return body(t, c) }

func TestOpsTheAdminAuditNamesThePeerNotAForwardedForHeader(t *testing.T) {
	o := startOps(t, opsRules, "")
	h := http.Header{}
	h.Set("Authorization", "Bearer "+e2eAdminTok)
	h.Set("X-Timguard-Actor", "rita")
	h.Set("X-Forwarded-For", "203.0.113.7")
	if status, body := o.do(http.MethodPost, o.base+"/v1/reload", h, nil); status != http.StatusOK {
		t.Fatalf("reload answered %d %s", status, body)
	}
	admins := o.recordsOf(audit.KindAdmin)
	if len(admins) != 1 || admins[0].Actor != "rita@127.0.0.1" {
		t.Errorf("admin records %+v; want the actor at the connection's address, 127.0.0.1, not one the caller wrote in X-Forwarded-For", admins)
	}
	o.message(opsGroup, "frank", "hello") // a REST call for the secret checks
	o.settle(30*time.Second, func() bool { return len(o.im.Calls()) > 0 })
}

func TestOpsTheWatcherFollowsTheRulesFileAReloadNames(t *testing.T) {
	o := startOps(t, opsRules, "")
	m := o.watcherReady(opsRules)
	ok, _ := m.reloads()
	writeAtomic(t, filepath.Join(o.dir, "rules-2.yaml"), opsRules)
	o.writeConfig(opsSettings{token: e2eToken, adminToken: e2eAdminTok, rulesFile: "rules-2.yaml"})
	o.waitMetric(30*time.Second, "the reload of the config naming rules-2.yaml", func(m metricSet) bool {
		n, _ := m.reloads()
		return n == ok+1
	})
	o.watching("rules-2.yaml")
	changed := strings.Replace(opsRules, `["free crypto", "airdrop"]`, `["airdrop"]`, 1)
	writeAtomic(t, filepath.Join(o.dir, "rules-2.yaml"), changed)
	o.waitMetric(30*time.Second, "the reload after rules-2.yaml changed", func(m metricSet) bool {
		n, _ := m.reloads()
		return n >= ok+2
	})
	if r := o.message(opsGroup, "eve", "free crypto, again"); r.ErrorCode != 0 {
		t.Errorf("after rules-2.yaml dropped the words the message answered %+v, want delivered", r)
	}
	if n, _ := o.scrape().reloads(); n != ok+2 {
		t.Errorf("rules-2.yaml, the rule file in force, changed and %v reloads followed, want 1", n-ok-1)
	}
	o.message(opsGroup, "frank", "hello") // a REST call for the secret checks
	o.settle(30*time.Second, func() bool { return len(o.im.Calls()) > 0 })
}

func TestOpsReloadOfARuleFileThatMergesItselfFailsAndTheBotGoesOn(t *testing.T) {
	o := startOps(t, opsRules, "")
	v1 := o.lastDecisionVersion("eve", "free crypto")
	writeAtomic(t, filepath.Join(o.dir, "rules.yaml"), "version: 1\nlists: &i\n  spam: [x]\n  <<: *i\nrules: []\n")
	status, body := o.adminCall(http.MethodPost, "/v1/reload", e2eAdminTok, "rita", nil)
	reason, _ := body["error"].(string)
	if status != http.StatusUnprocessableEntity || !strings.Contains(reason, "rules.yaml:4: lists.<<: alias *i") {
		t.Fatalf("POST /v1/reload answered %d %v; want 422 naming rules.yaml:4 and the alias", status, body)
	}
	if r := o.message(opsGroup, "eve", "free crypto"); r.ErrorCode != 10101 {
		t.Errorf("after the failed reload the spam answered %+v, want the old rules' 10101", r)
	}
	if v := o.lastDecision("eve").RulesVersion; v != v1 {
		t.Errorf("rules version %q after the failed reload, want %q", v, v1)
	}
}

// lastDecisionVersion sends text as user and returns the rules version its
// decision names.
func (o *opsBot) lastDecisionVersion(user, text string) string {
	o.t.Helper()
	o.message(opsGroup, user, text)
	return o.lastDecision(user).RulesVersion
}

func TestOpsARuleThatFailsWhileItRunsIsCountedAndLogged(t *testing.T) {
	o := startOps(t, opsRules+`  - name: numeric
    on: message
    if: int(message.text) > 3
    verdict: block
`, "")
	for range 3 {
		if r := o.message(opsGroup, "gina", "PRIVATEWORD1 hello"); r.ErrorCode != 0 {
			t.Fatalf("a message answered %+v; a failing rule must not refuse it", r)
		}
	}
	if got := o.scrape().value("timguard_rule_errors_total", "rule", "numeric"); got != 3 {
		t.Errorf("timguard_rule_errors_total{rule=numeric} = %v, want 3", got)
	}
	logs := o.stderr.String()
	if n := strings.Count(logs, "a rule failed while it ran"); n != 1 {
		t.Errorf("%d log lines about the failing rule, want 1 (one a minute)", n)
	}
	if !strings.Contains(logs, `"rule":"numeric"`) || strings.Contains(logs, "PRIVATEWORD1") {
		t.Errorf("the log line does not name the rule, or holds message text:\n%s", logs)
	}
	if d := o.lastDecision("gina"); !strings.Contains(d.Error, "rule numeric: invalid operation: int([value])") {
		t.Errorf("audit error %q, want the redacted reason", d.Error)
	}
}
