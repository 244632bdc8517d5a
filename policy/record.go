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

// EncodeDecision returns d as one audit line, without the newline.
func EncodeDecision(d *Decision) ([]byte, error) {
	if d.Rules == nil {
		d.Rules = []string{}
	}
	return json.Marshal(d)
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
