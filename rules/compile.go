package rules

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/robfig/cron/v3"

	"github.com/timguard/timguard/internal/yamlx"
	"github.com/timguard/timguard/tim"
)

// Problem is one thing wrong with a rule file.
type Problem struct {
	// File is the list file the problem is in, when it is not in the rule
	// file itself.
	File string
	Line int
	// Section is "rule", "counter", "schedule", "list" or "" for the file.
	Section string
	// Name is the rule's (counter's, schedule's) name, when it has one.
	Name string
	// Field is the key the problem is about, e.g. "if" or "actions[1]".
	Field  string
	Reason string
}

func (p Problem) String() string {
	var b strings.Builder
	if p.Line > 0 {
		fmt.Fprintf(&b, "%d: ", p.Line)
	}
	if p.Section != "" {
		if p.Name != "" {
			fmt.Fprintf(&b, "%s %q: ", p.Section, p.Name)
		} else {
			fmt.Fprintf(&b, "%s: ", p.Section)
		}
	}
	if p.Field != "" {
		b.WriteString(p.Field)
		b.WriteString(": ")
	}
	b.WriteString(p.Reason)
	return b.String()
}

// Error lists every problem of one rule file.
type Error struct {
	File     string
	Problems []Problem
}

func (e *Error) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		file := e.File
		if p.File != "" {
			file = p.File
		}
		lines[i] = file + ":" + p.String()
		if p.Line == 0 {
			lines[i] = file + ": " + p.String()
		}
	}
	return strings.Join(lines, "\n")
}

// Load reads and compiles the rule file at path.
func Load(path string) (*Set, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, &Error{File: path, Problems: []Problem{{Reason: err.Error()}}}
	}
	return Parse(path, data)
}

var namePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)

// Parse compiles a rule file already read. Every problem is reported at once
// in an *Error.
func Parse(file string, data []byte) (*Set, error) {
	var spec fileSpec
	root, yproblems := yamlx.DecodeNode(data, &spec, yamlx.Options{})
	c := &compiler{file: file}
	for _, p := range yproblems {
		section, name := nameAt(root, p.Line)
		c.problems = append(c.problems, Problem{Line: p.Line, Section: section, Name: name, Field: p.Path, Reason: p.Reason})
	}
	if root == nil {
		return nil, c.err()
	}
	// A document the decoder gave up on (a duplicate key, say) leaves
	// version at 0 although the file has one: that is a consequence, not
	// another problem.
	if v := mappingValue(root, "version"); spec.Version == 0 && v != "" && v != "0" {
		c.versionUnread = true
	}
	set := c.compile(&spec)
	if len(c.problems) > 0 {
		return nil, c.err()
	}
	// The version covers the list files: a changed list is a new version.
	h := sha256.New()
	h.Write(data)
	for _, d := range c.listData {
		h.Write(d)
	}
	set.File = file
	set.Version = hex.EncodeToString(h.Sum(nil)[:6])
	set.listFiles = c.listFiles
	return set, nil
}

type compiler struct {
	file     string
	problems []Problem
	env      *compileEnv
	modes    map[string]bool
	// ruleNames holds every rule name in the file, compiled or not.
	ruleNames map[string]int
	// versionUnread: the file has a version the decoder did not read.
	versionUnread bool
	// The lists, the list files read and their contents (for the version).
	listDefs  map[string]*listDef
	listFiles []string
	listData  [][]byte
}

func (c *compiler) err() error {
	sort.SliceStable(c.problems, func(i, j int) bool {
		if c.problems[i].File != c.problems[j].File {
			return c.problems[i].File < c.problems[j].File // the rule file's own first
		}
		return c.problems[i].Line < c.problems[j].Line
	})
	return &Error{File: c.file, Problems: c.problems}
}

func (c *compiler) add(line int, section, name, field, format string, args ...any) {
	c.problems = append(c.problems, Problem{Line: line, Section: section, Name: name, Field: field, Reason: fmt.Sprintf(format, args...)})
}

func (c *compiler) compile(spec *fileSpec) *Set {
	if spec.Version != 1 && !c.versionUnread {
		c.add(0, "", "", "version", "must be 1 (got %d)", spec.Version)
	}
	set := &Set{Lists: map[string][]string{}, plans: map[Kind]*Plan{}, StrikeDecay: 24 * time.Hour, UserTTL: DefaultUserTTL}
	c.readLists(spec.Lists, set)
	if spec.Strikes.Decay != "" {
		if d, err := parseDuration(spec.Strikes.Decay); err != nil || d < time.Minute {
			c.add(0, "", "", "strikes.decay", "%q must be a duration of at least 1m", spec.Strikes.Decay)
		} else {
			set.StrikeDecay = d
		}
	}

	if spec.Users.ForgetAfter != "" {
		if d, err := parseDuration(spec.Users.ForgetAfter); err != nil || d < time.Hour {
			c.add(0, "", "", "users.forget_after", "%q must be a duration of at least 1h, such as 90d", spec.Users.ForgetAfter)
		} else {
			set.UserTTL = d
		}
	}

	// Counters first: rules refer to them.
	seen := map[string]int{}
	for i := range spec.Counters {
		cs := &spec.Counters[i]
		if prev, dup := seen[cs.Name]; dup && cs.Name != "" {
			c.add(cs.Line, "counter", cs.Name, "name", "is also used by the counter on line %d", prev)
		}
		seen[cs.Name] = cs.Line
		set.Counters = append(set.Counters, &Counter{Name: cs.Name, Line: cs.Line, Index: i})
	}
	c.env = newCompileEnv(set.Counters, set.Lists)
	for i := range spec.Counters {
		c.counter(&spec.Counters[i], set.Counters[i])
	}

	c.modes = map[string]bool{}
	for i := range spec.Schedules {
		if s := c.schedule(&spec.Schedules[i]); s != nil {
			set.Schedules = append(set.Schedules, s)
		}
	}

	c.ruleNames = map[string]int{}
	for i := range spec.Rules {
		rs := &spec.Rules[i]
		if prev, dup := c.ruleNames[rs.Name]; dup && rs.Name != "" {
			c.add(rs.Line, "rule", rs.Name, "name", "duplicate rule name (first used on line %d)", prev)
		}
		c.ruleNames[rs.Name] = rs.Line
		if r := c.rule(rs); r != nil {
			set.Rules = append(set.Rules, r)
		}
	}
	set.byName = make(map[string]*Rule, len(set.Rules))
	for _, r := range set.Rules {
		set.byName[r.Name] = r
	}
	c.plan(set)
	c.compileWordLists(set)
	c.boxLists(set)
	// Tests decode events against the finished set.
	for i := range spec.Rules {
		rs := &spec.Rules[i]
		r := set.Rule(rs.Name)
		if r == nil {
			continue
		}
		for j := range rs.Tests {
			if t := c.test(r, &rs.Tests[j], j); t != nil {
				r.Tests = append(r.Tests, t)
			}
		}
	}
	return set
}

func (c *compiler) counter(cs *counterSpec, ctr *Counter) {
	add := func(field, format string, args ...any) { c.add(cs.Line, "counter", cs.Name, field, format, args...) }
	if !namePattern.MatchString(cs.Name) {
		add("name", "%q must be letters, digits, _ . and - (at most 64)", cs.Name)
	}
	ctr.On = c.kinds(cs.On, cs.Line, "counter", cs.Name)
	if d, err := parseDuration(cs.Window); err != nil || d < time.Second || d > 7*24*time.Hour {
		add("window", "%q must be a duration from 1s to 168h", cs.Window)
	} else {
		ctr.Window = d
	}
	if strings.TrimSpace(cs.Key.Src) == "" {
		add("key", "is required, e.g. group.id + \"/\" + user.id")
	} else if p, errs := c.env.compile(cs.Key.Src, expr.AsKind(reflect.String)); len(errs) > 0 {
		for _, e := range errs {
			add("key", "%s%s", e, commentHint(cs.Key.Comment))
		}
	} else if bad := readsState(p); bad != "" {
		add("key", "cannot read %s: counters are keyed before the store is read", bad)
	} else {
		ctr.key = p
	}
	if strings.TrimSpace(cs.If.Src) != "" {
		if p, errs := c.env.compile(cs.If.Src, expr.AsBool()); len(errs) > 0 {
			for _, e := range errs {
				add("if", "%s%s", e, commentHint(cs.If.Comment))
			}
		} else if bad := readsState(p); bad != "" {
			add("if", "cannot read %s: counters are touched before the store is read", bad)
		} else {
			ctr.cond = p
		}
	}
}

// readsState names the first thing p reads that comes from the store.
func readsState(p *program) string {
	for name := range p.use.counters {
		return "counters." + name
	}
	for _, f := range []string{varUserStrikes, varUserRole, varFirstSeen, varMessages} {
		if p.use.fields[f] {
			return f
		}
	}
	return ""
}

func (c *compiler) kinds(on kindList, line int, section, name string) []Kind {
	if len(on) == 0 {
		c.add(line, section, name, "on", "is required: one of %s", kindNames())
		return nil
	}
	var out []Kind
	for _, s := range on {
		k := Kind(s)
		if !k.Valid() {
			c.add(line, section, name, "on", "%q is not an event kind (one of %s)", s, kindNames())
			continue
		}
		out = append(out, k)
	}
	return out
}

func kindNames() string {
	kinds := Kinds()
	names := make([]string, len(kinds))
	for i, k := range kinds {
		names[i] = string(k)
	}
	return strings.Join(names, ", ")
}

func (c *compiler) rule(rs *ruleSpec) *Rule {
	before := len(c.problems)
	add := func(field, format string, args ...any) { c.add(rs.Line, "rule", rs.Name, field, format, args...) }
	if !namePattern.MatchString(rs.Name) {
		add("name", "%q must be letters, digits, _ . and - (at most 64), starting with a letter or digit", rs.Name)
	}
	r := &Rule{
		Name: rs.Name, Description: rs.Description, Line: rs.Line, Stop: rs.Stop,
		Shadow: rs.Shadow, Mode: rs.Mode, Source: rs.If.Src,
	}
	r.On = c.kinds(rs.On, rs.Line, "rule", rs.Name)

	if strings.TrimSpace(rs.If.Src) == "" {
		add("if", "is required (write `if: true` to match every event)")
	} else if p, errs := c.env.compile(rs.If.Src, expr.AsBool()); len(errs) > 0 {
		for _, e := range errs {
			add("if", "%s%s", e, commentHint(rs.If.Comment))
		}
	} else {
		r.cond = p
	}

	if rs.Verdict != "" {
		r.Verdict = Verdict(rs.Verdict)
		for _, k := range r.On {
			if !r.Verdict.Allowed(k) {
				allowed := VerdictsFor(k)
				if len(allowed) == 0 {
					add("verdict", "%s events take no verdict (the IM server ignores the answer); use actions", k)
				} else {
					add("verdict", "%q is not a verdict for %s (one of %s)", rs.Verdict, k, joinVerdicts(allowed))
				}
			}
		}
	}
	if rs.Reply != nil {
		switch {
		case !r.Verdict.Refuses() || r.Verdict == Drop:
			add("reply", "only a reject, refuse or block verdict sends a reply")
		case rs.Reply.Code != tim.CodeRefuse && !tim.IsCustomCode(rs.Reply.Code):
			add("reply.code", "%d must be 1 or from %d to %d", rs.Reply.Code, tim.CustomCodeMin, tim.CustomCodeMax)
		case rs.Reply.Code == tim.CodeRefuse && rs.Reply.Text != "":
			add("reply.text", "is only shown with a code from %d to %d; with code 1 the user sees 10016", tim.CustomCodeMin, tim.CustomCodeMax)
		}
		r.Reply = &Reply{Code: rs.Reply.Code, Text: rs.Reply.Text}
	}
	if (rs.Rewrite != nil) != (r.Verdict == Rewrite) {
		if rs.Rewrite == nil {
			add("rewrite", "verdict rewrite needs rewrite: {text: EXPR} or rewrite: {mask: EXPR}")
		} else {
			add("rewrite", "is only used with verdict: rewrite")
		}
	} else if rs.Rewrite != nil {
		r.Rewrite = c.rewrite(rs)
	}

	for i := range rs.Actions {
		if a := c.action(&rs.Actions[i], r.On, "rule", rs.Name, fmt.Sprintf("actions[%d]", i), false); a != nil {
			if a.Kind == ActWarn {
				t, err := parseTemplate(a.Text)
				if err != nil {
					c.add(rs.Actions[i].Line, "rule", rs.Name, fmt.Sprintf("actions[%d]", i), "warn: %s", err)
				}
				a.text = t
			}
			r.Actions = append(r.Actions, a)
		}
	}
	if r.Reply != nil {
		t, err := parseTemplate(r.Reply.Text)
		if err != nil {
			add("reply.text", "%s", err)
		}
		r.replyText = t
	}

	r.Exempt = append([]string{}, defaultExempt...)
	if rs.Exempt.Set {
		// A list names the roles that stay exempt; the App admin stays
		// exempt unless the rule says exempt: none.
		r.Exempt = r.Exempt[:0]
		if len(rs.Exempt.Roles) > 0 {
			r.Exempt = append(r.Exempt, RoleAppAdmin)
		}
		for _, role := range rs.Exempt.Roles {
			switch role {
			case RoleOwner, RoleAdmin:
				r.Exempt = append(r.Exempt, role)
			case RoleAppAdmin:
			default:
				add("exempt", "%q is not a role (owner, admin, app_admin), none or default", role)
			}
		}
	}
	if rs.Budget != nil {
		d, err := parseDuration(rs.Budget.Per)
		switch {
		case rs.Budget.Actions < 1:
			add("budget.actions", "%d must be at least 1", rs.Budget.Actions)
		case err != nil || d < time.Second || d > 7*24*time.Hour:
			add("budget.per", "%q must be a duration from 1s to 168h", rs.Budget.Per)
		default:
			r.Budget = &Budget{Actions: rs.Budget.Actions, Per: d}
		}
	}
	if rs.Mode != "" && !c.modes[rs.Mode] {
		add("mode", "%q is never switched on by a schedule (schedules: ... mode: {name: %s, for: 8h})", rs.Mode, rs.Mode)
	}
	if r.Verdict == None && len(rs.Actions) == 0 && !r.Stop {
		add("", "does nothing: give it a verdict, actions or stop: true")
	}
	r.counters = ruleCounters(r)
	r.wordListNames = ruleWordLists(r)
	c.placeholderNeeds(r, add)
	if len(c.problems) > before {
		return nil
	}
	return r
}

// placeholderNeeds checks that the rule can fill the placeholders its texts
// use: {until} needs a mute, ban or group mute of its own, {words} a list it
// looks words up in.
func (c *compiler) placeholderNeeds(r *Rule, add func(field, format string, args ...any)) {
	type text struct {
		field string
		t     *template
	}
	texts := []text{{"reply.text", r.replyText}}
	for i, a := range r.Actions {
		texts = append(texts, text{fmt.Sprintf("actions[%d]", i), a.text})
	}
	mutes := slices.ContainsFunc(r.Actions, func(a *Action) bool { return isMuteKind(a.Kind) })
	for _, t := range texts {
		if t.t.uses(PhUntil) && !mutes {
			add(t.field, "{until} needs a mute, ban or mute_group action in the same rule")
		}
		if t.t.uses(PhWords) && len(r.wordListNames) == 0 {
			add(t.field, "{words} needs a list the rule looks words up in, e.g. contains_any(message.text, lists.spam_words)")
		}
	}
}

// ruleCounters lists every counter r's expressions read: its condition, the
// durations of its actions and its rewrite. The plan fetches exactly these.
func ruleCounters(r *Rule) []string {
	reads := map[string]bool{}
	for _, p := range ruleProgs(r) {
		for name := range p.use.counters {
			reads[name] = true
		}
	}
	return sortedKeys(reads)
}

// ruleProgs lists every program of a rule: its condition, its action
// durations and its rewrite.
func ruleProgs(r *Rule) []*program {
	progs := []*program{r.cond}
	for _, a := range r.Actions {
		if a.duration != nil {
			progs = append(progs, a.duration.prog)
		}
	}
	if r.Rewrite != nil {
		progs = append(progs, r.Rewrite.text, r.Rewrite.mask)
	}
	return slices.DeleteFunc(progs, func(p *program) bool { return p == nil })
}

// readsField reports whether any of progs reads the variable name.
func readsField(name string, progs ...*program) bool {
	for _, p := range progs {
		if p != nil && p.use.fields[name] {
			return true
		}
	}
	return false
}

func joinVerdicts(vs []Verdict) string {
	s := make([]string, len(vs))
	for i, v := range vs {
		s[i] = string(v)
	}
	return strings.Join(s, ", ")
}

func (c *compiler) rewrite(rs *ruleSpec) *Rewriter {
	spec := rs.Rewrite
	add := func(field, format string, args ...any) { c.add(rs.Line, "rule", rs.Name, field, format, args...) }
	rw := &Rewriter{with: spec.With}
	switch {
	case (spec.Text.Src == "") == (spec.Mask.Src == ""):
		add("rewrite", "give exactly one of text: EXPR and mask: EXPR")
	case spec.Text.Src != "":
		p, errs := c.env.compile(spec.Text.Src, expr.AsKind(reflect.String))
		for _, e := range errs {
			add("rewrite.text", "%s%s", e, commentHint(spec.Text.Comment))
		}
		rw.text = p
	default:
		p, errs := c.env.compile(spec.Mask.Src)
		for _, e := range errs {
			add("rewrite.mask", "%s%s", e, commentHint(spec.Mask.Comment))
		}
		if p != nil {
			if k := p.prog.Node().Type(); k != nil && k.Kind() != reflect.Slice && k.Kind() != reflect.Interface {
				add("rewrite.mask", "%q gives %s, not a list of words", spec.Mask.Src, k)
			}
			// mask: lists.NAME masks through the list's automaton.
			if id, ok := p.prog.Node().(*ast.IdentifierNode); ok && strings.HasPrefix(id.Value, prefixLists) && !strings.Contains(id.Value, "#") {
				rw.listName = strings.TrimPrefix(id.Value, prefixLists)
				c.env.words[rw.listName] = true
			}
		}
		rw.mask = p
	}
	if len([]rune(spec.With)) > 4 {
		add("rewrite.with", "%q is too long; use one character such as *", spec.With)
	}
	return rw
}

// actionNeeds says what value each action takes and where it may appear.
type actionRule struct {
	value   string // "", "duration", "text", "count"
	subject bool   // acts on the event's user
	kinds   []Kind // only these kinds (nil = every kind)
}

var actionRules = map[string]actionRule{
	ActMute:        {value: "duration", subject: true},
	ActUnmute:      {subject: true},
	ActKick:        {value: "text", subject: true},
	ActBan:         {value: "duration", subject: true},
	ActUnban:       {subject: true},
	ActStrike:      {value: "count", subject: true},
	ActWarn:        {value: "text"},
	ActMuteGroup:   {value: "duration"},
	ActUnmuteGroup: {},
	ActAdmit:       {subject: true, kinds: []Kind{JoinRequest}},
}

func actionNames() string {
	names := make([]string, 0, len(actionRules))
	for k := range actionRules {
		names = append(names, k)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

// action compiles one action. literal forbids expressions (expected actions
// in tests, schedules).
func (c *compiler) action(as *actionSpec, on []Kind, section, name, field string, literal bool) *Action {
	add := func(format string, args ...any) { c.add(as.Line, section, name, field, format, args...) }
	for _, p := range as.problems {
		add("%s", p)
	}
	if len(as.problems) > 0 {
		return nil
	}
	ar, ok := actionRules[as.Kind]
	if !ok {
		add("%q is not an action (one of %s)", as.Kind, actionNames())
		return nil
	}
	for _, k := range on {
		if ar.subject && k == GroupDestroyed {
			add("%s needs a user; %s events have none", as.Kind, k)
			return nil
		}
		if ar.kinds != nil && !containsKind(ar.kinds, k) {
			add("%s only applies to %s events", as.Kind, ar.kinds[0])
			return nil
		}
	}
	a := &Action{Kind: as.Kind, Announce: as.Announce, Line: as.Line}
	if as.Announce != "" && as.Kind != ActMute && as.Kind != ActMuteGroup && as.Kind != ActBan {
		add("announce only goes with mute, ban and mute_group (it is sent when they end)")
		return nil
	}
	switch ar.value {
	case "":
		if as.HasValue && as.Value != "" {
			add("%s takes no value (write just %s)", as.Kind, as.Kind)
			return nil
		}
	case "text":
		if !as.HasValue || strings.TrimSpace(as.Value) == "" {
			add("%s needs a text, e.g. {%s: \"Repeated violations\"}", as.Kind, as.Kind)
			return nil
		}
		a.Text = as.Value
	case "count":
		n, err := strconv.Atoi(as.Value)
		if !as.HasValue {
			n, err = 1, nil
		}
		if err != nil || n < 1 || n > 100 {
			add("%s needs a whole number from 1 to 100, got %q", as.Kind, as.Value)
			return nil
		}
		a.N = n
	case "duration":
		if !as.HasValue || as.Value == "" {
			add("%s needs a duration, e.g. {%s: 10m}", as.Kind, as.Kind)
			return nil
		}
		d, err := c.duration(as.Value, literal)
		if err != "" {
			add("%s: %s%s", as.Kind, err, commentHint(as.Comment))
			return nil
		}
		a.duration = d
	}
	return a
}

// duration compiles a literal ("10m", "permanent") or an expression giving a
// duration.
func (c *compiler) duration(src string, literal bool) (*durationSpec, string) {
	if src == "permanent" || src == "forever" {
		return &durationSpec{fixed: -1, src: src}, ""
	}
	if d, err := parseDuration(src); err == nil {
		if d < time.Second {
			return nil, fmt.Sprintf("%q is shorter than a second", src)
		}
		return &durationSpec{fixed: d, src: src}, ""
	}
	if literal {
		return nil, fmt.Sprintf("%q is not a duration such as 10m or permanent", src)
	}
	p, errs := c.env.compile(src)
	if len(errs) > 0 {
		return nil, fmt.Sprintf("%q is neither a duration such as 10m nor a valid expression: %s", src, strings.Join(errs, "; "))
	}
	if t := p.prog.Node().Type(); t != nil && t != reflect.TypeOf(time.Duration(0)) && t.Kind() != reflect.Interface {
		return nil, fmt.Sprintf("%q gives %s, not a duration; build one with duration(\"10m\")", src, t)
	}
	return &durationSpec{prog: p, src: src}, ""
}

func containsKind(ks []Kind, k Kind) bool {
	for _, x := range ks {
		if x == k {
			return true
		}
	}
	return false
}

// ParseDuration reads a duration as rule files write them:
// time.ParseDuration plus days ("7d").
func ParseDuration(s string) (time.Duration, error) { return parseDuration(s) }

// parseDuration is time.ParseDuration plus days ("7d").
func parseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if strings.HasSuffix(s, "d") {
		n, err := strconv.Atoi(strings.TrimSuffix(s, "d"))
		if err == nil && n >= 0 && n <= 3650 {
			return time.Duration(n) * 24 * time.Hour, nil
		}
	}
	return time.ParseDuration(s)
}

func (c *compiler) schedule(ss *scheduleSpec) *Schedule {
	before := len(c.problems)
	add := func(field, format string, args ...any) { c.add(ss.Line, "schedule", ss.Name, field, format, args...) }
	if !namePattern.MatchString(ss.Name) {
		add("name", "%q must be letters, digits, _ . and - (at most 64)", ss.Name)
	}
	s := &Schedule{Name: ss.Name, Cron: ss.Cron, Timezone: ss.Timezone, Groups: ss.Groups, Line: ss.Line}
	if err := ValidateCron(ss.Cron); err != nil {
		add("cron", "%s", err)
	}
	if ss.Timezone == "" {
		add("timezone", "is required: an IANA name such as Asia/Shanghai or UTC")
	} else if loc, err := LoadTimezone(ss.Timezone); err != nil {
		add("timezone", "%s", err)
	} else {
		s.Location = loc
	}
	if len(ss.Actions) == 0 && ss.Mode == nil {
		add("", "does nothing: give it actions or a mode")
	}
	if len(ss.Actions) > 0 && len(ss.Groups) == 0 {
		add("groups", "actions need the groups they apply to")
	}
	for i := range ss.Actions {
		as := &ss.Actions[i]
		ar, ok := actionRules[as.Kind]
		if ok && ar.subject {
			c.add(as.Line, "schedule", ss.Name, fmt.Sprintf("actions[%d]", i), "%s needs a user; schedules act on whole groups (mute_group, unmute_group, warn)", as.Kind)
			continue
		}
		if a := c.action(as, nil, "schedule", ss.Name, fmt.Sprintf("actions[%d]", i), true); a != nil {
			s.Actions = append(s.Actions, a)
		}
	}
	if ss.Mode != nil {
		d, err := parseDuration(ss.Mode.For)
		switch {
		case !namePattern.MatchString(ss.Mode.Name):
			add("mode.name", "%q must be letters, digits, _ . and -", ss.Mode.Name)
		case err != nil || d < time.Minute:
			add("mode.for", "%q must be a duration of at least 1m", ss.Mode.For)
		default:
			s.Mode = &ModeSwitch{Name: ss.Mode.Name, For: d}
			c.modes[ss.Mode.Name] = true
		}
	}
	if len(c.problems) > before {
		return nil
	}
	return s
}

// cronParser reads standard five-field specs and descriptors such as @daily.
func cronParser() cron.Parser {
	return cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)
}

// ValidateCron checks a cron expression. The timezone is given separately,
// so CRON_TZ= and TZ= prefixes are refused.
func ValidateCron(spec string) error {
	if strings.TrimSpace(spec) == "" {
		return fmt.Errorf("is required, e.g. \"0 23 * * *\"")
	}
	if strings.HasPrefix(spec, "CRON_TZ=") || strings.HasPrefix(spec, "TZ=") {
		return fmt.Errorf("%q: give the timezone in timezone:, not in the cron expression", spec)
	}
	if _, err := ParseCron(spec, time.UTC); err != nil {
		return err
	}
	if rest, ok := strings.CutPrefix(strings.TrimSpace(spec), "@every"); ok {
		if d, err := time.ParseDuration(strings.TrimSpace(rest)); err == nil && d < time.Minute {
			return fmt.Errorf("%q runs more often than once a minute; schedules run at most every minute", spec)
		}
	}
	return nil
}

// ParseCron parses spec in loc. It never panics.
func ParseCron(spec string, loc *time.Location) (sched cron.Schedule, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%q is not a cron expression: %v", spec, r)
		}
	}()
	s, err := cronParser().Parse("CRON_TZ=" + loc.String() + " " + spec)
	if err != nil {
		return nil, fmt.Errorf("%q is not a cron expression (minute hour day-of-month month day-of-week): %v", spec, err)
	}
	return s, nil
}

// LoadTimezone loads an IANA timezone by name, refusing "Local" and names
// that only work on some machines.
func LoadTimezone(name string) (*time.Location, error) {
	if name == "Local" {
		return nil, fmt.Errorf("%q depends on the machine; name the zone, e.g. Asia/Shanghai", name)
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil, fmt.Errorf("%q is not an IANA timezone such as Asia/Shanghai or Europe/Berlin", name)
	}
	return loc, nil
}

// plan works out, per kind, the rules, counters and budgets it needs.
func (c *compiler) plan(set *Set) {
	for _, k := range Kinds() {
		p := &Plan{Kind: k}
		use := map[string]bool{}
		for _, r := range set.Rules {
			if !containsKind(r.On, k) {
				continue
			}
			p.Rules = append(p.Rules, r)
			for _, name := range r.counters {
				use[name] = true
			}
			if r.Budget != nil {
				p.Budgeted = append(p.Budgeted, r)
			}
			if r.Mode != "" {
				p.UsesModes = true
			}
			if readsField(varURLs, ruleProgs(r)...) {
				p.ReadsURLs = true
			}
		}
		for _, ctr := range set.Counters {
			touch := containsKind(ctr.On, k)
			if touch || use[ctr.Name] {
				p.Counters = append(p.Counters, CounterUse{Counter: ctr, Touch: touch})
				if readsField(varURLs, ctr.key, ctr.cond) {
					p.ReadsURLs = true
				}
			}
		}
		if len(p.Rules) > 0 || len(p.Counters) > 0 {
			set.plans[k] = p
		}
	}
	c.planUsers(set)
}

// DefaultUserTTL is how long a user's activity in a group is kept after
// they were last seen there, unless users.forget_after says otherwise.
const DefaultUserTTL = 90 * 24 * time.Hour

// planUsers works out, per kind, what is read and recorded of the
// subjects' activity. When no rule reads user.first_seen or user.messages,
// nothing is. Otherwise every kind with a plan whose events show the user
// in the group (a message, a member joining) records a sighting, so that
// first_seen is right for the rules that read it; one kind counts
// messages, so that a message seen by both message callbacks counts once.
func (c *compiler) planUsers(set *Set) {
	tracked := false
	for _, r := range set.Rules {
		if readsField(varFirstSeen, ruleProgs(r)...) || readsField(varMessages, ruleProgs(r)...) {
			tracked = true
		}
	}
	if !tracked {
		return
	}
	counting := MessageSent
	if set.plans[Message] != nil {
		counting = Message
	}
	for k, p := range set.plans {
		for _, r := range p.Rules {
			if readsField(varFirstSeen, ruleProgs(r)...) || readsField(varMessages, ruleProgs(r)...) {
				p.Users.Read = true
			}
		}
		switch k {
		case Message, MessageSent, MemberJoined:
			p.Users.Seen = true
		}
		p.Users.Count = k == counting
	}
}

// boxLists boxes, once, what expressions read of the lists: the words,
// the set `in` looks in (for every list written as a sequence, and for
// others when an expression uses `in`) and the compiled list.
func (c *compiler) boxLists(set *Set) {
	set.boxed = make(map[string]any, 3*len(set.Lists))
	for name, items := range set.Lists {
		set.boxed[prefixLists+name] = items
		if d := c.listDefs[name]; d == nil || d.plain || c.env.sets[name] {
			members := make(map[string]struct{}, len(items))
			for _, it := range items {
				members[it] = struct{}{}
			}
			set.boxed[prefixLists+name+suffixSet] = members
		}
		set.boxed[prefixLists+name+suffixWords] = set.words[name] // nil unless its words are looked for
	}
	for _, r := range set.Rules {
		if r.Rewrite != nil && r.Rewrite.listName != "" {
			r.Rewrite.list = set.words[r.Rewrite.listName]
		}
		r.wordLists = wordListsOf(r.wordListNames, set.words)
	}
}

// test compiles a test kept beside rule r.
func (c *compiler) test(r *Rule, ts *testSpec, i int) *Test {
	field := fmt.Sprintf("tests[%d]", i)
	if ts.Name != "" {
		field = fmt.Sprintf("tests[%d] %q", i, ts.Name)
	}
	add := func(format string, args ...any) { c.add(ts.Line, "rule", r.Name, field, format, args...) }
	t := &Test{Rule: r, Name: ts.Name, Line: ts.Line}
	if ts.Name == "" {
		t.Name = strconv.Itoa(i + 1)
	}
	body, ev, err := testEvent(r, ts.Event)
	if err != nil {
		add("event: %s", err)
		return nil
	}
	t.Body, t.Event = body, ev
	t.State = TestState{Counters: ts.State.Counters, Strikes: ts.State.Strikes, Role: ts.State.Role, Modes: ts.State.Modes}
	if ts.State.Messages < 0 {
		add("state.messages: %d must not be negative", ts.State.Messages)
		return nil
	}
	t.State.Messages = ts.State.Messages
	if ts.State.SeenFor != "" {
		d, err := parseDuration(ts.State.SeenFor)
		if err != nil || d < 0 {
			add("state.seen_for: %q is not a duration such as 3d (how long ago the user was first seen)", ts.State.SeenFor)
			return nil
		}
		t.State.SeenFor = d
	}
	switch t.State.Role {
	case "", RoleMember, RoleAdmin, RoleOwner, RoleAppAdmin:
	default:
		add("state.role: %q is not owner, admin, member or app_admin", t.State.Role)
		return nil
	}
	for name := range ts.State.Counters {
		if _, ok := c.env.counters[name]; !ok {
			add("state.counters.%s is not a declared counter", name)
			return nil
		}
	}
	if ts.State.Now != "" {
		now, err := time.Parse(time.RFC3339, ts.State.Now)
		if err != nil {
			add("state.now: %q is not an RFC 3339 time such as 2026-11-21T23:00:00+08:00", ts.State.Now)
			return nil
		}
		t.State.Now = now
	}
	ex := ts.Expect
	t.Expect = Expect{Matched: ex.Matched, Rules: ex.Rules, Text: ex.Text, Shadow: ex.Shadow, HasActions: ex.hasActions, Line: ex.Line}
	if ex.Verdict != nil {
		v := Verdict(*ex.Verdict)
		if v == "none" {
			v = None
		}
		if v != None && !v.Allowed(t.kind()) {
			add("expect.verdict: %q is not a verdict for %s", *ex.Verdict, t.kind())
			return nil
		}
		t.Expect.Verdict = &v
	}
	if ex.Reply != nil {
		t.Expect.Reply = &Reply{Code: ex.Reply.Code, Text: ex.Reply.Text}
	}
	for j := range ex.Actions {
		a := c.action(&ex.Actions[j], nil, "rule", r.Name, fmt.Sprintf("%s expect.actions[%d]", field, j), true)
		if a == nil {
			return nil
		}
		res := Resolved{Kind: a.Kind, Text: a.Text, N: a.N, Announce: a.Announce}
		if a.duration != nil {
			res.Seconds = durationSeconds(a.duration.fixed)
		}
		t.Expect.Actions = append(t.Expect.Actions, res)
	}
	for _, name := range append(append([]string{}, ex.Rules...), ex.Shadow...) {
		if _, ok := c.ruleNames[name]; !ok {
			add("expect: %q is not a rule in this file", name)
			return nil
		}
	}
	return t
}

func (t *Test) kind() Kind {
	k, _ := KindOf(t.Event.Header().CallbackCommand)
	return k
}

// Kind is the event kind of the test's event.
func (t *Test) Kind() Kind { return t.kind() }

// testEvent builds a callback body from a test's event mapping: Tencent's own
// field names, plus the shorthands user, text, operator and apply_msg, with
// defaults for the command (the rule's first kind), GroupId and Type.
func testEvent(r *Rule, fields map[string]any) ([]byte, tim.Event, error) {
	body := map[string]any{}
	for k, v := range fields {
		body[k] = v
	}
	cmd, _ := body["CallbackCommand"].(string)
	if cmd == "" {
		if len(r.On) == 0 {
			return nil, nil, fmt.Errorf("the rule has no valid kind")
		}
		cmd = r.On[0].Command()
		body["CallbackCommand"] = cmd
	}
	kind, ok := KindOf(cmd)
	if !ok {
		return nil, nil, fmt.Errorf("CallbackCommand %q is not one rules evaluate", cmd)
	}
	setDefault(body, "GroupId", "@TGS#test")
	setDefault(body, "Type", tim.GroupPublic)
	setDefault(body, "EventTime", 1700000000000)
	if user, ok := body["user"]; ok {
		delete(body, "user")
		switch kind {
		case JoinRequest:
			setDefault(body, "Requestor_Account", user)
		case Invite:
			setDefault(body, "DestinationMembers", []any{map[string]any{"Member_Account": user}})
		case Message, MessageSent:
			setDefault(body, "From_Account", user)
		case MemberJoined:
			setDefault(body, "NewMemberList", []any{map[string]any{"Member_Account": user}})
		case MemberLeft:
			setDefault(body, "ExitMemberList", []any{map[string]any{"Member_Account": user}})
		default:
			return nil, nil, fmt.Errorf("user: %s events have no user", kind)
		}
	}
	if text, ok := body["text"]; ok {
		delete(body, "text")
		setDefault(body, "MsgBody", []any{map[string]any{"MsgType": tim.ElemText, "MsgContent": map[string]any{"Text": text}}})
	}
	if op, ok := body["operator"]; ok {
		delete(body, "operator")
		setDefault(body, "Operator_Account", op)
	}
	if msg, ok := body["apply_msg"]; ok {
		delete(body, "apply_msg")
		setDefault(body, "ApplyMsg", msg)
	}
	switch kind {
	case JoinRequest:
		setDefault(body, "Requestor_Account", "tester")
	case Invite:
		setDefault(body, "Operator_Account", "inviter")
		setDefault(body, "DestinationMembers", []any{map[string]any{"Member_Account": "tester"}})
	case Message, MessageSent:
		setDefault(body, "From_Account", "tester")
		setDefault(body, "MsgBody", []any{})
	}
	data, err := json.Marshal(body)
	if err != nil {
		return nil, nil, err
	}
	ev, err := tim.DecodeCallback(cmd, data)
	if err != nil {
		return nil, nil, err
	}
	return data, ev, nil
}

func setDefault(m map[string]any, key string, v any) {
	if _, ok := m[key]; !ok {
		m[key] = v
	}
}
