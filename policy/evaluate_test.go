package policy

import (
	"encoding/json"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/timguard/timguard/rules"
	"github.com/timguard/timguard/tim"
)

func mustRules(t testing.TB, src string) *rules.Set {
	t.Helper()
	set, err := rules.Parse("test.yaml", []byte(src))
	if err != nil {
		t.Fatalf("rules do not compile:\n%v", err)
	}
	return set
}

func msgEvent(t testing.TB, from, text string) *Event {
	t.Helper()
	return eventFrom(t, tim.CmdBeforeSendMsg, map[string]any{
		"GroupId": "@TGS#g1", "Type": "Public", "From_Account": from, "Random": 1,
		"MsgBody": []any{map[string]any{"MsgType": "TIMTextElem", "MsgContent": map[string]any{"Text": text}}},
	})
}

func eventFrom(t testing.TB, cmd string, body map[string]any) *Event {
	t.Helper()
	body["CallbackCommand"] = cmd
	data, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	cb, err := tim.DecodeCallback(cmd, data)
	if err != nil {
		t.Fatalf("decode %s: %v", cmd, err)
	}
	return NewEvent(cb, data, time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC))
}

func emptyState(set *rules.Set) *State {
	return &State{Counters: make([]int, len(set.Counters)), Strikes: map[string]int{}, Roles: map[string]string{}, Modes: map[string]bool{}}
}

func actionStrings(d Decision) []string {
	var out []string
	for _, a := range d.Actions {
		s := a.Resolved.String()
		if a.Shadow {
			s += " (shadow)"
		}
		out = append(out, s)
	}
	return out
}

func TestVerdictMerging(t *testing.T) {
	tests := []struct {
		name      string
		rules     string
		event     func(t testing.TB) *Event
		wantVerd  rules.Verdict
		wantRules []string
		wantCode  int
	}{
		{
			name: "the strictest of several matching verdicts wins: drop beats block",
			rules: `
  - {name: a, on: message, if: 'true', verdict: block}
  - {name: b, on: message, if: 'true', verdict: drop}
  - {name: c, on: message, if: 'true', verdict: allow}`,
			event:     func(t testing.TB) *Event { return msgEvent(t, "u", "hi") },
			wantVerd:  rules.Drop,
			wantRules: []string{"a", "b", "c"},
			wantCode:  tim.CodeDrop,
		},
		{
			name: "block beats rewrite",
			rules: `
  - {name: a, on: message, if: 'true', verdict: rewrite, rewrite: {text: '"x"'}}
  - {name: b, on: message, if: 'true', verdict: block}`,
			event:     func(t testing.TB) *Event { return msgEvent(t, "u", "hi") },
			wantVerd:  rules.Block,
			wantRules: []string{"a", "b"},
			wantCode:  tim.CodeRefuse,
		},
		{
			name: "reject beats hold and approve for a join request",
			rules: `
  - {name: a, on: join_request, if: 'true', verdict: approve}
  - {name: b, on: join_request, if: 'true', verdict: reject, reply: {code: 10150, text: no}}
  - {name: c, on: join_request, if: 'true', verdict: hold}`,
			event: func(t testing.TB) *Event {
				return eventFrom(t, tim.CmdBeforeApplyJoinGroup, map[string]any{"GroupId": "g", "Type": "Public", "Requestor_Account": "u"})
			},
			wantVerd:  rules.Reject,
			wantRules: []string{"a", "b", "c"},
			wantCode:  10150,
		},
		{
			name: "stop ends evaluation: a trusted user's allow keeps the later block from running",
			rules: `
  - {name: a, on: message, if: 'user.id == "alice"', verdict: allow, stop: true}
  - {name: b, on: message, if: 'true', verdict: block}`,
			event:     func(t testing.TB) *Event { return msgEvent(t, "alice", "hi") },
			wantVerd:  rules.Allow,
			wantRules: []string{"a"},
			wantCode:  0,
		},
		{
			name: "stop only applies when its rule matches",
			rules: `
  - {name: a, on: message, if: 'user.id == "alice"', verdict: allow, stop: true}
  - {name: b, on: message, if: 'true', verdict: block}`,
			event:     func(t testing.TB) *Event { return msgEvent(t, "bob", "hi") },
			wantVerd:  rules.Block,
			wantRules: []string{"b"},
			wantCode:  tim.CodeRefuse,
		},
		{
			name: "no matching rule leaves the verdict to the IM server",
			rules: `
  - {name: a, on: message, if: 'false', verdict: block}`,
			event:     func(t testing.TB) *Event { return msgEvent(t, "bob", "hi") },
			wantVerd:  rules.None,
			wantRules: []string{},
			wantCode:  0,
		},
		{
			name: "an equally strict later rule does not replace the first one's reply",
			rules: `
  - {name: a, on: message, if: 'true', verdict: block, reply: {code: 10101, text: first}}
  - {name: b, on: message, if: 'true', verdict: block, reply: {code: 10102, text: second}}`,
			event:     func(t testing.TB) *Event { return msgEvent(t, "bob", "hi") },
			wantVerd:  rules.Block,
			wantRules: []string{"a", "b"},
			wantCode:  10101,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			set := mustRules(t, "version: 1\nrules:"+tt.rules)
			out := Evaluate(set, tt.event(t), emptyState(set), Options{})
			if len(out.Decisions) != 1 {
				t.Fatalf("want 1 decision, got %d", len(out.Decisions))
			}
			d := out.Decisions[0]
			if d.Verdict != tt.wantVerd {
				t.Errorf("verdict = %q, want %q", d.Verdict, tt.wantVerd)
			}
			if !slices.Equal(d.Rules, tt.wantRules) {
				t.Errorf("rules = %v, want %v", d.Rules, tt.wantRules)
			}
			if out.Reply.ErrorCode != tt.wantCode {
				t.Errorf("reply code = %d, want %d", out.Reply.ErrorCode, tt.wantCode)
			}
		})
	}
}

func TestExemptions(t *testing.T) {
	const src = `version: 1
rules:
  - {name: default, on: message, if: 'true', actions: [{warn: d}]}
  - {name: everyone, on: message, if: 'true', exempt: none, actions: [{warn: e}]}
  - {name: owner-only, on: message, if: 'true', exempt: [owner], actions: [{warn: o}]}
`
	set := mustRules(t, src)
	tests := []struct {
		name     string
		role     string
		appAdmin bool
		want     []string
	}{
		{name: "a member is subject to every rule", role: "member", want: []string{"default", "everyone", "owner-only"}},
		{name: "an admin is exempt by default but not from exempt none or a rule exempting only the owner", role: "admin", want: []string{"everyone", "owner-only"}},
		{name: "the owner is exempt unless the rule says exempt none", role: "owner", want: []string{"everyone"}},
		{name: "the App admin is exempt unless the rule says exempt none", appAdmin: true, want: []string{"everyone"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := emptyState(set)
			opts := Options{}
			if tt.appAdmin {
				opts.AppAdmin = "u1"
			} else {
				st.Roles["u1"] = tt.role
			}
			out := Evaluate(set, msgEvent(t, "u1", "hi"), st, opts)
			if got := out.Decisions[0].Rules; !slices.Equal(got, tt.want) {
				t.Errorf("matched %v, want %v", got, tt.want)
			}
		})
	}
	t.Run("an action of a rule with exempt none may act on admins", func(t *testing.T) {
		st := emptyState(set)
		out := Evaluate(set, msgEvent(t, "u1", "hi"), st, Options{})
		for _, a := range out.Decisions[0].Actions {
			switch a.Rule {
			case "default":
				if len(a.Roles) != 0 {
					t.Errorf("default rule action roles = %v, want none", a.Roles)
				}
			case "everyone":
				if !slices.Equal(a.Roles, []rules.Role{"owner", "admin", "app_admin"}) {
					t.Errorf("exempt none action roles = %v, want [owner admin app_admin]", a.Roles)
				}
			case "owner-only":
				if !slices.Equal(a.Roles, []rules.Role{"admin"}) {
					t.Errorf("exempt [owner] action roles = %v, want [admin]", a.Roles)
				}
			}
		}
	})
}

func TestShadowAndDryRun(t *testing.T) {
	const src = `version: 1
rules:
  - {name: live, on: message, if: 'message.text contains "x"', verdict: block, actions: [{mute: 5m}]}
  - {name: trial, on: message, if: 'message.text contains "y"', verdict: drop, shadow: true, stop: true, actions: [{kick: bye}]}
  - {name: after, on: message, if: 'message.text contains "y"', actions: [{warn: seen}]}
`
	set := mustRules(t, src)
	t.Run("a shadow rule is recorded but changes no verdict, queues nothing and does not stop", func(t *testing.T) {
		out := Evaluate(set, msgEvent(t, "u", "y"), emptyState(set), Options{})
		d := out.Decisions[0]
		if d.Verdict != rules.None || out.Reply.ErrorCode != 0 {
			t.Errorf("verdict %q code %d, want none and 0", d.Verdict, out.Reply.ErrorCode)
		}
		if !slices.Equal(d.ShadowRules, []string{"trial"}) || !slices.Equal(d.Rules, []string{"after"}) {
			t.Errorf("shadow %v rules %v, want [trial] and [after]", d.ShadowRules, d.Rules)
		}
		if got := actionStrings(d); !slices.Equal(got, []string{`kick "bye" (shadow)`, `warn "seen"`}) {
			t.Errorf("actions %v", got)
		}
	})
	t.Run("dry run makes every rule a shadow rule", func(t *testing.T) {
		out := Evaluate(set, msgEvent(t, "u", "x"), emptyState(set), Options{DryRun: true})
		d := out.Decisions[0]
		if d.Verdict != rules.None || out.Reply.ErrorCode != 0 || len(d.Rules) != 0 {
			t.Errorf("dry run changed the outcome: verdict %q code %d rules %v", d.Verdict, out.Reply.ErrorCode, d.Rules)
		}
		if !slices.Equal(d.ShadowRules, []string{"live"}) {
			t.Errorf("shadow = %v, want [live]", d.ShadowRules)
		}
		for _, a := range d.Actions {
			if !a.Shadow {
				t.Errorf("action %v is not shadow under dry run", a)
			}
		}
	})
}

func TestBudgets(t *testing.T) {
	const src = `version: 1
rules:
  - {name: mute-joiners, on: member_joined, if: 'true', actions: [{mute: 1m}], budget: {actions: 2, per: 1m}}
`
	set := mustRules(t, src)
	joined := func(t testing.TB, members ...string) *Event {
		list := make([]any, len(members))
		for i, m := range members {
			list[i] = map[string]any{"Member_Account": m}
		}
		return eventFrom(t, tim.CmdAfterNewMemberJoin, map[string]any{"GroupId": "g", "Type": "Public", "JoinType": "Apply", "NewMemberList": list})
	}
	t.Run("a rule that would exceed its budget acts in shadow mode for the rest", func(t *testing.T) {
		out := Evaluate(set, joined(t, "a", "b", "c", "d"), emptyState(set), Options{})
		var acted, shadowed []string
		for _, d := range out.Decisions {
			if len(d.Rules) == 1 {
				acted = append(acted, d.User)
			}
			if slices.Equal(d.Budget, []string{"mute-joiners"}) && slices.Equal(d.ShadowRules, []string{"mute-joiners"}) {
				shadowed = append(shadowed, d.User)
			}
		}
		if !slices.Equal(acted, []string{"a", "b"}) || !slices.Equal(shadowed, []string{"c", "d"}) {
			t.Errorf("acted on %v, shadowed %v; want [a b] and [c d]", acted, shadowed)
		}
	})
	t.Run("actions already taken in the window count against the budget", func(t *testing.T) {
		st := emptyState(set)
		st.Budgets = map[string]int{"mute-joiners": 2}
		out := Evaluate(set, joined(t, "a"), st, Options{})
		if d := out.Decisions[0]; len(d.Rules) != 0 || !slices.Equal(d.Budget, []string{"mute-joiners"}) {
			t.Errorf("rules %v budget %v; want no live match and the budget exceeded", d.Rules, d.Budget)
		}
	})
}

func TestStrikesAndEscalation(t *testing.T) {
	const src = `version: 1
rules:
  - {name: spam, on: message, if: 'message.text contains "spam"', verdict: block, actions: [{strike: 1}]}
  - {name: escalate, on: message, if: 'user.strikes > 0 && message.text contains "spam"', actions: [{mute: 'duration("10m") * user.strikes'}]}
  - {name: third, on: message, if: 'user.strikes >= 3', verdict: block, actions: [{kick: "Repeated violations"}]}
`
	set := mustRules(t, src)
	tests := []struct {
		name    string
		strikes int
		text    string
		want    []string
	}{
		{name: "a first offence strikes and mutes for 10 minutes", strikes: 0, text: "spam", want: []string{"strike 1", "mute 10m0s"}},
		{name: "a second offence mutes for 20 minutes", strikes: 1, text: "spam", want: []string{"strike 1", "mute 20m0s"}},
		{name: "the third strike removes the user and drops the pointless mute", strikes: 2, text: "spam", want: []string{"strike 1", `kick "Repeated violations"`}},
		{name: "without an offence strikes alone below three do nothing", strikes: 2, text: "hello", want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := emptyState(set)
			st.Strikes["u"] = tt.strikes
			out := Evaluate(set, msgEvent(t, "u", tt.text), st, Options{})
			if got := actionStrings(out.Decisions[0]); !slices.Equal(got, tt.want) {
				t.Errorf("actions %v, want %v", got, tt.want)
			}
		})
	}
}

func TestRewrite(t *testing.T) {
	const src = `version: 1
lists: {bad: [darn, heck]}
rules:
  - {name: mask, on: message, if: 'contains_any(message.text, lists.bad)', verdict: rewrite, rewrite: {mask: lists.bad}}
  - {name: shout, on: message, if: 'message.text contains "!!!"', verdict: rewrite, rewrite: {text: 'replace(message.text, "!!!", "!")'}}
`
	set := mustRules(t, src)
	t.Run("two rewrites apply in file order and other elements pass untouched", func(t *testing.T) {
		ev := eventFrom(t, tim.CmdBeforeSendMsg, map[string]any{
			"GroupId": "g", "Type": "Public", "From_Account": "u", "Random": 7,
			"MsgBody": []any{
				map[string]any{"MsgType": "TIMTextElem", "MsgContent": map[string]any{"Text": "Darn it!!!"}},
				map[string]any{"MsgType": "TIMFaceElem", "MsgContent": map[string]any{"Index": 3, "Data": "smile"}},
			},
		})
		out := Evaluate(set, ev, emptyState(set), Options{})
		if out.Reply.ErrorCode != 0 || len(out.Reply.MsgBody) != 2 {
			t.Fatalf("reply %+v; want code 0 and a two-element MsgBody", out.Reply)
		}
		body, err := json.Marshal(out.Reply.MsgBody)
		if err != nil {
			t.Fatal(err)
		}
		want := `[{"MsgType":"TIMTextElem","MsgContent":{"Text":"**** it!"}},{"MsgType":"TIMFaceElem","MsgContent":{"Data":"smile","Index":3}}]`
		if string(body) != want {
			t.Errorf("MsgBody = %s\nwant      %s", body, want)
		}
	})
	t.Run("a message without a match is not rewritten", func(t *testing.T) {
		out := Evaluate(set, msgEvent(t, "u", "fine"), emptyState(set), Options{})
		if out.Reply.MsgBody != nil {
			t.Errorf("MsgBody = %v, want none", out.Reply.MsgBody)
		}
	})
}

func TestInvitePerInvitee(t *testing.T) {
	const src = `version: 1
lists: {banned: [mallory, trudy]}
rules:
  - {name: banned, on: invite, if: 'user.id in lists.banned', verdict: refuse, reply: {code: 10120, text: banned}}
`
	set := mustRules(t, src)
	invite := func(t testing.TB, members ...string) *Event {
		list := make([]any, len(members))
		for i, m := range members {
			list[i] = map[string]any{"Member_Account": m}
		}
		return eventFrom(t, tim.CmdBeforeInviteJoinGroup, map[string]any{"GroupId": "g", "Type": "Public", "Operator_Account": "op", "DestinationMembers": list})
	}
	tests := []struct {
		name        string
		members     []string
		wantCode    int
		wantRefused []string
	}{
		{name: "some refused invitees are listed and the rest let in", members: []string{"alice", "mallory", "bob", "trudy"}, wantCode: 0, wantRefused: []string{"mallory", "trudy"}},
		{name: "when every invitee is refused the whole invitation is refused with the reply", members: []string{"mallory", "trudy"}, wantCode: 10120},
		{name: "nobody refused is a plain OK", members: []string{"alice"}, wantCode: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := Evaluate(set, invite(t, tt.members...), emptyState(set), Options{})
			if len(out.Decisions) != len(tt.members) {
				t.Fatalf("%d decisions for %d invitees", len(out.Decisions), len(tt.members))
			}
			if out.Reply.ErrorCode != tt.wantCode || !slices.Equal(out.Reply.RefusedMembers, tt.wantRefused) {
				t.Errorf("reply code %d refused %v; want %d %v", out.Reply.ErrorCode, out.Reply.RefusedMembers, tt.wantCode, tt.wantRefused)
			}
		})
	}
}

func TestApproveAdmits(t *testing.T) {
	set := mustRules(t, `version: 1
rules:
  - {name: ok, on: join_request, if: 'apply.msg == "please"', verdict: approve}
`)
	ev := eventFrom(t, tim.CmdBeforeApplyJoinGroup, map[string]any{"GroupId": "g", "Type": "Public", "Requestor_Account": "u", "ApplyMsg": "please"})
	out := Evaluate(set, ev, emptyState(set), Options{})
	if got := actionStrings(out.Decisions[0]); !slices.Equal(got, []string{"admit"}) || out.Reply.ErrorCode != 0 {
		t.Errorf("approve gave actions %v code %d; want [admit] and 0", got, out.Reply.ErrorCode)
	}
}

func TestRuleErrorsAreRecordedNotFatal(t *testing.T) {
	set := mustRules(t, `version: 1
rules:
  - {name: broken, on: message, if: 'message.types[5] == "x"', verdict: block}
  - {name: fine, on: message, if: 'true', verdict: drop}
`)
	out := Evaluate(set, msgEvent(t, "u", "hi"), emptyState(set), Options{})
	d := out.Decisions[0]
	if d.Verdict != rules.Drop || len(d.Errors) != 1 || !strings.Contains(d.Errors[0], "rule broken") {
		t.Errorf("verdict %q errors %v; want drop and one error naming the rule", d.Verdict, d.Errors)
	}
}

func TestModes(t *testing.T) {
	set := mustRules(t, `version: 1
rules:
  - {name: night, on: message, mode: night, if: 'true', verdict: block}
schedules:
  - {name: n, cron: "0 22 * * *", timezone: UTC, mode: {name: night, for: 8h}}
`)
	st := emptyState(set)
	if out := Evaluate(set, msgEvent(t, "u", "hi"), st, Options{}); out.Reply.ErrorCode != 0 {
		t.Errorf("a rule whose mode is off blocked")
	}
	st.Modes["night"] = true
	if out := Evaluate(set, msgEvent(t, "u", "hi"), st, Options{}); out.Reply.ErrorCode != tim.CodeRefuse {
		t.Errorf("a rule whose mode is on did not block (code %d)", out.Reply.ErrorCode)
	}
}

func TestMergeActions(t *testing.T) {
	set := mustRules(t, `version: 1
rules:
  - {name: a, on: message, if: 'true', actions: [{mute: 10m}, {strike: 1}, {warn: hey}]}
  - {name: b, on: message, if: 'true', actions: [{mute: 1h}, {strike: 2}, {warn: hey}, {warn: other}]}
`)
	out := Evaluate(set, msgEvent(t, "u", "hi"), emptyState(set), Options{})
	want := []string{"mute 1h0m0s", "strike 3", `warn "hey"`, `warn "other"`}
	if got := actionStrings(out.Decisions[0]); !slices.Equal(got, want) {
		t.Errorf("merged actions %v, want %v", got, want)
	}
}

func TestFindURLs(t *testing.T) {
	tests := []struct {
		name string
		text string
		want []string
	}{
		{"a link with a scheme keeps its query and loses the comma", "see https://example.com/a?b=c, ok", []string{"https://example.com/a?b=c"}},
		{"a bare domain with a path", "join t.me/freecoins now", []string{"t.me/freecoins"}},
		{"a www link loses its full stop", "www.Example.org.", []string{"www.Example.org"}},
		{"a bare domain with a common top-level domain", "visit bit.ly", []string{"bit.ly"}},
		{"an abbreviation is no link", "e.g. this is fine", nil},
		{"a version number is no link", "version 1.2.3 is out", nil},
		{"plain words", "no links here", nil},
		{"32 dotted words do not hide the link after them", strings.Repeat("xy.zw ", 32) + "evil.com/x", []string{"evil.com/x"}},
		{"a thousand dotted words do not hide the link after them", strings.Repeat("ab.cd ", 1000) + "see evil.com", []string{"evil.com"}},
		{"every link of many is found", strings.Repeat("a.com ", 40), slices.Repeat([]string{"a.com"}, 40)},
		{"dotted words glued together do not hide a link", strings.Repeat("xy.zw,", 50) + "t.me/x", []string{"t.me/x"}},
		{"links beside Chinese text", "看看example.com吧，还有https://t.cn/abc。", []string{"example.com", "https://t.cn/abc"}},
		{"a link in angle brackets and quotes", `<http://a.io/x> "www.b.org"`, []string{"http://a.io/x", "www.b.org"}},
		{"a scheme in capitals", "HTTPS://EVIL.COM/X", []string{"HTTPS://EVIL.COM/X"}},
		{"a host followed by digits ends at its top-level domain", "evil.com123", []string{"evil.com"}},
		{"an underscore before a host does not hide it", "x_evil.com", []string{"evil.com"}},
		{"two hosts joined by a comma", "a.com,b.org", []string{"a.com", "b.org"}},
		{"a subdomain", "go to mail.evil.co.uk now", []string{"mail.evil.co.uk"}},
		{"a file name is no link", "open report.pdf and data.csv", nil},
		{"labels of digits before the host", "1.1.evil.com", []string{"1.1.evil.com"}},
		{"a version before the host, with a path", "1.2.3.evil.com/x", []string{"1.2.3.evil.com/x"}},
		{"a label mixing letters and digits", "v1.2.evil.com/x", []string{"v1.2.evil.com/x"}},
		{"two dots before the host", "x..evil.com/x", []string{"evil.com/x"}},
		{"two dots inside dotted words before the host", "a.b..evil.com/x", []string{"evil.com/x"}},
		{"a host after a host with two dots between", "a.com..evil.com", []string{"a.com", "evil.com"}},
		{"a hyphen before the host", "-evil.com", []string{"evil.com"}},
		{"a host ending in a dot", "see evil.com.", []string{"evil.com"}},
		{"an empty message", "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := FindURLs(tt.text); !slices.Equal(got, tt.want) {
				t.Errorf("FindURLs(%q) = %q, want %q", tt.text, got, tt.want)
			}
		})
	}
}

func TestFindURLsReadsABoundedPrefix(t *testing.T) {
	filler := strings.Repeat("ab.cd ", maxURLScanBytes/6+1)
	if got := FindURLs(filler + "evil.com"); len(got) != 0 {
		t.Errorf("a link after %d bytes was found (%q); the scan must stop at %d bytes", len(filler), got, maxURLScanBytes)
	}
	within := strings.Repeat("ab.cd ", (maxURLScanBytes-100)/6) + "evil.com"
	if got := FindURLs(within); !slices.Equal(got, []string{"evil.com"}) {
		t.Errorf("a link ending inside the first %d bytes: found %q, want evil.com", maxURLScanBytes, got)
	}
}

func FuzzFindURLs(f *testing.F) {
	for _, s := range []string{
		"see https://example.com/a?b=c, ok", "www.Example.org.", strings.Repeat("xy.zw ", 33) + "evil.com/x",
		"看看example.com吧", "evil.com123", "a.-b.com", "..com", "http://", "www.", "x.y.z.", "-a.com", "a..com/x",
		"1.1.evil.com", "1.2.3.evil.com/x", "v1.2.evil.com/x", "x..evil.com/x", "a.b..evil.com/x", "_https://evil.com/x",
		"a.b.c.d.e.f.g.h", "x_y.com", "evil.com.zz", "a.commmmmmmmmmmmmmmmmmmmmmmmmmmmmm/x",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		urls := FindURLs(text)
		scanned := text[:min(len(text), maxURLScanBytes)]
		at := 0
		for _, u := range urls {
			if u == "" {
				t.Fatalf("FindURLs(%q) returned an empty link", text)
			}
			// Links come in order, each a piece of the text read.
			i := strings.Index(scanned[at:], u)
			if i < 0 {
				t.Fatalf("FindURLs(%q): %q is not in the text after the previous link", text, u)
			}
			at += i + len(u)
			if strings.ContainsAny(u, " \t\n<>\"`") {
				t.Fatalf("FindURLs(%q): %q spans a separator", text, u)
			}
		}
		// Every link the earlier finder (one regular expression, without
		// its cap of 32 matches) found is found: its host is in a link.
		if len(text) <= maxURLScanBytes {
			for _, old := range regexpURLs(text) {
				if !hostFoundIn(old, urls) {
					t.Fatalf("FindURLs(%q) = %q misses %q, which the regular expression finds", text, urls, old)
				}
			}
		}
		// A link written after the text is found whatever precedes it.
		if len(text) < 1000 && !strings.ContainsAny(text, "\x00") {
			got := FindURLs(text + " evil.com/x")
			if len(got) == 0 || got[len(got)-1] != "evil.com/x" {
				t.Fatalf("FindURLs(%q + \" evil.com/x\") = %q: the link at the end was not found", text, got)
			}
		}
	})
}

// regexpURLPattern is the link pattern FindURLs replaced, kept to check
// that FindURLs finds every link it found.
var regexpURLPattern = regexp.MustCompile(`(?i)\b(?:(?:https?|ftp)://[^\s<>"'` + "`" + `]+|www\.[^\s<>"'` + "`" + `]+|[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*\.(?:[a-z]{2,24})(?:/[^\s<>"'` + "`" + `]*)?)`)

// regexpURLs is the earlier finder without its cap on matches.
func regexpURLs(text string) []string {
	var out []string
	for _, m := range regexpURLPattern.FindAllString(text, -1) {
		m = strings.TrimRight(m, ".,;:!?)]}'\"")
		if !strings.Contains(m, "://") && !strings.HasPrefix(strings.ToLower(m), "www.") && !strings.Contains(m, "/") && !commonTLD(m) {
			continue
		}
		out = append(out, m)
	}
	return out
}

// hostFoundIn reports whether one of urls holds link's host (what comes
// before its path): the same place is linked.
func hostFoundIn(link string, urls []string) bool {
	host := link
	if i := strings.Index(host, "://"); i >= 0 {
		host = host[i+3:]
	}
	if i := strings.IndexByte(host, '/'); i >= 0 {
		host = host[:i]
	}
	host = strings.TrimRight(host, ".,;:!?)]}'\"")
	for _, u := range urls {
		if strings.Contains(strings.ToLower(u), strings.ToLower(host)) {
			return true
		}
	}
	return host == ""
}

func TestARejectedApplicantIsNotAdmitted(t *testing.T) {
	set := mustRules(t, `version: 1
lists: {vip: [mallory], banned: [mallory]}
rules:
  - {name: vip, on: join_request, if: 'user.id in lists.vip', actions: [admit, {warn: welcome}]}
  - {name: banned, on: join_request, if: 'user.id in lists.banned', verdict: reject}
  - {name: slow, on: join_request, if: 'user.id == "hugo"', verdict: hold, actions: [admit]}
`)
	for _, tt := range []struct{ user, want string }{{"mallory", `warn "welcome"`}, {"hugo", ""}} {
		ev := eventFrom(t, tim.CmdBeforeApplyJoinGroup, map[string]any{"GroupId": "g", "Type": "Public", "Requestor_Account": tt.user})
		got := strings.Join(actionStrings(Evaluate(set, ev, emptyState(set), Options{}).Decisions[0]), ",")
		if got != tt.want {
			t.Errorf("%s: actions %q, want %q (no admit when the verdict refuses or holds)", tt.user, got, tt.want)
		}
	}
}

func TestLinksAreLookedForOnlyWhenARuleReadsThem(t *testing.T) {
	reads := mustRules(t, `version: 1
rules: [{name: links, on: message, if: 'len(message.urls) > 0', verdict: block}]
`)
	ignores := mustRules(t, `version: 1
rules: [{name: words, on: message, if: 'message.text contains "x"', verdict: block}]
`)
	ev := msgEvent(t, "u", "see example.com/a")
	if out := Evaluate(reads, ev, emptyState(reads), Options{}); out.Reply.ErrorCode != 1 || len(ev.Base.URLs) != 1 {
		t.Errorf("a rule reading message.urls: code %d, urls %v; want the block and one link", out.Reply.ErrorCode, ev.Base.URLs)
	}
	ev = msgEvent(t, "u", "see example.com/a")
	Evaluate(ignores, ev, emptyState(ignores), Options{})
	if ev.Base.URLs != nil {
		t.Errorf("links %v were looked for although no rule reads them", ev.Base.URLs)
	}
}
