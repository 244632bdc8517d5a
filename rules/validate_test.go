package rules

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
)

// header is a valid start of a rule file, ten lines long: the first rule
// appended to it starts on line 11.
const header = `version: 1
lists:
  trusted: [alice, bob]
  words: [spam, scam]
counters:
  - name: user_msgs
    on: [message]
    key: group.id + "/" + user.id
    window: 10s
rules:
`

// wantProblem is a problem a file must produce; Reason is matched as a
// substring.
type wantProblem struct {
	Line    int
	Section string
	Name    string
	Field   string
	Reason  string
}

func (w wantProblem) matches(p Problem) bool {
	return p.Line == w.Line && p.Section == w.Section && p.Name == w.Name && p.Field == w.Field && strings.Contains(p.Reason, w.Reason)
}

// parseError parses src and returns its problems, failing when it compiles.
func parseError(t *testing.T, file, src string) (*Error, []Problem) {
	t.Helper()
	set, err := Parse(file, []byte(src))
	if err == nil {
		t.Fatalf("Parse accepted the file (%s)", set.Summary())
	}
	if set != nil {
		t.Error("Parse returned a set along with the error")
	}
	var re *Error
	if !errors.As(err, &re) {
		t.Fatalf("Parse error is %T (%v), want *rules.Error", err, err)
	}
	if re.File != file {
		t.Errorf("Error.File = %q, want %q", re.File, file)
	}
	return re, re.Problems
}

// messageLine is how Error() prints a problem located at a line.
func messageLine(file string, w wantProblem) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s:%d: ", file, w.Line)
	switch {
	case w.Section != "" && w.Name != "":
		fmt.Fprintf(&b, "%s %q: ", w.Section, w.Name)
	case w.Section != "":
		b.WriteString(w.Section + ": ")
	}
	if w.Field != "" {
		b.WriteString(w.Field + ": ")
	}
	return b.String()
}

// printed reports whether err prints w on one line: file, line, section,
// name and field first, then the reason.
func printed(err error, file string, w wantProblem) bool {
	for _, line := range strings.Split(err.Error(), "\n") {
		if rest, ok := strings.CutPrefix(line, messageLine(file, w)); ok && strings.Contains(rest, w.Reason) {
			return true
		}
	}
	return false
}

func TestParseRefusesEachMistake(t *testing.T) {
	tests := []struct {
		name string
		src  string // appended to header unless it starts with "version"
		want wantProblem
	}{
		// Expressions.
		{
			name: "an unknown field of a namespace is named with the fields it has",
			src:  "  - name: r\n    on: message\n    if: user.foo == \"x\"\n    verdict: block\n",
			want: wantProblem{11, "rule", "r", "if", "user.foo is not a field; user has user.first_seen, user.id, user.messages, user.role, user.strikes"},
		},
		{
			name: "an unknown field of message lists the message fields",
			src:  "  - name: r\n    on: message\n    if: message.body == \"x\"\n    verdict: block\n",
			want: wantProblem{11, "rule", "r", "if", "message.body is not a field; message has message.at_all, message.mentions, message.text, message.types, message.urls"},
		},
		{
			name: "an internal name cannot be reached through an index",
			src:  "  - name: r\n    on: message\n    if: message[\"text#lower\"] == \"\"\n    verdict: block\n",
			want: wantProblem{11, "rule", "r", "if", "message.text#lower is not a field"},
		},
		{
			name: "an undeclared counter is named with the declared ones",
			src:  "  - name: r\n    on: message\n    if: counters.user_msg > 5\n    verdict: block\n",
			want: wantProblem{11, "rule", "r", "if", "counters.user_msg is not declared under counters: known: user_msgs"},
		},
		{
			name: "an undeclared list is named with the declared ones",
			src:  "  - name: r\n    on: message\n    if: user.id in lists.trusty\n    verdict: block\n",
			want: wantProblem{11, "rule", "r", "if", "lists.trusty is not declared under lists: known: trusted, words"},
		},
		{
			name: "a namespace used as a value on its own",
			src:  "  - name: r\n    on: message\n    if: user == \"x\"\n    verdict: block\n",
			want: wantProblem{11, "rule", "r", "if", "user is not a value on its own; use user.first_seen, user.id, user.messages, user.role, user.strikes"},
		},
		{
			name: "lists used as a value on its own",
			src:  "  - name: r\n    on: message\n    if: len(lists) > 0\n    verdict: block\n",
			want: wantProblem{11, "rule", "r", "if", "lists is not a value on its own; use lists.NAME"},
		},
		{
			name: "a namespace indexed with a computed name",
			src:  "  - name: r\n    on: message\n    if: user[message.text] == \"x\"\n    verdict: block\n",
			want: wantProblem{11, "rule", "r", "if", "user[...] needs a constant name"},
		},
		{
			name: "an if that gives a string",
			src:  "  - name: r\n    on: message\n    if: user.id\n    verdict: block\n",
			want: wantProblem{11, "rule", "r", "if", "expected bool, but got string"},
		},
		{
			name: "an if that gives a number",
			src:  "  - name: r\n    on: message\n    if: counters.user_msgs\n    verdict: block\n",
			want: wantProblem{11, "rule", "r", "if", "expected bool, but got int"},
		},
		{
			name: "an if that does not parse keeps expr's position",
			src:  "  - name: r\n    on: message\n    if: user.id ==\n    verdict: block\n",
			want: wantProblem{11, "rule", "r", "if", "unexpected token EOF (1:10)"},
		},
		{
			name: "a missing if",
			src:  "  - name: r\n    on: message\n    verdict: block\n",
			want: wantProblem{11, "rule", "r", "if", "is required (write `if: true` to match every event)"},
		},
		{
			name: "an if that is not a string",
			src:  "  - name: r\n    on: message\n    if: [a, b]\n    verdict: block\n",
			want: wantProblem{13, "rule", "r", "", "want an expression (a string)"},
		},
		{
			name: "a YAML comment cutting an expression gets the hint",
			src:  "  - name: r\n    on: message\n    if: any(lists.words, {lower(message.text) contains #})\n    verdict: block\n",
			want: wantProblem{11, "rule", "r", "if", `(YAML read "#})" as a comment: a " #" starts one; quote the whole expression)`},
		},
		{
			name: "a YAML comment cutting a duration expression gets the hint",
			src:  "  - name: r\n    on: message\n    if: \"true\"\n    actions:\n      - mute: duration(\"1m\") * len(filter(lists.words, { # != \"\"}))\n",
			want: wantProblem{15, "rule", "r", "actions[0]", `as a comment`},
		},
		// Verdicts.
		{
			name: "a verdict another kind takes",
			src:  "  - name: r\n    on: join_request\n    if: \"true\"\n    verdict: block\n",
			want: wantProblem{11, "rule", "r", "verdict", `"block" is not a verdict for join_request (one of approve, hold, reject)`},
		},
		{
			name: "a verdict that no kind takes",
			src:  "  - name: r\n    on: invite\n    if: \"true\"\n    verdict: nuke\n",
			want: wantProblem{11, "rule", "r", "verdict", `"nuke" is not a verdict for invite (one of allow, refuse)`},
		},
		{
			name: "a verdict valid for one of two kinds",
			src:  "  - name: r\n    on: [message, invite]\n    if: \"true\"\n    verdict: block\n",
			want: wantProblem{11, "rule", "r", "verdict", `"block" is not a verdict for invite`},
		},
		{
			name: "a verdict on an after-kind",
			src:  "  - name: r\n    on: member_joined\n    if: \"true\"\n    verdict: allow\n",
			want: wantProblem{11, "rule", "r", "verdict", "member_joined events take no verdict (the IM server ignores the answer); use actions"},
		},
		{
			name: "a verdict on message_sent",
			src:  "  - name: r\n    on: message_sent\n    if: \"true\"\n    verdict: block\n",
			want: wantProblem{11, "rule", "r", "verdict", "message_sent events take no verdict"},
		},
		{
			name: "a rule that does nothing",
			src:  "  - name: r\n    on: message\n    if: \"true\"\n",
			want: wantProblem{11, "rule", "r", "", "does nothing: give it a verdict, actions or stop: true"},
		},
		// Names and keys.
		{
			name: "a duplicate rule name points at the first",
			src:  "  - {name: r, on: message, if: \"true\", verdict: block}\n  - {name: r, on: message, if: \"true\", verdict: drop}\n",
			want: wantProblem{12, "rule", "r", "name", "duplicate rule name (first used on line 11)"},
		},
		{
			name: "a rule name with spaces",
			src:  "  - name: no spaces please\n    on: message\n    if: \"true\"\n    verdict: block\n",
			want: wantProblem{11, "rule", "no spaces please", "name", `"no spaces please" must be letters, digits, _ . and -`},
		},
		{
			name: "a rule without a name",
			src:  "  - on: message\n    if: \"true\"\n    verdict: block\n",
			want: wantProblem{11, "rule", "", "name", `"" must be letters, digits`},
		},
		{
			name: "an unknown rule key gets a suggestion",
			src:  "  - name: r\n    on: message\n    if: \"true\"\n    verdict: block\n    stpo: true\n",
			want: wantProblem{15, "rule", "r", "rules[0].stpo", `unknown key (did you mean "stop"?)`},
		},
		{
			name: "an unknown top-level key gets a suggestion",
			src:  "version: 1\nrule:\n  - name: r\n",
			want: wantProblem{2, "", "", "rule", `unknown key (did you mean "rules"?)`},
		},
		{
			name: "a misspelt kind",
			src:  "  - name: r\n    on: messages\n    if: \"true\"\n    verdict: block\n",
			want: wantProblem{11, "rule", "r", "on", `"messages" is not an event kind (one of join_request, invite, message, message_sent, member_joined, member_left, group_destroyed)`},
		},
		{
			name: "a missing on",
			src:  "  - name: r\n    if: \"true\"\n    verdict: block\n",
			want: wantProblem{11, "rule", "r", "on", "is required: one of join_request"},
		},
		{
			name: "an on that is a mapping",
			src:  "  - name: r\n    on: {kind: message}\n    if: \"true\"\n    verdict: block\n",
			want: wantProblem{12, "rule", "r", "", "on: want an event kind or a list of them"},
		},
		{
			name: "a version other than 1",
			src:  "version: 2\nrules:\n  - {name: r, on: message, if: \"true\", verdict: block}\n",
			want: wantProblem{0, "", "", "version", "must be 1 (got 2)"},
		},
		{
			name: "a missing version",
			src:  "version_: 1\n",
			want: wantProblem{0, "", "", "version", "must be 1 (got 0)"},
		},
		{
			name: "a list name with a space",
			src:  "version: 1\nlists:\n  bad name: [x]\n",
			want: wantProblem{3, "list", "bad name", "", "list names are letters, digits, _ . and -"},
		},
		{
			name: "a strike decay under a minute",
			src:  "version: 1\nstrikes: {decay: 30s}\n",
			want: wantProblem{0, "", "", "strikes.decay", `"30s" must be a duration of at least 1m`},
		},
		// Actions.
		{
			name: "an unknown action lists the known ones",
			src:  "  - name: r\n    on: message\n    if: \"true\"\n    actions: [{mutee: 10m}]\n",
			want: wantProblem{14, "rule", "r", "actions[0]", `"mutee" is not an action (one of admit, ban, kick, mute, mute_group, strike, unban, unmute, unmute_group, warn)`},
		},
		{
			name: "a mute without a duration",
			src:  "  - name: r\n    on: message\n    if: \"true\"\n    actions: [mute]\n",
			want: wantProblem{14, "rule", "r", "actions[0]", "mute needs a duration, e.g. {mute: 10m}"},
		},
		{
			name: "a kick without a reason",
			src:  "  - name: r\n    on: message\n    if: \"true\"\n    actions: [kick]\n",
			want: wantProblem{14, "rule", "r", "actions[0]", `kick needs a text, e.g. {kick: "Repeated violations"}`},
		},
		{
			name: "a warn with a blank text",
			src:  "  - name: r\n    on: message\n    if: \"true\"\n    actions: [{warn: \"  \"}]\n",
			want: wantProblem{14, "rule", "r", "actions[0]", "warn needs a text"},
		},
		{
			name: "an unmute with a value",
			src:  "  - name: r\n    on: message\n    if: \"true\"\n    actions: [{unmute: 10m}]\n",
			want: wantProblem{14, "rule", "r", "actions[0]", "unmute takes no value (write just unmute)"},
		},
		{
			name: "a strike of zero",
			src:  "  - name: r\n    on: message\n    if: \"true\"\n    actions: [{strike: 0}]\n",
			want: wantProblem{14, "rule", "r", "actions[0]", `strike needs a whole number from 1 to 100, got "0"`},
		},
		{
			name: "a strike of 101",
			src:  "  - name: r\n    on: message\n    if: \"true\"\n    actions: [{strike: 101}]\n",
			want: wantProblem{14, "rule", "r", "actions[0]", `got "101"`},
		},
		{
			name: "a strike in words",
			src:  "  - name: r\n    on: message\n    if: \"true\"\n    actions: [{strike: two}]\n",
			want: wantProblem{14, "rule", "r", "actions[0]", `got "two"`},
		},
		{
			name: "two actions in one entry",
			src:  "  - name: r\n    on: message\n    if: \"true\"\n    actions: [{mute: 10m, kick: bye}]\n",
			want: wantProblem{14, "rule", "r", "actions[0]", "one action per entry: found both mute and kick"},
		},
		{
			name: "an entry with only an announcement",
			src:  "  - name: r\n    on: message\n    if: \"true\"\n    actions: [{announce: hi}]\n",
			want: wantProblem{14, "rule", "r", "actions[0]", "empty action"},
		},
		{
			name: "an action value that is a list",
			src:  "  - name: r\n    on: message\n    if: \"true\"\n    actions: [{mute: [10m]}]\n",
			want: wantProblem{14, "rule", "r", "actions[0]", "mute: want a single value, e.g. {mute: 10m}"},
		},
		{
			name: "an action that is a list",
			src:  "  - name: r\n    on: message\n    if: \"true\"\n    actions: [[mute]]\n",
			want: wantProblem{14, "rule", "r", "", "an action is a name (unmute) or a mapping ({mute: 10m})"},
		},
		{
			name: "an announcement on a kick",
			src:  "  - name: r\n    on: message\n    if: \"true\"\n    actions: [{kick: bye, announce: hi}]\n",
			want: wantProblem{14, "rule", "r", "actions[0]", "announce only goes with mute, ban and mute_group"},
		},
		{
			name: "admit outside join_request",
			src:  "  - name: r\n    on: message\n    if: \"true\"\n    actions: [admit]\n",
			want: wantProblem{14, "rule", "r", "actions[0]", "admit only applies to join_request events"},
		},
		{
			name: "a mute on group_destroyed",
			src:  "  - name: r\n    on: group_destroyed\n    if: \"true\"\n    actions: [{mute: 10m}]\n",
			want: wantProblem{14, "rule", "r", "actions[0]", "mute needs a user; group_destroyed events have none"},
		},
		{
			name: "a strike on group_destroyed",
			src:  "  - name: r\n    on: [message, group_destroyed]\n    if: \"true\"\n    actions: [strike]\n",
			want: wantProblem{14, "rule", "r", "actions[0]", "strike needs a user; group_destroyed events have none"},
		},
		{
			name: "a duration in words",
			src:  "  - name: r\n    on: message\n    if: \"true\"\n    actions: [{mute: 10 minutes}]\n",
			want: wantProblem{14, "rule", "r", "actions[0]", `mute: "10 minutes" is neither a duration such as 10m nor a valid expression`},
		},
		{
			name: "a duration under a second",
			src:  "  - name: r\n    on: message\n    if: \"true\"\n    actions: [{mute: 500ms}]\n",
			want: wantProblem{14, "rule", "r", "actions[0]", `mute: "500ms" is shorter than a second`},
		},
		{
			name: "a zero duration",
			src:  "  - name: r\n    on: message\n    if: \"true\"\n    actions: [{ban: 0s}]\n",
			want: wantProblem{14, "rule", "r", "actions[0]", `ban: "0s" is shorter than a second`},
		},
		{
			name: "a negative duration",
			src:  "  - name: r\n    on: message\n    if: \"true\"\n    actions: [{mute: -5m}]\n",
			want: wantProblem{14, "rule", "r", "actions[0]", `mute: "-5m" is shorter than a second`},
		},
		{
			name: "a duration expression giving a number",
			src:  "  - name: r\n    on: message\n    if: \"true\"\n    actions: [{mute: 'user.strikes * 60'}]\n",
			want: wantProblem{14, "rule", "r", "actions[0]", `mute: "user.strikes * 60" gives int, not a duration; build one with duration("10m")`},
		},
		{
			name: "a bare number as duration",
			src:  "  - name: r\n    on: message\n    if: \"true\"\n    actions: [{mute: 10}]\n",
			want: wantProblem{14, "rule", "r", "actions[0]", `mute: "10" gives int, not a duration`},
		},
		{
			name: "a duration expression reading an unknown field",
			src:  "  - name: r\n    on: message\n    if: \"true\"\n    actions: [{mute: 'duration(\"1m\") * user.level'}]\n",
			want: wantProblem{14, "rule", "r", "actions[0]", "user.level is not a field"},
		},
		// Literal arguments that fail on every event.
		{
			name: "a duration in words inside the condition, with no test",
			src:  "  - name: r\n    on: message\n    if: 'message.text != \"\" && duration(\"5 mins\") > duration(\"1s\")'\n    verdict: block\n",
			want: wantProblem{11, "rule", "r", "if", `duration("5 mins") fails on every event: time: unknown unit " mins" in duration "5 mins"`},
		},
		{
			name: "a duration in words inside a mute expression",
			src:  "  - name: r\n    on: message\n    if: \"true\"\n    actions: [{mute: 'duration(\"5 mins\") * (user.strikes + 1)'}]\n",
			want: wantProblem{14, "rule", "r", "actions[0]", `duration("5 mins") fails on every event`},
		},
		{
			name: "a duration built from constant pieces",
			src:  "  - name: r\n    on: message\n    if: 'duration(\"5\" + \" mins\") > duration(\"1s\")'\n    verdict: block\n",
			want: wantProblem{11, "rule", "r", "if", `duration("5" + " mins") fails on every event`},
		},
		{
			name: "a date that is not one",
			src:  "  - name: r\n    on: message\n    if: 'date(\"yesterday\") < now'\n    verdict: block\n",
			want: wantProblem{11, "rule", "r", "if", `date("yesterday") fails on every event`},
		},
		{
			name: "an unknown time zone",
			src:  "  - name: r\n    on: message\n    if: 'now.In(timezone(\"Mars/Base\")).Hour() > 22'\n    verdict: block\n",
			want: wantProblem{11, "rule", "r", "if", `timezone("Mars/Base") fails on every event`},
		},
		{
			name: "a number that is not one",
			src:  "  - name: r\n    on: message\n    if: 'user.strikes > int(\"three\")'\n    verdict: block\n",
			want: wantProblem{11, "rule", "r", "if", `int("three") fails on every event`},
		},
		{
			name: "JSON that does not parse",
			src:  "  - name: r\n    on: message\n    if: 'len(fromJSON(\"{\")) > 0'\n    verdict: block\n",
			want: wantProblem{11, "rule", "r", "if", `fromJSON("{") fails on every event`},
		},
		{
			name: "a counter key with base64 that does not decode",
			src:  "version: 1\ncounters:\n  - name: c\n    on: [message]\n    key: 'group.id + fromBase64(\"%%\")'\n    window: 10s\nrules: []\n",
			want: wantProblem{3, "counter", "c", "key", `fromBase64("%%") fails on every event`},
		},
		// Replies and rewrites.
		{
			name: "a reply code under the custom range",
			src:  "  - name: r\n    on: message\n    if: \"true\"\n    verdict: block\n    reply: {code: 10099}\n",
			want: wantProblem{11, "rule", "r", "reply.code", "10099 must be 1 or from 10100 to 10200"},
		},
		{
			name: "a reply code above the custom range",
			src:  "  - name: r\n    on: message\n    if: \"true\"\n    verdict: block\n    reply: {code: 10201, text: x}\n",
			want: wantProblem{11, "rule", "r", "reply.code", "10201 must be 1 or from 10100 to 10200"},
		},
		{
			name: "a reply code of zero",
			src:  "  - name: r\n    on: join_request\n    if: \"true\"\n    verdict: reject\n    reply: {text: x}\n",
			want: wantProblem{11, "rule", "r", "reply.code", "0 must be 1 or from 10100 to 10200"},
		},
		{
			name: "a reply text with code 1",
			src:  "  - name: r\n    on: message\n    if: \"true\"\n    verdict: block\n    reply: {code: 1, text: nobody sees this}\n",
			want: wantProblem{11, "rule", "r", "reply.text", "is only shown with a code from 10100 to 10200; with code 1 the user sees 10016"},
		},
		{
			name: "a reply on drop",
			src:  "  - name: r\n    on: message\n    if: \"true\"\n    verdict: drop\n    reply: {code: 10101, text: x}\n",
			want: wantProblem{11, "rule", "r", "reply", "only a reject, refuse or block verdict sends a reply"},
		},
		{
			name: "a reply on allow",
			src:  "  - name: r\n    on: message\n    if: \"true\"\n    verdict: allow\n    reply: {code: 10101}\n",
			want: wantProblem{11, "rule", "r", "reply", "only a reject, refuse or block verdict sends a reply"},
		},
		{
			name: "a reply without a verdict",
			src:  "  - name: r\n    on: message\n    if: \"true\"\n    actions: [strike]\n    reply: {code: 10101}\n",
			want: wantProblem{11, "rule", "r", "reply", "only a reject, refuse or block verdict sends a reply"},
		},
		{
			name: "a rewrite verdict without a rewrite",
			src:  "  - name: r\n    on: message\n    if: \"true\"\n    verdict: rewrite\n",
			want: wantProblem{11, "rule", "r", "rewrite", "verdict rewrite needs rewrite: {text: EXPR} or rewrite: {mask: EXPR}"},
		},
		{
			name: "a rewrite without the rewrite verdict",
			src:  "  - name: r\n    on: message\n    if: \"true\"\n    verdict: block\n    rewrite: {mask: lists.words}\n",
			want: wantProblem{11, "rule", "r", "rewrite", "is only used with verdict: rewrite"},
		},
		{
			name: "a rewrite with both text and mask",
			src:  "  - name: r\n    on: message\n    if: \"true\"\n    verdict: rewrite\n    rewrite: {text: '\"x\"', mask: lists.words}\n",
			want: wantProblem{11, "rule", "r", "rewrite", "give exactly one of text: EXPR and mask: EXPR"},
		},
		{
			name: "a rewrite with neither text nor mask",
			src:  "  - name: r\n    on: message\n    if: \"true\"\n    verdict: rewrite\n    rewrite: {with: \"#\"}\n",
			want: wantProblem{11, "rule", "r", "rewrite", "give exactly one of text: EXPR and mask: EXPR"},
		},
		{
			name: "a rewrite text that is not a string",
			src:  "  - name: r\n    on: message\n    if: \"true\"\n    verdict: rewrite\n    rewrite: {text: user.strikes}\n",
			want: wantProblem{11, "rule", "r", "rewrite.text", "expected string, but got int"},
		},
		{
			name: "a rewrite mask that is not a list",
			src:  "  - name: r\n    on: message\n    if: \"true\"\n    verdict: rewrite\n    rewrite: {mask: message.text}\n",
			want: wantProblem{11, "rule", "r", "rewrite.mask", `"message.text" gives string, not a list of words`},
		},
		{
			name: "a rewrite mask reading an undeclared list",
			src:  "  - name: r\n    on: message\n    if: \"true\"\n    verdict: rewrite\n    rewrite: {mask: lists.slurs}\n",
			want: wantProblem{11, "rule", "r", "rewrite.mask", "lists.slurs is not declared"},
		},
		{
			name: "a long mask string",
			src:  "  - name: r\n    on: message\n    if: \"true\"\n    verdict: rewrite\n    rewrite: {mask: lists.words, with: \"[censored]\"}\n",
			want: wantProblem{11, "rule", "r", "rewrite.with", `"[censored]" is too long; use one character such as *`},
		},
		// Budgets, exemptions, modes.
		{
			name: "a budget of zero actions",
			src:  "  - name: r\n    on: message\n    if: \"true\"\n    actions: [strike]\n    budget: {actions: 0, per: 1m}\n",
			want: wantProblem{11, "rule", "r", "budget.actions", "0 must be at least 1"},
		},
		{
			name: "a budget period under a second",
			src:  "  - name: r\n    on: message\n    if: \"true\"\n    actions: [strike]\n    budget: {actions: 1, per: 500ms}\n",
			want: wantProblem{11, "rule", "r", "budget.per", `"500ms" must be a duration from 1s to 168h`},
		},
		{
			name: "a budget period over a week",
			src:  "  - name: r\n    on: message\n    if: \"true\"\n    actions: [strike]\n    budget: {actions: 1, per: 8d}\n",
			want: wantProblem{11, "rule", "r", "budget.per", `"8d" must be a duration from 1s to 168h`},
		},
		{
			name: "a budget without a period",
			src:  "  - name: r\n    on: message\n    if: \"true\"\n    actions: [strike]\n    budget: {actions: 1}\n",
			want: wantProblem{11, "rule", "r", "budget.per", `"" must be a duration`},
		},
		{
			name: "an exemption for an unknown role",
			src:  "  - name: r\n    on: message\n    if: \"true\"\n    verdict: block\n    exempt: [owner, moderator]\n",
			want: wantProblem{11, "rule", "r", "exempt", `"moderator" is not a role (owner, admin, app_admin), none or default`},
		},
		{
			name: "an exemption for members",
			src:  "  - name: r\n    on: message\n    if: \"true\"\n    verdict: block\n    exempt: member\n",
			want: wantProblem{11, "rule", "r", "exempt", `"member" is not a role`},
		},
		{
			name: "an exemption that is a mapping",
			src:  "  - name: r\n    on: message\n    if: \"true\"\n    verdict: block\n    exempt: {owner: true}\n",
			want: wantProblem{15, "rule", "r", "", "exempt: want none, default or a list of roles"},
		},
		{
			name: "a mode no schedule switches on",
			src:  "  - name: r\n    on: message\n    mode: night\n    if: \"true\"\n    verdict: block\n",
			want: wantProblem{11, "rule", "r", "mode", `"night" is never switched on by a schedule (schedules: ... mode: {name: night, for: 8h})`},
		},
		// Counters.
		{
			name: "a duplicate counter name points at the first",
			src:  "version: 1\ncounters:\n  - {name: c, on: message, key: user.id, window: 1m}\n  - {name: c, on: message, key: group.id, window: 1m}\n",
			want: wantProblem{4, "counter", "c", "name", "is also used by the counter on line 3"},
		},
		{
			name: "a counter key reading a counter",
			src:  "version: 1\ncounters:\n  - {name: a, on: message, key: user.id, window: 1m}\n  - {name: b, on: message, key: 'string(counters.a)', window: 1m}\n",
			want: wantProblem{4, "counter", "b", "key", "cannot read counters.a: counters are keyed before the store is read"},
		},
		{
			name: "a counter key reading the strikes",
			src:  "version: 1\ncounters:\n  - {name: c, on: message, key: 'user.id + string(user.strikes)', window: 1m}\n",
			want: wantProblem{3, "counter", "c", "key", "cannot read user.strikes: counters are keyed before the store is read"},
		},
		{
			name: "a counter key reading the role",
			src:  "version: 1\ncounters:\n  - {name: c, on: message, key: user.role, window: 1m}\n",
			want: wantProblem{3, "counter", "c", "key", "cannot read user.role"},
		},
		{
			name: "a counter condition reading the strikes",
			src:  "version: 1\ncounters:\n  - {name: c, on: message, key: user.id, if: user.strikes > 0, window: 1m}\n",
			want: wantProblem{3, "counter", "c", "if", "cannot read user.strikes: counters are touched before the store is read"},
		},
		{
			name: "a counter condition that is not boolean",
			src:  "version: 1\ncounters:\n  - {name: c, on: message, key: user.id, if: user.id, window: 1m}\n",
			want: wantProblem{3, "counter", "c", "if", "expected bool, but got string"},
		},
		{
			name: "a counter key that is not a string",
			src:  "version: 1\ncounters:\n  - {name: c, on: message, key: len(message.urls), window: 1m}\n",
			want: wantProblem{3, "counter", "c", "key", "expected string, but got int"},
		},
		{
			name: "a counter without a key",
			src:  "version: 1\ncounters:\n  - {name: c, on: message, window: 1m}\n",
			want: wantProblem{3, "counter", "c", "key", `is required, e.g. group.id + "/" + user.id`},
		},
		{
			name: "a counter window under a second",
			src:  "version: 1\ncounters:\n  - {name: c, on: message, key: user.id, window: 500ms}\n",
			want: wantProblem{3, "counter", "c", "window", `"500ms" must be a duration from 1s to 168h`},
		},
		{
			name: "a counter window over a week",
			src:  "version: 1\ncounters:\n  - {name: c, on: message, key: user.id, window: 169h}\n",
			want: wantProblem{3, "counter", "c", "window", `"169h" must be a duration from 1s to 168h`},
		},
		{
			name: "a counter without a window",
			src:  "version: 1\ncounters:\n  - {name: c, on: message, key: user.id}\n",
			want: wantProblem{3, "counter", "c", "window", `"" must be a duration from 1s to 168h`},
		},
		{
			name: "a counter on an unknown kind",
			src:  "version: 1\ncounters:\n  - {name: c, on: [message, joins], key: user.id, window: 1m}\n",
			want: wantProblem{3, "counter", "c", "on", `"joins" is not an event kind`},
		},
		{
			name: "a counter name with a slash",
			src:  "version: 1\ncounters:\n  - {name: a/b, on: message, key: user.id, window: 1m}\n",
			want: wantProblem{3, "counter", "a/b", "name", `"a/b" must be letters, digits, _ . and -`},
		},
		// Schedules.
		{
			name: "a cron expression out of range",
			src:  "version: 1\nschedules:\n  - {name: s, cron: \"61 * * * *\", timezone: UTC, groups: [g], actions: [unmute_group]}\n",
			want: wantProblem{3, "schedule", "s", "cron", `"61 * * * *" is not a cron expression (minute hour day-of-month month day-of-week)`},
		},
		{
			name: "a cron expression with six fields",
			src:  "version: 1\nschedules:\n  - {name: s, cron: \"0 0 23 * * *\", timezone: UTC, groups: [g], actions: [unmute_group]}\n",
			want: wantProblem{3, "schedule", "s", "cron", "is not a cron expression"},
		},
		{
			name: "a missing cron expression",
			src:  "version: 1\nschedules:\n  - {name: s, timezone: UTC, groups: [g], actions: [unmute_group]}\n",
			want: wantProblem{3, "schedule", "s", "cron", `is required, e.g. "0 23 * * *"`},
		},
		{
			name: "a CRON_TZ prefix",
			src:  "version: 1\nschedules:\n  - {name: s, cron: \"CRON_TZ=Asia/Shanghai 0 23 * * *\", timezone: UTC, groups: [g], actions: [unmute_group]}\n",
			want: wantProblem{3, "schedule", "s", "cron", "give the timezone in timezone:, not in the cron expression"},
		},
		{
			name: "a TZ prefix",
			src:  "version: 1\nschedules:\n  - {name: s, cron: \"TZ=UTC 0 23 * * *\", timezone: UTC, groups: [g], actions: [unmute_group]}\n",
			want: wantProblem{3, "schedule", "s", "cron", "give the timezone in timezone:"},
		},
		{
			name: "an unknown timezone",
			src:  "version: 1\nschedules:\n  - {name: s, cron: \"0 23 * * *\", timezone: Mars/Olympus, groups: [g], actions: [unmute_group]}\n",
			want: wantProblem{3, "schedule", "s", "timezone", `"Mars/Olympus" is not an IANA timezone such as Asia/Shanghai or Europe/Berlin`},
		},
		{
			name: "the machine's local timezone",
			src:  "version: 1\nschedules:\n  - {name: s, cron: \"0 23 * * *\", timezone: Local, groups: [g], actions: [unmute_group]}\n",
			want: wantProblem{3, "schedule", "s", "timezone", `"Local" depends on the machine; name the zone, e.g. Asia/Shanghai`},
		},
		{
			name: "a missing timezone",
			src:  "version: 1\nschedules:\n  - {name: s, cron: \"0 23 * * *\", groups: [g], actions: [unmute_group]}\n",
			want: wantProblem{3, "schedule", "s", "timezone", "is required: an IANA name such as Asia/Shanghai or UTC"},
		},
		{
			name: "schedule actions without groups",
			src:  "version: 1\nschedules:\n  - {name: s, cron: \"0 23 * * *\", timezone: UTC, actions: [{mute_group: 8h}]}\n",
			want: wantProblem{3, "schedule", "s", "groups", "actions need the groups they apply to"},
		},
		{
			name: "a user action in a schedule",
			src:  "version: 1\nschedules:\n  - name: s\n    cron: \"0 23 * * *\"\n    timezone: UTC\n    groups: [g]\n    actions: [{kick: bye}]\n",
			want: wantProblem{7, "schedule", "s", "actions[0]", "kick needs a user; schedules act on whole groups (mute_group, unmute_group, warn)"},
		},
		{
			name: "admit in a schedule",
			src:  "version: 1\nschedules:\n  - name: s\n    cron: \"0 23 * * *\"\n    timezone: UTC\n    groups: [g]\n    actions: [admit]\n",
			want: wantProblem{7, "schedule", "s", "actions[0]", "admit needs a user"},
		},
		{
			name: "an expression duration in a schedule",
			src:  "version: 1\nschedules:\n  - name: s\n    cron: \"0 23 * * *\"\n    timezone: UTC\n    groups: [g]\n    actions: [{mute_group: 'duration(\"1h\")'}]\n",
			want: wantProblem{7, "schedule", "s", "actions[0]", `mute_group: "duration(\"1h\")" is not a duration such as 10m or permanent`},
		},
		{
			name: "a schedule that does nothing",
			src:  "version: 1\nschedules:\n  - {name: s, cron: \"0 23 * * *\", timezone: UTC}\n",
			want: wantProblem{3, "schedule", "s", "", "does nothing: give it actions or a mode"},
		},
		{
			name: "a mode switched on for under a minute",
			src:  "version: 1\nschedules:\n  - {name: s, cron: \"0 23 * * *\", timezone: UTC, mode: {name: night, for: 30s}}\n",
			want: wantProblem{3, "schedule", "s", "mode.for", `"30s" must be a duration of at least 1m`},
		},
		{
			name: "a mode without a name",
			src:  "version: 1\nschedules:\n  - {name: s, cron: \"0 23 * * *\", timezone: UTC, mode: {for: 8h}}\n",
			want: wantProblem{3, "schedule", "s", "mode.name", `"" must be letters, digits, _ . and -`},
		},
		// Tests kept beside rules.
		{
			name: "a test with an unknown role",
			src:  "  - name: r\n    on: message\n    if: \"true\"\n    verdict: block\n    tests:\n      - name: t\n        state: {role: king}\n",
			want: wantProblem{16, "rule", "r", `tests[0] "t"`, `state.role: "king" is not owner, admin, member or app_admin`},
		},
		{
			name: "a test with an undeclared counter",
			src:  "  - name: r\n    on: message\n    if: \"true\"\n    verdict: block\n    tests:\n      - state: {counters: {ghost: 1}}\n",
			want: wantProblem{16, "rule", "r", "tests[0]", "state.counters.ghost is not a declared counter"},
		},
		{
			name: "a test expecting an unknown rule",
			src:  "  - name: r\n    on: message\n    if: \"true\"\n    verdict: block\n    tests:\n      - expect: {rules: [r, ghost]}\n",
			want: wantProblem{16, "rule", "r", "tests[0]", `expect: "ghost" is not a rule in this file`},
		},
		{
			name: "a test expecting an unknown shadow rule",
			src:  "  - name: r\n    on: message\n    if: \"true\"\n    verdict: block\n    tests:\n      - expect: {shadow: [ghost]}\n",
			want: wantProblem{16, "rule", "r", "tests[0]", `expect: "ghost" is not a rule in this file`},
		},
		{
			name: "a test expecting a verdict of another kind",
			src:  "  - name: r\n    on: message\n    if: \"true\"\n    verdict: block\n    tests:\n      - expect: {verdict: approve}\n",
			want: wantProblem{16, "rule", "r", "tests[0]", `expect.verdict: "approve" is not a verdict for message`},
		},
		{
			name: "a test expecting an expression duration",
			src:  "  - name: r\n    on: message\n    if: \"true\"\n    actions: [{mute: 1m}]\n    tests:\n      - expect: {actions: [{mute: 'duration(\"1m\")'}]}\n",
			want: wantProblem{16, "rule", "r", "tests[0] expect.actions[0]", "is not a duration such as 10m or permanent"},
		},
		{
			name: "a test with a time that is not RFC 3339",
			src:  "  - name: r\n    on: message\n    if: \"true\"\n    verdict: block\n    tests:\n      - state: {now: \"23:00\"}\n",
			want: wantProblem{16, "rule", "r", "tests[0]", `state.now: "23:00" is not an RFC 3339 time`},
		},
		{
			name: "a test event with a command rules do not evaluate",
			src:  "  - name: r\n    on: message\n    if: \"true\"\n    verdict: block\n    tests:\n      - event: {CallbackCommand: Group.CallbackAfterCreateGroup}\n",
			want: wantProblem{16, "rule", "r", "tests[0]", `event: CallbackCommand "Group.CallbackAfterCreateGroup" is not one rules evaluate`},
		},
		{
			name: "a test event with a user on group_destroyed",
			src:  "  - name: r\n    on: group_destroyed\n    if: \"true\"\n    actions: [unmute_group]\n    tests:\n      - event: {user: alice}\n",
			want: wantProblem{16, "rule", "r", "tests[0]", "event: user: group_destroyed events have no user"},
		},
		{
			name: "a test with an unknown key",
			src:  "  - name: r\n    on: message\n    if: \"true\"\n    verdict: block\n    tests:\n      - expect: {verdit: block}\n",
			want: wantProblem{16, "rule", "r", "rules[0].tests[0].expect.verdit", `unknown key (did you mean "verdict"?)`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := tt.src
			if !strings.HasPrefix(src, "version") {
				src = header + src
			}
			re, got := parseError(t, "rules.yaml", src)
			found := false
			for _, p := range got {
				if tt.want.matches(p) {
					found = true
				}
			}
			if !found {
				t.Fatalf("no problem like %+v in:\n%v", tt.want, re)
			}
			if tt.want.Line > 0 && !printed(re, "rules.yaml", tt.want) {
				t.Errorf("no message line starts with %q and holds the reason:\n%v", messageLine("rules.yaml", tt.want), re)
			}
		})
	}
}

func TestParseAcceptsLiteralArgumentsThatParse(t *testing.T) {
	for _, cond := range []string{
		`duration("5m") > duration("1s")`,
		`date("2024-01-01") < now`,
		`now.In(timezone("Asia/Shanghai")).Hour() > 22`,
		`int("12") > 1 && float("1.5") > 1`,
		`len(fromJSON("{}")) == 0`,
		`fromBase64("aGk=") == "hi"`,
		`duration(message.text) > duration("1s")`,
		`int(message.text) > 1`,
	} {
		src := header + "  - name: r\n    on: message\n    if: '" + cond + "'\n    verdict: block\n"
		if _, err := Parse("rules.yaml", []byte(src)); err != nil {
			t.Errorf("if: %s was refused: %v", cond, err)
		}
	}
}

// TestParseReportsEveryProblemOfOneFile checks that one file with many
// problems reports all of them, each with its file, line, rule and reason,
// and nothing else.
func TestParseReportsEveryProblemOfOneFile(t *testing.T) {
	const file = "testdata/many-problems.yaml"
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	re, got := parseError(t, file, string(data))
	want := []wantProblem{
		{0, "", "", "version", "must be 1 (got 2)"},
		{0, "", "", "strikes.decay", `"30s" must be a duration of at least 1m`},
		{6, "", "", "list", `unknown key (did you mean "lists"?)`},
		{15, "counter", "user_msgs", "name", "is also used by the counter on line 11"},
		{15, "counter", "user_msgs", "window", `"500ms" must be a duration from 1s to 168h`},
		{19, "counter", "by_role", "key", "cannot read user.role"},
		{24, "rule", "unknown-field", "if", "user.foo is not a field"},
		{28, "rule", "unknown-counter-and-list", "if", "counters.nope is not declared"},
		{28, "rule", "unknown-counter-and-list", "if", "lists.nope is not declared"},
		{32, "rule", "bare-namespace", "if", "user is not a value on its own"},
		{36, "rule", "not-boolean", "if", "expected bool, but got string"},
		{40, "rule", "wrong-verdict", "verdict", `"block" is not a verdict for join_request`},
		{44, "rule", "after-kind-verdict", "verdict", "member_joined events take no verdict"},
		{48, "rule", "unknown-field", "name", "duplicate rule name (first used on line 24)"},
		{53, "rule", "shape-on", "", "on: want an event kind or a list of them"},
		{56, "rule", "typo-key", "", "does nothing"},
		{59, "rule", "typo-key", "rules[8].verdcit", `unknown key (did you mean "verdict"?)`},
		{60, "rule", "bad-on", "on", `"messages" is not an event kind`},
		{67, "rule", "bad-action", "actions[0]", `"mutee" is not an action`},
		{71, "rule", "admit-on-message", "actions[0]", "admit only applies to join_request events"},
		{72, "rule", "reply-on-drop", "reply", "only a reject, refuse or block verdict sends a reply"},
		{77, "rule", "reply-code", "reply.code", "20000 must be 1 or from 10100 to 10200"},
		{82, "rule", "rewrite-without-spec", "rewrite", "verdict rewrite needs rewrite"},
		{86, "rule", "budget-and-exempt", "exempt", `"moderator" is not a role`},
		{86, "rule", "budget-and-exempt", "budget.actions", "0 must be at least 1"},
		{92, "rule", "modeless", "mode", `"night" is never switched on by a schedule`},
		{97, "rule", "comment-cut", "if", `YAML read "#})" as a comment`},
		{106, "rule", "kept-tests", `tests[0] "bad role"`, `state.role: "king" is not owner, admin, member or app_admin`},
		{108, "rule", "kept-tests", `tests[1] "unknown counter"`, "state.counters.ghost is not a declared counter"},
		{110, "rule", "kept-tests", `tests[2] "unknown rule"`, `expect: "ghost-rule" is not a rule in this file`},
		{113, "schedule", "bad-cron", "cron", `"61 * * * *" is not a cron expression`},
		{113, "schedule", "bad-cron", "timezone", `"Local" depends on the machine`},
		{117, "schedule", "user-actions", "timezone", `"Mars/Olympus" is not an IANA timezone`},
		{117, "schedule", "user-actions", "groups", "actions need the groups they apply to"},
		{120, "schedule", "user-actions", "actions[0]", "mute needs a user; schedules act on whole groups"},
	}
	for _, w := range want {
		found := false
		for _, p := range got {
			if w.matches(p) {
				found = true
			}
		}
		if !found {
			t.Errorf("missing problem %+v", w)
		}
		if w.Line > 0 && !printed(re, file, w) {
			t.Errorf("no message line starts with %q and holds %q", messageLine(file, w), w.Reason)
		}
	}
	if len(got) != len(want) {
		t.Errorf("got %d problems, want %d:\n%v", len(got), len(want), re)
	}
	for i := 1; i < len(got); i++ {
		if got[i-1].Line > got[i].Line {
			t.Errorf("problems are not in line order: %d before %d", got[i-1].Line, got[i].Line)
		}
	}
	for _, line := range strings.Split(re.Error(), "\n") {
		if !strings.HasPrefix(line, file+":") {
			t.Errorf("a message line does not start with the file: %q", line)
		}
	}
}

// TestParseKeepsValidatingAfterAShapeError checks that a value of the wrong
// shape (a mapping where a kind, an expression or an exemption belongs) is
// reported with its line and rule, and that the rules after it are still
// checked.
func TestParseKeepsValidatingAfterAShapeError(t *testing.T) {
	const file = "testdata/shape-errors.yaml"
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	re, got := parseError(t, file, string(data))
	want := []wantProblem{
		{12, "rule", "first", "", "on: want an event kind or a list of them"},
		{17, "rule", "second", "", "want an expression (a string)"},
		{23, "rule", "third", "", "exempt: want none, default or a list of roles"},
		{28, "rule", "fourth", "", "cannot unmarshal !!str `maybe` into bool"},
		{29, "rule", "fifth", "if", "user.nope is not a field"},
	}
	for _, w := range want {
		found := false
		for _, p := range got {
			if w.matches(p) {
				found = true
			}
		}
		if !found {
			t.Errorf("missing problem %+v", w)
		}
	}
	if len(got) != len(want) {
		t.Errorf("got %d problems, want %d:\n%v", len(got), len(want), re)
	}
}

func TestParseRefusesFilesThatAreNotRuleFiles(t *testing.T) {
	tests := []struct {
		name, src, want string
	}{
		{"an empty file", "", "the file is empty"},
		{"a file of comments", "# nothing yet\n", "the file is empty"},
		{"a YAML syntax error", "version: 1\nrules: [\n", "did not find expected node content"},
		{"a list at the top", "- a\n- b\n", "cannot unmarshal !!seq into rules.fileSpec"},
		{"rules that are a mapping", "version: 1\nrules: {a: b}\n", "cannot unmarshal !!map into []rules.ruleSpec"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			re, _ := parseError(t, "rules.yaml", tt.src)
			if !strings.Contains(re.Error(), tt.want) {
				t.Errorf("message %q lacks %q", re.Error(), tt.want)
			}
		})
	}
}

func TestLoadNamesAFileItCannotRead(t *testing.T) {
	_, err := Load("testdata/does-not-exist.yaml")
	var re *Error
	if !errors.As(err, &re) || !strings.HasPrefix(err.Error(), "testdata/does-not-exist.yaml: ") {
		t.Errorf("Load = %v, want a *rules.Error naming the file", err)
	}
}

func TestProblemsPrintWithFileLineRuleFieldAndReason(t *testing.T) {
	err := &Error{File: "r.yaml", Problems: []Problem{
		{Line: 12, Section: "rule", Name: "flood", Field: "if", Reason: "bad"},
		{Line: 3, Section: "counter", Field: "name", Reason: "unnamed"},
		{Section: "list", Name: "x", Reason: "odd"},
		{Field: "version", Reason: "must be 1 (got 2)"},
		{Line: 7, Reason: "plain"},
	}}
	want := strings.Join([]string{
		`r.yaml:12: rule "flood": if: bad`,
		`r.yaml:3: counter: name: unnamed`,
		`r.yaml: list "x": odd`,
		`r.yaml: version: must be 1 (got 2)`,
		`r.yaml:7: plain`,
	}, "\n")
	if got := err.Error(); got != want {
		t.Errorf("Error() =\n%s\nwant\n%s", got, want)
	}
}
