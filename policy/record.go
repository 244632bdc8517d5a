package policy

import (
	"encoding/json"

	"github.com/timguard/timguard/audit"
	"github.com/timguard/timguard/rules"
)

// eventDecision is the decision recorded for an event no rule was evaluated
// for (not evaluated, the bot's own message, a duplicate): result says why.
func eventDecision(ev *Event, set *rules.Set, result, errText string) Decision {
	d := Decision{
		Time: ev.Received, Kind: audit.KindDecision, EventID: ev.ID, Command: ev.Command, Event: ev.Kind,
		Group: ev.Base.GroupID, Rules: []string{}, RulesVersion: set.Version, Result: result, Error: errText,
	}
	if len(ev.Subjects) == 1 {
		d.User = ev.Subjects[0]
	}
	return d
}

// EncodeDecision returns d as one audit line, without the newline. A
// decision without rules prints "rules": [], as every decision record does.
func EncodeDecision(d *Decision) ([]byte, error) {
	if d.Rules == nil {
		d.Rules = []string{}
	}
	return d.AppendJSON(make([]byte, 0, d.sizeHint()))
}

// sizeHint is about the length of d's line: its fixed part and what its
// strings add, so that EncodeDecision allocates the line once.
func (d *Decision) sizeHint() int {
	n := 300 + len(d.EventID) + len(d.Command) + len(d.Event) + len(d.Group) + len(d.User) + len(d.Role) +
		len(d.RulesVersion) + len(d.Result) + len(d.Error)
	for _, s := range d.Rules {
		n += len(s) + 3
	}
	for _, s := range d.ShadowRules {
		n += len(s) + 3
	}
	for _, s := range d.Budget {
		n += len(s) + 3
	}
	for _, s := range d.Words {
		n += len(s) + 3
	}
	for i := range d.Actions {
		a := &d.Actions[i]
		n += 80 + len(a.ID) + len(a.Kind) + len(a.Text) + len(a.Announce) + len(a.Rule)
	}
	if d.Reply != nil {
		n += 32 + len(d.Reply.Text)
	}
	if d.State != nil {
		n += 40
		for _, c := range d.State.Counters {
			n += len(c.Name) + 16
		}
		for _, m := range d.State.Modes {
			n += len(m) + 3
		}
	}
	for i := range d.Trace {
		s := &d.Trace[i]
		n += 60 + len(s.Rule) + len(s.If) + len(s.Skipped) + len(s.Error) + len(s.Detail)
	}
	return n
}

// AppendJSON appends d as encoding/json's Marshal writes it, byte for byte,
// without its reflection: the audit log encodes a decision per callback.
// A time Marshal refuses is left to Marshal, for its error.
func (d *Decision) AppendJSON(dst []byte) ([]byte, error) {
	dst = append(dst, `{"time":`...)
	dst, ok := audit.AppendTime(dst, d.Time)
	if !ok {
		return json.Marshal(d)
	}
	dst = append(dst, `,"kind":`...)
	dst = audit.AppendString(dst, d.Kind)
	dst = appendOptString(dst, "event_id", d.EventID)
	dst = appendOptString(dst, "command", d.Command)
	dst = appendOptString(dst, "event", string(d.Event))
	dst = appendOptString(dst, "group", d.Group)
	dst = appendOptString(dst, "user", d.User)
	dst = appendOptString(dst, "role", string(d.Role))
	dst = appendOptString(dst, "verdict", string(d.Verdict))
	dst = append(dst, `,"rules":`...)
	dst = audit.AppendStrings(dst, d.Rules)
	dst = appendOptString(dst, "rules_version", d.RulesVersion)
	if len(d.Actions) > 0 {
		dst = append(dst, `,"actions":[`...)
		for i := range d.Actions {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = d.Actions[i].appendJSON(dst)
		}
		dst = append(dst, ']')
	}
	dst = append(dst, `,"shadow":`...)
	dst = audit.AppendBool(dst, d.Shadow)
	if len(d.ShadowRules) > 0 {
		dst = append(dst, `,"shadow_rules":`...)
		dst = audit.AppendStrings(dst, d.ShadowRules)
	}
	if len(d.Budget) > 0 {
		dst = append(dst, `,"budget_exceeded":`...)
		dst = audit.AppendStrings(dst, d.Budget)
	}
	if len(d.Words) > 0 {
		dst = append(dst, `,"words":`...)
		dst = audit.AppendStrings(dst, d.Words)
	}
	dst = appendOptString(dst, "result", d.Result)
	dst = appendOptString(dst, "error", d.Error)
	dst = append(dst, `,"latency_us":`...)
	dst = audit.AppendInt(dst, d.LatencyUS)
	if d.ReplyCode != 0 {
		dst = append(dst, `,"reply_code":`...)
		dst = audit.AppendInt(dst, int64(d.ReplyCode))
	}
	if d.Reply != nil {
		dst = append(dst, `,"reply":{"code":`...)
		dst = audit.AppendInt(dst, int64(d.Reply.Code))
		dst = appendOptString(dst, "text", d.Reply.Text)
		dst = append(dst, '}')
	}
	dst = appendOptString(dst, "shadow_verdict", string(d.ShadowVerdict))
	if d.State != nil {
		dst = append(dst, `,"state":{`...)
		if len(d.State.Counters) > 0 {
			dst = append(dst, `"counters":`...)
			dst = appendCounts(dst, d.State.Counters)
			dst = append(dst, ',')
		}
		dst = append(dst, `"strikes":`...)
		dst = audit.AppendInt(dst, int64(d.State.Strikes))
		if len(d.State.Modes) > 0 {
			dst = append(dst, `,"modes":`...)
			dst = audit.AppendStrings(dst, d.State.Modes)
		}
		dst = append(dst, '}')
	}
	if len(d.Trace) > 0 {
		dst = append(dst, `,"trace":[`...)
		for i := range d.Trace {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = d.Trace[i].appendJSON(dst)
		}
		dst = append(dst, ']')
	}
	return append(dst, '}'), nil
}

func (a *PlannedAction) appendJSON(dst []byte) []byte {
	dst = append(dst, '{')
	if a.ID != "" {
		dst = append(dst, `"id":`...)
		dst = audit.AppendString(dst, a.ID)
		dst = append(dst, ',')
	}
	dst = append(dst, `"kind":`...)
	dst = audit.AppendString(dst, string(a.Kind))
	if a.Seconds != 0 {
		dst = append(dst, `,"seconds":`...)
		dst = audit.AppendInt(dst, a.Seconds)
	}
	dst = appendOptString(dst, "text", a.Text)
	if a.N != 0 {
		dst = append(dst, `,"n":`...)
		dst = audit.AppendInt(dst, int64(a.N))
	}
	dst = appendOptString(dst, "announce", a.Announce)
	dst = appendOptString(dst, "rule", a.Rule)
	if a.Shadow {
		dst = append(dst, `,"shadow":true`...)
	}
	return append(dst, '}')
}

func (s *Step) appendJSON(dst []byte) []byte {
	dst = append(dst, `{"rule":`...)
	dst = audit.AppendString(dst, s.Rule)
	dst = append(dst, `,"matched":`...)
	dst = audit.AppendBool(dst, s.Matched)
	if s.Shadow {
		dst = append(dst, `,"shadow":true`...)
	}
	dst = appendOptString(dst, "verdict", string(s.Verdict))
	dst = appendOptString(dst, "if", s.If)
	dst = appendOptString(dst, "skipped", s.Skipped)
	dst = appendOptString(dst, "error", s.Error)
	dst = appendOptString(dst, "detail", s.Detail)
	return append(dst, '}')
}

// appendOptString appends ,"key":"value" unless value is empty (omitempty).
func appendOptString(dst []byte, key, value string) []byte {
	if value == "" {
		return dst
	}
	dst = append(dst, ',', '"')
	dst = append(dst, key...)
	dst = append(dst, '"', ':')
	return audit.AppendString(dst, value)
}

// appendCounts appends counts as a JSON object from name to value.
func appendCounts(dst []byte, c Counts) []byte {
	dst = append(dst, '{')
	for i, n := range c {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = audit.AppendString(dst, n.Name)
		dst = append(dst, ':')
		dst = audit.AppendInt(dst, int64(n.Value))
	}
	return append(dst, '}')
}
