package rules

import (
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/timguard/timguard/tim"
)

// fillFirst and fillSecond differ in every field: an Env filled with the
// first and then the second must read the second, whatever the set reads.
func fillFirst() Input { return sampleInput() }

func fillSecond() Input {
	return Input{
		Kind:          MemberJoined,
		GroupID:       "@TGS#2",
		GroupType:     tim.GroupAVChatRoom,
		UserID:        "bob",
		UserRole:      RoleAdmin,
		UserStrikes:   5,
		UserFirstSeen: time.Date(2026, 10, 1, 8, 0, 0, 0, time.UTC),
		UserMessages:  300,
		TopicID:       "@TGS#2@TOPIC#t",
		OperatorID:    "op2",
		Text:          "Second TEXT",
		Types:         []string{tim.ElemText},
		URLs:          []string{"https://y.example"},
		Mentions:      []string{"carol", "dave"},
		AtAll:         false,
		ApplyMsg:      "please",
		JoinType:      "Invited",
		ExitType:      "Quit",
		Counters:      []int{1000, 9},
		Now:           time.Date(2027, 1, 2, 3, 4, 5, 0, time.UTC),
	}
}

// TestFillSetsWhatEachVariableRuleReads compiles, for every variable, a set
// whose one rule reads only that variable, and checks the rule sees the
// second of two Fills (and of the setters) on one Env: a variable the set
// reads but Fill leaves as the first Fill set it fails here.
func TestFillSetsWhatEachVariableRuleReads(t *testing.T) {
	second := fillSecond()
	// cond holds for the second input and not for the first.
	conds := map[string]string{
		"event":            `event == "member_joined"`,
		"now":              "now.Unix() == " + strconv.FormatInt(second.Now.Unix(), 10),
		"group.id":         `group.id == "@TGS#2"`,
		"group.type":       `group.type == "AVChatRoom"`,
		"group.topic":      `group.topic == "@TGS#2@TOPIC#t"`,
		"user.id":          `user.id == "bob"`,
		"user.role":        `user.role == "admin"`,
		"user.strikes":     `user.strikes == 5`,
		"user.first_seen":  "user.first_seen.Unix() == " + strconv.FormatInt(second.UserFirstSeen.Unix(), 10),
		"user.messages":    `user.messages == 300`,
		"operator.id":      `operator.id == "op2"`,
		"message.text":     `message.text == "Second TEXT"`,
		"message.types":    `join(message.types, ",") == "TIMTextElem"`,
		"message.urls":     `join(message.urls, ",") == "https://y.example"`,
		"message.mentions": `join(message.mentions, ",") == "carol,dave"`,
		"message.at_all":   `message.at_all == false`,
		"apply.msg":        `apply.msg == "please"`,
		"join.type":        `join.type == "Invited"`,
		"exit.type":        `exit.type == "Quit"`,
		"counters.NAME":    `counters.user_msgs == 1000`,
		"lists.NAME":       `len(lists.trusted) == 3 && "bob" in lists.trusted && event == "member_joined"`,
	}
	type tc struct {
		name, cond string
		// set, when not nil, changes the variable to second's value after
		// a Fill of the first input, as policy does per subject.
		set func(e *Env, in Input)
	}
	var cases []tc
	for _, v := range Variables() {
		cond, ok := conds[v]
		if !ok {
			t.Errorf("no case for the variable %s", v)
			continue
		}
		cases = append(cases, tc{name: v, cond: cond})
	}
	setUser := func(e *Env, in Input) { e.SetUser(in.UserID, in.UserRole, in.UserStrikes) }
	setActivity := func(e *Env, in Input) { e.SetActivity(in.UserFirstSeen, in.UserMessages) }
	setText := func(e *Env, in Input) { e.SetText(in.Text) }
	setCounters := func(e *Env, in Input) { e.SetCounters(in.Counters) }
	cases = append(cases,
		tc{name: "lower(message.text)", cond: `lower(message.text) == "second text"`},
		tc{name: "lower(message.text) already lower", cond: `lower(message.text) == "second text" && message.text == lower(message.text)`},
		tc{name: "any over a list, read as contains_any", cond: `any(lists.spam, {lower(message.text) contains #})`},
		tc{name: "$env by name", cond: `$env["user.id"] == "bob" && $env["counters.group_joins"] == 9`},
		tc{name: "$env by a computed name", cond: `let k = "group." + "topic"; $env[k] == "@TGS#2@TOPIC#t"`},
		tc{name: "counters.NAME of the second counter", cond: `counters.group_joins == 9`},
		// expr's optimizer folds map(filter(xs, p), q) into one builtin
		// that keeps q where ast.Walk does not look.
		tc{name: "join.type in map(filter(...), ...)", cond: `"Invited" in map(filter(message.mentions, # != ""), join.type)`},
		tc{name: "operator.id in map(filter(...), ...)", cond: `first(map(filter(message.mentions, # != ""), operator.id)) == "op2"`},
		tc{name: "user.strikes in map(filter(...), ...)", cond: `count(map(filter(message.mentions, # != ""), user.strikes), # == 5) == 2`},
		tc{name: "counters.NAME in map(filter(...), ...)", cond: `count(map(filter(message.mentions, # != ""), counters.group_joins), # == 9) == 2`},
		tc{name: "user.id by SetUser", cond: conds["user.id"], set: setUser},
		tc{name: "user.role by SetUser", cond: conds["user.role"], set: setUser},
		tc{name: "user.strikes by SetUser", cond: conds["user.strikes"], set: setUser},
		tc{name: "user.first_seen by SetActivity", cond: conds["user.first_seen"], set: setActivity},
		tc{name: "user.messages by SetActivity", cond: conds["user.messages"], set: setActivity},
		tc{name: "message.text by SetText", cond: conds["message.text"], set: setText},
		tc{name: "lower(message.text) by SetText", cond: `lower(message.text) == "second text"`, set: setText},
		tc{name: "counters.NAME by SetCounters", cond: conds["counters.NAME"], set: setCounters},
	)
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			first, second := fillFirst(), fillSecond()
			if tt.name == "lower(message.text) already lower" {
				second.Text = "second text"
			}
			if tt.name == "any over a list, read as contains_any" {
				first.Text, second.Text = "hello", "see t.me/x"
			}
			set := mustParse(t, ruleIf(tt.cond))
			r := set.Rule("t")
			e := set.Env()
			defer e.Release()
			e.Fill(&first)
			if ok, err := r.Match(e); ok || err != nil {
				t.Fatalf("after the first Fill %s = %v, %v; want false (the case tests nothing)", tt.cond, ok, err)
			}
			if tt.set != nil {
				tt.set(e, second)
			} else {
				e.Fill(&second)
			}
			if ok, err := r.Match(e); !ok || err != nil {
				t.Errorf("after the second Fill %s = %v, %v; want true", tt.cond, ok, err)
			}
		})
	}
}

// TestFillSetsWhatCountersRead: a counter's key and condition read fields
// no rule reads, through the VM and through the joined key.
func TestFillSetsWhatCountersRead(t *testing.T) {
	tests := []struct {
		name, key, cond string
		want            string
		counts          bool
	}{
		{"joined key", `group.topic + "/" + operator.id`, "", "c|@TGS#2@TOPIC#t/op2", true},
		{"key by the VM", `join.type + "/" + lower(message.text)`, "", "c|Invited/second text", true},
		{"condition", `group.id`, `message.at_all == false && apply.msg == "please"`, "c|@TGS#2", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := "version: 1\ncounters:\n  - name: c\n    on: [message]\n    key: " + strconv.Quote(tt.key) + "\n    window: 10s\n"
			if tt.cond != "" {
				src += "    if: " + strconv.Quote(tt.cond) + "\n"
			}
			src += "rules:\n  - {name: t, on: message, if: 'true', verdict: block}\n"
			set, err := Parse("rules.yaml", []byte(src))
			if err != nil {
				t.Fatal(err)
			}
			e := set.Env()
			defer e.Release()
			first, second := fillFirst(), fillSecond()
			e.Fill(&first)
			e.Fill(&second)
			key, counts, err := set.Counters[0].KeyFor(e)
			if err != nil || key != tt.want || counts != tt.counts {
				t.Errorf("KeyFor = %q, %v, %v; want %q, %v", key, counts, err, tt.want, tt.counts)
			}
		})
	}
}

// TestPlaceholderWordsSeeTheFilledText: {words} reads the event's text
// (message.text, else apply.msg) outside any expression, so those are set
// even when no condition reads them.
func TestPlaceholderWordsSeeTheFilledText(t *testing.T) {
	tests := []struct {
		name, on, cond, verdict string
		first, second           Input
		want                    string
	}{
		{
			name: "a condition reading lower(message.text) only", on: "message", verdict: "block",
			cond:  `contains_any(lower(message.text), lists.spam)`,
			first: Input{Kind: Message, Text: "buy FREE CRYPTO"}, second: Input{Kind: Message, Text: "see t.me/x"},
			want: "found t.me/",
		},
		{
			name: "a condition reading apply.msg only", on: "join_request", verdict: "reject",
			cond:  `contains_any(apply.msg, lists.spam)`,
			first: Input{Kind: Message, Text: "buy free crypto"}, second: Input{Kind: JoinRequest, ApplyMsg: "join t.me/x"},
			want: "found t.me/",
		},
		{
			// {words} reads apply.msg, not what the condition looked in.
			name: "a condition reading user.id only", on: "join_request", verdict: "reject",
			cond:  `contains_any(user.id, lists.spam)`,
			first: Input{Kind: JoinRequest, UserID: "t.me/a", ApplyMsg: "hello"}, second: Input{Kind: JoinRequest, UserID: "t.me/b", ApplyMsg: "free crypto please"},
			want: "found free crypto",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := behaviourHeader + fmt.Sprintf("  - name: t\n    on: %s\n    if: %s\n    verdict: %s\n    actions: [{warn: \"found {words}\"}]\n",
				tt.on, strconv.Quote(tt.cond), tt.verdict)
			set := mustParse(t, src)
			r := set.Rule("t")
			e := set.Env()
			defer e.Release()
			e.Fill(&tt.first)
			e.Fill(&tt.second)
			if ok, err := r.Match(e); !ok || err != nil {
				t.Fatalf("Match = %v, %v; want true", ok, err)
			}
			words := r.MatchedWords(e)
			res, err := r.Actions[0].Resolve(e)
			if err != nil {
				t.Fatal(err)
			}
			r.Actions[0].Fill(&res, Placeholders{User: "u", Rule: r.Name, Words: words})
			if res.Text != tt.want {
				t.Errorf("warn %q (words %v), want %q", res.Text, words, tt.want)
			}
		})
	}
}
