package console

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/timguard/timguard/audit"
	"github.com/timguard/timguard/policy"
	"github.com/timguard/timguard/rules"
	"github.com/timguard/timguard/store"
)

// pageNames are the templates under templates/, each rendered inside
// layout.html.
var pageNames = []string{"login", "decisions", "live", "mutes", "actions", "act", "rules"}

var funcs = template.FuncMap{
	"when": func(t time.Time) string {
		if t.IsZero() {
			return "—"
		}
		return t.UTC().Format("2006-01-02 15:04:05Z")
	},
	"join": strings.Join,
	"dur": func(secs int64) string {
		if secs <= 0 {
			return ""
		}
		return (time.Duration(secs) * time.Second).String()
	},
}

func parsePages() (map[string]*template.Template, error) {
	out := make(map[string]*template.Template, len(pageNames))
	for _, p := range pageNames {
		t, err := template.New(p).Funcs(funcs).ParseFS(assets, "templates/layout.html", "templates/rows.html", "templates/"+p+".html")
		if err != nil {
			return nil, fmt.Errorf("console template %s: %w", p, err)
		}
		out[p] = t
	}
	return out, nil
}

// page is what layout.html renders around a page's content.
type page struct {
	Title, Page string
	Name, CSRF  string
	Note, Error string
	Data        any
	// Refresh, when not 0, reloads the page every so many seconds
	// without JavaScript.
	Refresh int
}

func (c *Console) render(w http.ResponseWriter, r *http.Request, status int, name string, s *session, data any) {
	c.renderPage(w, r, status, page{Page: name, Data: data}, s)
}

func (c *Console) renderPage(w http.ResponseWriter, r *http.Request, status int, p page, s *session) {
	if s != nil {
		p.Name, p.CSRF = s.Name, s.csrf
	}
	if p.Title == "" {
		p.Title = p.Page
	}
	if p.Note == "" {
		p.Note = r.URL.Query().Get("note")
	}
	var buf bytes.Buffer
	if err := c.pages[p.Page].ExecuteTemplate(&buf, "layout", p); err != nil {
		c.log.Error("console page failed to render", "page", p.Page, "err", err)
		http.Error(w, "the page failed to render", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// redirect answers a form with 303 to path, with a note shown at the top.
func redirect(w http.ResponseWriter, r *http.Request, path, note string) {
	if note != "" {
		sep := "?"
		if strings.Contains(path, "?") {
			sep = "&"
		}
		path += sep + "note=" + url.QueryEscape(note)
	}
	http.Redirect(w, r, path, http.StatusSeeOther)
}

func (c *Console) fail(w http.ResponseWriter, r *http.Request, s *session, p string, status int, err error) {
	c.renderPage(w, r, status, page{Page: p, Error: err.Error()}, s)
}

// ---------------------------------------------------------------------------
// Decisions.

// decisionView is one decision as the pages show it.
type decisionView struct {
	ID           string
	Time         time.Time
	Event        string
	Command      string
	Group, User  string
	Role         string
	Verdict      string
	ReplyCode    int
	Rules        []string
	ShadowRules  []string
	Budget       []string
	Actions      []actionView
	Result       string
	Error        string
	RulesVersion string
	// TraceNote says where the trace comes from.
	TraceNote string
	Trace     []traceStep
}

// actionView is an action decided, with what became of it.
type actionView struct {
	ID, Kind, Detail, Rule string
	Shadow                 bool
	Outcome                string
	Bad                    bool
}

// traceStep is one rule as it was evaluated for a decision.
type traceStep struct {
	Rule    string
	Matched bool
	Shadow  bool
	Skipped string
	Error   string
	If      string
	Does    string
}

// decisionFilter is the query of the decisions page.
type decisionFilter struct {
	User, Group, Rule, Verdict string
	Limit                      int
}

func (f decisionFilter) matches(d *decisionView) bool {
	if f.Rule != "" && !slices.Contains(d.Rules, f.Rule) && !slices.Contains(d.ShadowRules, f.Rule) {
		return false
	}
	if f.Verdict != "" && !strings.EqualFold(d.Verdict, f.Verdict) && (f.Verdict != "none" || d.Verdict != "") {
		return false
	}
	return true
}

func readFilter(r *http.Request) decisionFilter {
	q := r.URL.Query()
	f := decisionFilter{
		User: strings.TrimSpace(q.Get("user")), Group: strings.TrimSpace(q.Get("group")),
		Rule: strings.TrimSpace(q.Get("rule")), Verdict: strings.TrimSpace(q.Get("verdict")), Limit: 100,
	}
	if n, err := strconv.Atoi(q.Get("limit")); err == nil && n > 0 && n <= 1000 {
		f.Limit = n
	}
	return f
}

// recent reads the decisions matching f, newest first. The store filters by
// group and user; rule and verdict are filtered here, from a longer read.
func (c *Console) recent(ctx context.Context, f decisionFilter) ([]decisionView, error) {
	limit := f.Limit
	if f.Rule != "" || f.Verdict != "" {
		limit = 5000
	}
	recs, err := c.cfg.Store.RecentDecisions(ctx, store.DecisionFilter{Group: f.Group, User: f.User, Limit: limit})
	if err != nil {
		return nil, err
	}
	set := c.rules()
	pending, dead := c.outbox(ctx)
	out := make([]decisionView, 0, min(len(recs), f.Limit))
	for _, rec := range recs {
		d, ok := c.decisionOf(rec, set, pending, dead)
		if !ok || !f.matches(&d) {
			continue
		}
		out = append(out, d)
		if len(out) == f.Limit {
			break
		}
	}
	return out, nil
}

// outbox returns the ids of waiting actions and the dead letters, to say
// what became of a decision's actions.
func (c *Console) outbox(ctx context.Context) (map[string]bool, map[string]store.DeadAction) {
	pending := map[string]bool{}
	dead := map[string]store.DeadAction{}
	if ps, err := c.cfg.Store.Pending(ctx, 1000); err == nil {
		for _, p := range ps {
			pending[p.ID] = true
		}
	}
	if ds, err := c.cfg.Store.Dead(ctx, 1000); err == nil {
		for _, d := range ds {
			dead[d.ID] = d
		}
	}
	return pending, dead
}

// storedDecision is the decision record kept in the store: the audit record
// and, when the engine keeps it, the trace.
type storedDecision struct {
	audit.Record
	// Trace is the per-rule trace policy records with the decision.
	Trace []policy.Step `json:"trace"`
}

func (c *Console) decisionOf(rec store.DecisionRecord, set *rules.Set, pending map[string]bool, dead map[string]store.DeadAction) (decisionView, bool) {
	var sd storedDecision
	if err := json.Unmarshal(rec.Body, &sd); err != nil {
		return decisionView{}, false
	}
	d := decisionView{
		ID: rec.ID, Time: sd.Time, Event: sd.Event, Command: sd.Command, Group: sd.Group, User: sd.User, Role: sd.Role,
		Verdict: sd.Verdict, ReplyCode: sd.ReplyCode, Rules: sd.Rules, ShadowRules: sd.ShadowRules, Budget: sd.Budget,
		Result: sd.Result, Error: sd.Error, RulesVersion: sd.RulesVersion,
	}
	if d.Time.IsZero() {
		d.Time = rec.Time
	}
	for _, a := range sd.Actions {
		av := actionView{ID: a.ID, Kind: a.Kind, Detail: actionDetail(a), Rule: a.Rule, Shadow: a.Shadow}
		switch {
		case a.Shadow:
			av.Outcome = "shadow: not carried out"
		case rules.ActionKind(a.Kind) == rules.ActStrike:
			av.Outcome = "counted"
		case a.ID == "":
			av.Outcome = "not queued"
		case dead[a.ID].ID != "":
			av.Outcome, av.Bad = "dead: "+dead[a.ID].Reason, true
		case pending[a.ID]:
			av.Outcome = "waiting"
		default:
			if res, ok := c.cfg.Results.lookup(a.ID); ok {
				av.Outcome = res.Result
				if res.Error != "" {
					av.Outcome += ": " + res.Error
				}
				av.Bad = res.Result == audit.ResultDead || res.Result == audit.ResultLost
			} else {
				av.Outcome = "finished (this replica did not carry it out; see the audit log)"
			}
		}
		d.Actions = append(d.Actions, av)
	}
	d.Trace, d.TraceNote = traceOf(&sd, set)
	return d, true
}

// traceOf is the per-rule trace of a decision: the one the engine kept
// when the record has it; otherwise every rule of the set in force that
// applies to the event, matched or not, from the record's matched rules.
func traceOf(sd *storedDecision, set *rules.Set) ([]traceStep, string) {
	byName := map[string]*rules.Rule{}
	if set != nil {
		for _, r := range set.Rules {
			byName[r.Name] = r
		}
	}
	describe := func(ts *traceStep) {
		if r := byName[ts.Rule]; r != nil {
			ts.If, ts.Does = r.Source, ruleDoes(r)
		}
	}
	var out []traceStep
	if len(sd.Trace) > 0 {
		// The recorded trace holds the rules that matched or failed. With
		// the same rules in force, the other rules of the event's kind are
		// shown in their place as not matched.
		recorded := map[string]traceStep{}
		for _, s := range sd.Trace {
			ts := traceStep{Rule: s.Rule, Matched: s.Matched, Shadow: s.Shadow, Skipped: s.Skipped, Error: s.Error}
			describe(&ts)
			recorded[s.Rule] = ts
		}
		if set == nil || (sd.RulesVersion != "" && sd.RulesVersion != set.Version) {
			for _, s := range sd.Trace {
				out = append(out, recorded[s.Rule])
			}
			return out, "as evaluated: the rules that matched or failed"
		}
		for _, r := range set.Rules {
			if ts, ok := recorded[r.Name]; ok {
				out = append(out, ts)
				delete(recorded, r.Name)
				continue
			}
			if sd.Event != "" && !slices.Contains(r.On, rules.Kind(sd.Event)) {
				continue
			}
			ts := traceStep{Rule: r.Name}
			describe(&ts)
			out = append(out, ts)
		}
		for _, s := range sd.Trace { // rules no longer in the set
			if ts, ok := recorded[s.Rule]; ok {
				out = append(out, ts)
			}
		}
		return out, "as evaluated; the other rules of the event did not match or were not evaluated"
	}
	if set == nil {
		return nil, ""
	}
	note := "rebuilt from the matched rules with the rules in force"
	if sd.RulesVersion != "" && sd.RulesVersion != set.Version {
		note = fmt.Sprintf("rebuilt from the matched rules; the rules changed since (decided with %s, in force %s)", sd.RulesVersion, set.Version)
	}
	for _, r := range set.Rules {
		if sd.Event != "" && !slices.Contains(r.On, rules.Kind(sd.Event)) {
			continue
		}
		ts := traceStep{Rule: r.Name, Matched: slices.Contains(sd.Rules, r.Name), Shadow: slices.Contains(sd.ShadowRules, r.Name)}
		if ts.Shadow {
			ts.Matched = true
		}
		describe(&ts)
		out = append(out, ts)
	}
	return out, note
}

// ruleDoes says in a few words what a rule does when it matches.
func ruleDoes(r *rules.Rule) string {
	var parts []string
	if r.Verdict != rules.None {
		parts = append(parts, "verdict "+string(r.Verdict))
	}
	for _, a := range r.Actions {
		switch {
		case a.Text != "":
			parts = append(parts, string(a.Kind)+" "+strconv.Quote(a.Text))
		case a.N > 0:
			parts = append(parts, string(a.Kind)+" "+strconv.Itoa(a.N))
		default:
			parts = append(parts, string(a.Kind))
		}
	}
	if r.Stop {
		parts = append(parts, "stop")
	}
	return strings.Join(parts, ", ")
}

func actionDetail(a audit.ActionRef) string {
	var parts []string
	if a.User != "" {
		parts = append(parts, a.User)
	}
	if a.Seconds > 0 {
		parts = append(parts, (time.Duration(a.Seconds) * time.Second).String())
	}
	if a.N > 0 {
		parts = append(parts, strconv.Itoa(a.N))
	}
	if a.Text != "" {
		parts = append(parts, strconv.Quote(a.Text))
	}
	return strings.Join(parts, " ")
}

type decisionsView struct {
	Filter    decisionFilter
	Decisions []decisionView
	Verdicts  []string
	Rules     []string
}

func (c *Console) decisions(w http.ResponseWriter, r *http.Request, s *session) {
	f := readFilter(r)
	ds, err := c.recent(r.Context(), f)
	if err != nil {
		c.fail(w, r, s, "decisions", http.StatusServiceUnavailable, fmt.Errorf("the store did not answer: %w", err))
		return
	}
	v := decisionsView{Filter: f, Decisions: ds,
		Verdicts: []string{"block", "drop", "rewrite", "reject", "hold", "refuse", "approve", "allow", "none"}}
	if set := c.rules(); set != nil {
		for _, rl := range set.Rules {
			v.Rules = append(v.Rules, rl.Name)
		}
	}
	c.renderPage(w, r, http.StatusOK, page{Page: "decisions", Title: "Decisions", Data: v}, s)
}

// live shows the newest decisions; with fragment=1 it answers only their
// table rows, which live.js fetches every few seconds. Without JavaScript
// the page reloads itself.
func (c *Console) live(w http.ResponseWriter, r *http.Request, s *session) {
	f := readFilter(r)
	if r.URL.Query().Get("limit") == "" {
		f.Limit = 50
	}
	ds, err := c.recent(r.Context(), f)
	if r.URL.Query().Get("fragment") == "1" {
		if err != nil {
			http.Error(w, "the store did not answer", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		if err := c.pages["live"].ExecuteTemplate(w, "decision-rows", ds); err != nil {
			c.log.Warn("live rows failed to render", "err", err)
		}
		return
	}
	p := page{Page: "live", Title: "Live", Data: decisionsView{Filter: f, Decisions: ds}, Refresh: 10}
	if err != nil {
		p.Error = "the store did not answer: " + err.Error()
	}
	c.renderPage(w, r, http.StatusOK, p, s)
}

func (c *Console) rules() *rules.Set {
	if c.cfg.Rules == nil {
		return nil
	}
	return c.cfg.Rules()
}

// ---------------------------------------------------------------------------
// Mutes.

type muteView struct {
	store.Mute
	Nonce string
}

type mutesView struct {
	Mutes  []muteView
	Groups int
	REST   bool
}

func (c *Console) mutes(w http.ResponseWriter, r *http.Request, s *session) {
	ctx := r.Context()
	groups, err := c.cfg.Store.MutedGroups(ctx)
	if err != nil {
		c.fail(w, r, s, "mutes", http.StatusServiceUnavailable, fmt.Errorf("the store did not answer: %w", err))
		return
	}
	sort.Strings(groups)
	v := mutesView{Groups: len(groups), REST: c.rest()}
	const maxGroups = 500
	for _, g := range groups[:min(len(groups), maxGroups)] {
		ms, err := c.cfg.Store.ListMutes(ctx, g)
		if err != nil {
			c.fail(w, r, s, "mutes", http.StatusServiceUnavailable, fmt.Errorf("the store did not answer: %w", err))
			return
		}
		for _, m := range ms {
			v.Mutes = append(v.Mutes, muteView{Mute: m, Nonce: randomID()})
		}
	}
	c.renderPage(w, r, http.StatusOK, page{Page: "mutes", Title: "Mutes", Data: v}, s)
}

func (c *Console) rest() bool { return c.cfg.RESTEnabled == nil || c.cfg.RESTEnabled() }

// liftMute queues an unmute (or a group unmute) in the outbox: the executor
// lifts it at the IM server, marks the record lifted early and forgets it,
// within the shared REST budget, and audits the result.
func (c *Console) liftMute(w http.ResponseWriter, r *http.Request, s *session) {
	group, user := r.PostForm.Get("group"), r.PostForm.Get("user")
	reason := strings.TrimSpace(r.PostForm.Get("reason"))
	if group == "" {
		http.Error(w, "group is required", http.StatusBadRequest)
		return
	}
	kind := rules.ActUnmute
	if user == "" {
		kind = rules.ActUnmuteGroup
	}
	a := store.Action{
		ID: actionID(r.PostForm.Get("nonce"), string(kind)), Kind: string(kind), Group: group, User: user,
		Rule: "console", Created: c.cfg.Now(),
		// A lift applies to whoever is muted, admins included.
		Roles: liftRoles(),
	}
	if err := c.enqueue(r, s, a, reason); err != nil {
		c.fail(w, r, s, "mutes", http.StatusServiceUnavailable, err)
		return
	}
	who := group
	if user != "" {
		who = user + " in " + group
	}
	redirect(w, r, Prefix+"/mutes", "Lift of the mute of "+who+" queued for the executor.")
}

// actionID names a console action by the form's nonce, so that a form sent
// twice queues one action.
func actionID(nonce, kind string) string {
	if nonce == "" || len(nonce) > 64 {
		nonce = randomID()
	}
	return "console/" + nonce + "/" + kind
}

// enqueue puts a moderator's action in the outbox and audits it.
func (c *Console) enqueue(r *http.Request, s *session, a store.Action, reason string) error {
	ref := audit.ActionRef{ID: a.ID, Kind: a.Kind, Group: a.Group, User: a.User, Seconds: a.Seconds, Text: a.Text, Rule: a.Rule}
	rec := &audit.Record{Group: a.Group, User: a.User, Actions: []audit.ActionRef{ref}, Reason: reason, Result: audit.ResultDone}
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	if err := c.cfg.Store.Enqueue(ctx, a); err != nil {
		rec.Result, rec.Error = audit.ResultFailed, err.Error()
		c.audit(r, s, rec)
		return fmt.Errorf("the action was not queued: %w", err)
	}
	c.audit(r, s, rec)
	c.log.Info("moderator queued an action", "moderator", s.Name, "kind", a.Kind, "group", a.Group, "user", a.User, "action", a.ID)
	return nil
}

// ---------------------------------------------------------------------------
// Actions: pending and dead letters.

type actionsView struct {
	Pending []store.Action
	Dead    []store.DeadAction
}

func (c *Console) actions(w http.ResponseWriter, r *http.Request, s *session) {
	ctx := r.Context()
	ps, err := c.cfg.Store.Pending(ctx, 200)
	if err != nil {
		c.fail(w, r, s, "actions", http.StatusServiceUnavailable, fmt.Errorf("the store did not answer: %w", err))
		return
	}
	ds, err := c.cfg.Store.Dead(ctx, 200)
	if err != nil {
		c.fail(w, r, s, "actions", http.StatusServiceUnavailable, fmt.Errorf("the store did not answer: %w", err))
		return
	}
	c.renderPage(w, r, http.StatusOK, page{Page: "actions", Title: "Actions", Data: actionsView{Pending: ps, Dead: ds}}, s)
}

func (c *Console) retryDead(w http.ResponseWriter, r *http.Request, s *session) {
	c.changeDead(w, r, s, "retry", func(ctx context.Context, id string) error {
		return c.cfg.Store.ReviveDead(ctx, id, c.cfg.Now())
	})
}

func (c *Console) dismissDead(w http.ResponseWriter, r *http.Request, s *session) {
	c.changeDead(w, r, s, "dismiss", c.cfg.Store.DismissDead)
}

func (c *Console) changeDead(w http.ResponseWriter, r *http.Request, s *session, what string, do func(context.Context, string) error) {
	id := r.PostForm.Get("id")
	if id == "" {
		http.Error(w, "id is required", http.StatusBadRequest)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	// The dead letter's own fields go into the audit record.
	ref := audit.ActionRef{ID: id, Kind: "dead_letter_" + what}
	if ds, err := c.cfg.Store.Dead(ctx, 10000); err == nil {
		for _, d := range ds {
			if d.ID == id {
				ref = audit.ActionRef{ID: id, Kind: d.Kind, Group: d.Group, User: d.User, Seconds: d.Seconds, Text: d.Text, Rule: d.Rule}
				break
			}
		}
	}
	rec := &audit.Record{Group: ref.Group, User: ref.User, Actions: []audit.ActionRef{ref}, Result: audit.ResultDone,
		Reason: "dead letter " + what}
	err := do(ctx, id)
	if err != nil {
		rec.Result, rec.Error = audit.ResultFailed, err.Error()
	}
	c.audit(r, s, rec)
	switch {
	case errors.Is(err, store.ErrNoDeadLetter):
		redirect(w, r, Prefix+"/actions", "That action is no longer a dead letter.")
	case err != nil:
		c.fail(w, r, s, "actions", http.StatusServiceUnavailable, err)
	case what == "retry":
		redirect(w, r, Prefix+"/actions", "Dead letter "+id+" is queued again.")
	default:
		redirect(w, r, Prefix+"/actions", "Dead letter "+id+" dismissed.")
	}
}

// ---------------------------------------------------------------------------
// Act: a moderator's own action on a member.

type actView struct {
	Nonce                     string
	Group, User, Kind, Reason string
	Duration, Text            string
	Kinds                     []string
	REST                      bool
	Queued                    string
}

// clearStrikes is the act page's kind that is no action: it clears a
// member's strikes in the store at once.
const clearStrikes = "clear_strikes"

var actKinds = []string{string(rules.ActMute), string(rules.ActUnmute), string(rules.ActKick), string(rules.ActBan), string(rules.ActWarn), clearStrikes}

// liftRoles are the roles an unmute from the console applies to: whoever
// is muted, admins included.
func liftRoles() []string {
	return []string{string(rules.RoleOwner), string(rules.RoleAdmin), string(rules.RoleAppAdmin)}
}

func (c *Console) actPage(w http.ResponseWriter, r *http.Request, s *session) {
	q := r.URL.Query()
	v := actView{Nonce: randomID(), Group: q.Get("group"), User: q.Get("user"), Kind: q.Get("kind"), Kinds: actKinds, REST: c.rest(),
		Duration: "10m"}
	c.renderPage(w, r, http.StatusOK, page{Page: "act", Title: "Act", Data: v}, s)
}

// act queues a moderator's action through the outbox, so that it is
// carried out by the executor within the shared REST budget and audited
// like a rule's; clearing strikes changes the store at once.
func (c *Console) act(w http.ResponseWriter, r *http.Request, s *session) {
	f := r.PostForm
	v := actView{Nonce: f.Get("nonce"), Group: strings.TrimSpace(f.Get("group")), User: strings.TrimSpace(f.Get("user")),
		Kind: f.Get("kind"), Reason: strings.TrimSpace(f.Get("reason")), Duration: strings.TrimSpace(f.Get("duration")),
		Text: strings.TrimSpace(f.Get("text")), Kinds: actKinds, REST: c.rest()}
	bad := func(msg string) {
		v.Nonce = randomID()
		c.renderPage(w, r, http.StatusBadRequest, page{Page: "act", Title: "Act", Error: msg, Data: v}, s)
	}
	switch {
	case v.Group == "" || v.User == "":
		bad("Give the group and the member.")
		return
	case v.Reason == "":
		bad("Give a reason: it is audited with your name.")
		return
	case len(v.Reason) > 500 || len(v.Text) > 1000:
		bad("The reason is limited to 500 bytes and the text to 1000.")
		return
	}
	a := store.Action{ID: actionID(v.Nonce, v.Kind), Kind: v.Kind, Group: v.Group, User: v.User, Rule: "console", Created: c.cfg.Now()}
	switch rules.ActionKind(v.Kind) {
	case rules.ActMute, rules.ActBan:
		d, err := time.ParseDuration(v.Duration)
		if err != nil || d < time.Second || d > 30*24*time.Hour {
			bad("The duration must be like 10m, 2h or 72h, from 1s to 720h.")
			return
		}
		a.Seconds = int64(d / time.Second)
	case rules.ActUnmute:
		a.Roles = liftRoles()
	case rules.ActKick:
		a.Text = v.Reason
	case rules.ActWarn:
		if v.Text == "" {
			bad("A warning needs the text the member will read.")
			return
		}
		a.Text = v.Text
	case clearStrikes:
		ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
		defer cancel()
		rec := &audit.Record{Group: v.Group, User: v.User, Reason: v.Reason, Result: audit.ResultDone,
			Actions: []audit.ActionRef{{Kind: clearStrikes, Group: v.Group, User: v.User, Rule: "console"}}}
		err := c.cfg.Store.ClearStrikes(ctx, v.Group, v.User)
		if err != nil {
			rec.Result, rec.Error = audit.ResultFailed, err.Error()
		}
		c.audit(r, s, rec)
		if err != nil {
			c.renderPage(w, r, http.StatusServiceUnavailable, page{Page: "act", Title: "Act", Error: err.Error(), Data: v}, s)
			return
		}
		redirect(w, r, Prefix+"/act", "The strikes of "+v.User+" in "+v.Group+" are cleared.")
		return
	default:
		bad("Pick what to do: mute, unmute, kick, ban, warn or clear strikes.")
		return
	}
	if err := c.enqueue(r, s, a, v.Reason); err != nil {
		c.renderPage(w, r, http.StatusServiceUnavailable, page{Page: "act", Title: "Act", Error: err.Error(), Data: v}, s)
		return
	}
	redirect(w, r, Prefix+"/act", fmt.Sprintf("%s of %s in %s queued for the executor (action %s).", v.Kind, v.User, v.Group, a.ID))
}
