package rules

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"

	"github.com/timguard/timguard/tim"
)

// This file compiles one rule: its condition, verdict and reply, rewrite,
// exemptions, budget and mode.

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

	r.Exempt = append([]Role{}, defaultExempt...)
	if rs.Exempt.Set {
		// A list names the roles that stay exempt; the App admin stays
		// exempt unless the rule says exempt: none.
		r.Exempt = r.Exempt[:0]
		if len(rs.Exempt.Roles) > 0 {
			r.Exempt = append(r.Exempt, RoleAppAdmin)
		}
		for _, name := range rs.Exempt.Roles {
			switch role := Role(name); role {
			case RoleOwner, RoleAdmin:
				r.Exempt = append(r.Exempt, role)
			case RoleAppAdmin:
			default:
				add("exempt", "%q is not a role (owner, admin, app_admin), none or default", name)
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
