package rules

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/timguard/timguard/tim"
	"gopkg.in/yaml.v3"
)

// This file holds the tests kept beside rules, as the rule file writes them
// and as they are compiled: the event each builds, its state and what it
// expects. policy runs them (policy/ruletests.go).

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
	if t.State.Role != "" && !t.State.Role.Valid() {
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

// Test is a test kept beside a rule.
type Test struct {
	Rule  *Rule
	Name  string
	Line  int
	Event tim.Event
	// Body is the callback body the test event stands for.
	Body   []byte
	State  TestState
	Expect Expect
}

// TestState is the store state a test assumes.
type TestState struct {
	Counters map[string]int
	Strikes  int
	// Messages is user.messages; SeenFor how long before the event the
	// user was first seen (user.first_seen).
	Messages int
	SeenFor  time.Duration
	Role     Role
	Modes    []string
	Now      time.Time
}

// Expect is what a test expects of the decision.
type Expect struct {
	Verdict    *Verdict
	Actions    []Resolved
	HasActions bool
	Matched    *bool
	Rules      []string
	Reply      *Reply
	Text       *string
	Shadow     []string
	Line       int
}

type testSpec struct {
	Name   string         `yaml:"name"`
	Event  map[string]any `yaml:"event"`
	State  stateSpec      `yaml:"state"`
	Expect expectSpec     `yaml:"expect"`
	Line   int            `yaml:"-"`
}

func (t *testSpec) UnmarshalYAML(n *yaml.Node) error {
	type plain testSpec
	t.Line = n.Line
	return n.Decode((*plain)(t))
}

type stateSpec struct {
	Counters map[string]int `yaml:"counters"`
	Strikes  int            `yaml:"strikes"`
	Messages int            `yaml:"messages"`
	SeenFor  string         `yaml:"seen_for"`
	Role     Role           `yaml:"role"`
	Modes    []string       `yaml:"modes"`
	Now      string         `yaml:"now"`
}

type expectSpec struct {
	Verdict *string      `yaml:"verdict"`
	Actions []actionSpec `yaml:"actions"`
	// NoActions distinguishes `actions: []` from leaving actions out.
	Matched *bool      `yaml:"matched"`
	Rules   []string   `yaml:"rules"`
	Reply   *replySpec `yaml:"reply"`
	Text    *string    `yaml:"text"`
	Shadow  []string   `yaml:"shadow"`
	Line    int        `yaml:"-"`
	// hasActions is true when the test says actions:, even as [].
	hasActions bool
}

func (e *expectSpec) UnmarshalYAML(n *yaml.Node) error {
	type plain expectSpec
	e.Line = n.Line
	if err := n.Decode((*plain)(e)); err != nil {
		return err
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == "actions" {
			e.hasActions = true
		}
	}
	return nil
}
