package main

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestCheckAcceptsTheExamplesAndRunsTheirTests(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run([]string{"check", "--config", "../../config.example.yaml"}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d\n%s%s", code, stdout.String(), stderr.String())
	}
	if !strings.Contains(stdout.String(), "rule tests passed") {
		t.Errorf("output %q does not report the rule tests", stdout.String())
	}
}

func TestCheckReportsEveryProblemOfABrokenRuleFileAtOnce(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "rules.yaml")
	write(t, path, `version: 1
lists: {a: [x]}
rules:
  - {name: dup, on: message, if: 'user.nope == "x"', verdict: block}
  - {name: dup, on: message, if: 'true', verdict: drop}
  - {name: not-bool, on: message, if: 'user.id', verdict: block}
  - {name: wrong-verdict, on: message, if: 'true', verdict: approve}
`)
	var stdout, stderr bytes.Buffer
	if code := run([]string{"check", "--rules", path}, &stdout, &stderr); code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	out := stderr.String()
	for _, want := range []string{
		`rules.yaml:4: rule "dup": if: user.nope is not a field`,
		`rules.yaml:5: rule "dup": name: duplicate rule name`,
		`rules.yaml:6: rule "not-bool": if: expected bool, but got string`,
		`rules.yaml:7: rule "wrong-verdict": verdict: "approve" is not a verdict for message`,
		"4 problem(s)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func TestCheckRefusesPlaceholdersARuleCannotFill(t *testing.T) {
	path := filepath.Join(t.TempDir(), "rules.yaml")
	write(t, path, `version: 1
lists: {spam: [crypto]}
rules:
  - {name: greet, on: message, if: 'true', actions: [{warn: "Hello {nick}"}]}
  - {name: until, on: message, if: 'true', actions: [{warn: "muted until {until}"}]}
  - {name: words, on: message, if: 'true', verdict: block, reply: {code: 10101, text: "no {words}"}}
  - {name: brace, on: message, if: 'contains_any(message.text, lists.spam)', verdict: block, reply: {code: 10101, text: "{words} :}"}}
`)
	var stdout, stderr bytes.Buffer
	if code := run([]string{"check", "--rules", path}, &stdout, &stderr); code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	for _, want := range []string{
		`rules.yaml:4: rule "greet": actions[0]: warn: {nick} is not a placeholder`,
		`rules.yaml:5: rule "until": actions[0]: {until} needs a mute, ban or mute_group action`,
		`rules.yaml:6: rule "words": reply.text: {words} needs a list`,
		`rules.yaml:7: rule "brace": reply.text: a } at byte 9 closes nothing; write }} for a brace`,
		"4 problem(s)",
	} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, stderr.String())
		}
	}
}

func TestCheckReportsTheRuleFileEvenWhenTheConfigIsBroken(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "config.yaml"), "listen: nope\ntencent: {sdk_app_id: 1}\nrules_file: r.yaml\n")
	write(t, filepath.Join(dir, "r.yaml"), "version: 1\nrules: [{name: a, on: message, if: user.x, verdict: block}]\n")
	var stdout, stderr bytes.Buffer
	if code := run([]string{"check", "--config", filepath.Join(dir, "config.yaml")}, &stdout, &stderr); code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	for _, want := range []string{`listen: "nope" is not host:port`, `r.yaml:2: rule "a": if: user.x is not a field`} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, stderr.String())
		}
	}
}

func TestSimulatePrintsTheDecisionWithMatchedRules(t *testing.T) {
	var stdout, stderr bytes.Buffer
	code := run([]string{"simulate", "--config", "../../config.example.yaml", "--event", "../../tim/testdata/callbacks/BeforeSendMsg.json"}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	var out struct {
		Reply struct {
			ErrorCode int
			ErrorInfo string
		}
		Decisions []struct {
			Verdict string   `json:"verdict"`
			Rules   []string `json:"rules"`
			Trace   []struct {
				Rule    string `json:"rule"`
				Matched bool   `json:"matched"`
			} `json:"trace"`
		} `json:"decisions"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &out); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, stdout.String())
	}
	if len(out.Decisions) != 1 || out.Decisions[0].Verdict != "block" || out.Reply.ErrorCode != 10101 {
		t.Fatalf("decision %+v, want the spam block", out)
	}
	// jared is a stranger to the store simulate assumes: his link is a
	// newcomer's too.
	if rs := out.Decisions[0].Rules; !slices.Equal(rs, []string{"spam-words", "newcomer-links"}) {
		t.Errorf("matched rules %v, want [spam-words newcomer-links]", rs)
	}
	if want := "Blocked words are not allowed here: free crypto, t.me/."; out.Reply.ErrorInfo != want {
		t.Errorf("reply text %q, want %q with {words} filled", out.Reply.ErrorInfo, want)
	}
	if len(out.Decisions[0].Trace) < 5 {
		t.Errorf("trace has %d steps; simulate shows every rule evaluated", len(out.Decisions[0].Trace))
	}
}

func TestSimulateTakesTheTrustSignalsFromTheState(t *testing.T) {
	state := filepath.Join(t.TempDir(), "state.yaml")
	for _, c := range []struct {
		state string
		want  []string
	}{
		{"{}", []string{"spam-words", "newcomer-links"}},
		{"{messages: 40, seen_for: 30d}", []string{"spam-words"}},
	} {
		write(t, state, c.state+"\n")
		var stdout, stderr bytes.Buffer
		code := run([]string{"simulate", "--config", "../../config.example.yaml", "--event", "../../tim/testdata/callbacks/BeforeSendMsg.json", "--state", state}, &stdout, &stderr)
		if code != 0 {
			t.Fatalf("state %s: exit %d: %s", c.state, code, stderr.String())
		}
		var out struct {
			Decisions []struct {
				Rules []string `json:"rules"`
			} `json:"decisions"`
		}
		if err := json.Unmarshal(stdout.Bytes(), &out); err != nil || len(out.Decisions) != 1 {
			t.Fatalf("state %s: output %s (%v)", c.state, stdout.String(), err)
		}
		if !slices.Equal(out.Decisions[0].Rules, c.want) {
			t.Errorf("state %s: matched %v, want %v", c.state, out.Decisions[0].Rules, c.want)
		}
	}
}

func TestReplayShowsWhatARuleChangeWouldDo(t *testing.T) {
	dir := t.TempDir()
	oldRules := filepath.Join(dir, "old.yaml")
	newRules := filepath.Join(dir, "new.yaml")
	events := filepath.Join(dir, "events.jsonl")
	write(t, oldRules, "version: 1\nlists: {spam: [crypto]}\nrules: [{name: spam, on: message, if: 'contains_any(message.text, lists.spam)', verdict: block}]\n")
	write(t, newRules, "version: 1\nlists: {spam: [crypto, casino]}\nrules: [{name: spam, on: message, if: 'contains_any(message.text, lists.spam)', verdict: block, actions: [{strike: 1}]}]\n")
	msg := func(user, text string) string {
		return `{"CallbackCommand":"Group.CallbackBeforeSendMsg","GroupId":"@TGS#1","Type":"Public","From_Account":"` + user +
			`","MsgBody":[{"MsgType":"TIMTextElem","MsgContent":{"Text":"` + text + `"}}]}`
	}
	write(t, events, strings.Join([]string{msg("ann", "hello"), msg("bob", "best casino"), "not json", msg("cid", "free crypto"), ""}, "\n"))
	var stdout, stderr bytes.Buffer
	code := run([]string{"replay", "--old", oldRules, "--rules", newRules, "--events", events, "--fail-on-change"}, &stdout, &stderr)
	if code != 1 {
		t.Fatalf("exit %d, want 1 (outcomes changed)\n%s", code, stderr.String())
	}
	out := stdout.String()
	for _, want := range []string{
		"line 2 message group @TGS#1 user bob: verdict none -> block; reply ok -> 1; rules [] -> [spam]; actions [] -> [strike 1]",
		"line 4 message group @TGS#1 user cid: actions [] -> [strike 1]",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "ann") {
		t.Errorf("an unchanged decision was reported:\n%s", out)
	}
	if !strings.Contains(stderr.String(), "replayed 3 events (3 decisions)") || !strings.Contains(stderr.String(), "2 decisions change, 1 lines skipped") {
		t.Errorf("summary: %s", stderr.String())
	}
}

func TestCheckRefusesYAMLThatMergesItselfWithFileAndLine(t *testing.T) {
	cases := []struct {
		name, config, rules string
		want                string
	}{
		{
			name:   "a rule file whose lists merge themselves",
			config: "tencent: {sdk_app_id: 1}\nrules_file: r.yaml\n",
			rules:  "version: 1\nlists: &i\n  a: [x]\n  <<: *i\nrules: []\n",
			want:   "r.yaml:4: lists.<<: alias *i is inside the node it names",
		},
		{
			name:   "a config file whose callback section merges itself",
			config: "tencent: {sdk_app_id: 1}\ncallback: &c\n  path: /cb\n  <<: *c\nrules_file: r.yaml\n",
			rules:  "version: 1\nrules: []\n",
			want:   "config.yaml: line 4: callback.<<: alias *c is inside the node it names",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			write(t, filepath.Join(dir, "config.yaml"), tc.config)
			write(t, filepath.Join(dir, "r.yaml"), tc.rules)
			var stdout, stderr bytes.Buffer
			if code := run([]string{"check", "--config", filepath.Join(dir, "config.yaml")}, &stdout, &stderr); code != 1 {
				t.Fatalf("exit %d, want 1\n%s", code, stderr.String())
			}
			if !strings.Contains(stderr.String(), tc.want) {
				t.Errorf("output lacks %q:\n%s", tc.want, stderr.String())
			}
		})
	}
}

func TestCheckRefusesALiteralDurationThatNeverParses(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "rules.yaml")
	write(t, path, `version: 1
rules:
  - name: slow-down
    on: message
    if: "true"
    actions: [{mute: 'duration("5 mins")'}]
`)
	var stdout, stderr bytes.Buffer
	if code := run([]string{"check", "--rules", path}, &stdout, &stderr); code != 1 {
		t.Fatalf("exit %d, want 1\n%s%s", code, stdout.String(), stderr.String())
	}
	out := stderr.String()
	for _, want := range []string{`rules.yaml:6: rule "slow-down": actions[0]: mute: `, `duration("5 mins") fails on every event: time: unknown unit`} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}
