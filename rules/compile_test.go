package rules

import (
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"

	"github.com/timguard/timguard/tim"
)

// behaviourHeader declares the lists and counters the behaviour tests read.
// spam is all lower case, mixed is not, blank holds an empty word.
const behaviourHeader = `version: 1
lists:
  trusted: [alice, bob, "Ünal"]
  spam: [free crypto, "t.me/", дурак]
  mixed: [Free Crypto, SPAM]
  blank: ["", zzz]
counters:
  - name: user_msgs
    on: [message]
    key: group.id + "/" + user.id
    window: 10s
  - name: group_joins
    on: [member_joined]
    key: group.id
    window: 1m
rules:
`

func mustParse(t testing.TB, src string) *Set {
	t.Helper()
	set, err := Parse("rules.yaml", []byte(src))
	if err != nil {
		t.Fatalf("Parse:\n%v", err)
	}
	return set
}

// ruleIf is a file with one message rule, "t", whose condition is cond.
func ruleIf(cond string) string {
	return behaviourHeader + "  - name: t\n    on: message\n    if: " + strconv.Quote(cond) + "\n    verdict: block\n"
}

func sampleInput() Input {
	return Input{
		Kind:        Message,
		GroupID:     "@TGS#1",
		GroupType:   tim.GroupPublic,
		UserID:      "alice",
		UserRole:    RoleMember,
		UserStrikes: 2,
		OperatorID:  "op",
		Text:        "Hello FREE Crypto",
		Types:       []string{tim.ElemText, tim.ElemImage},
		URLs:        []string{"https://x.example"},
		Mentions:    []string{"bob"},
		AtAll:       true,
		ApplyMsg:    "let me in",
		JoinType:    "Apply",
		ExitType:    "Kicked",
		Counters:    []int{7, 40},
		Now:         time.Date(2026, 11, 21, 23, 0, 0, 0, time.UTC),
	}
}

// matchWith compiles cond and evaluates it against in.
func matchWith(t *testing.T, cond string, in Input) bool {
	t.Helper()
	set := mustParse(t, ruleIf(cond))
	e := set.Env()
	defer e.Release()
	e.Fill(&in)
	ok, err := set.Rule("t").Match(e)
	if err != nil {
		t.Fatalf("Match(%s): %v", cond, err)
	}
	return ok
}

func TestExpressionsReadTheFlatEnvironment(t *testing.T) {
	tests := []struct {
		cond string
		want bool
	}{
		{`event == "message"`, true},
		{`group.id == "@TGS#1" && group.type == "Public"`, true},
		{`user.id == "alice"`, true},
		{`user["id"] == "alice"`, true},
		{`user?.id == "alice"`, true},
		{`user.role == "member" && user.strikes == 2`, true},
		{`user.strikes > 2`, false},
		{`operator.id == "op"`, true},
		{`message.text == "Hello FREE Crypto"`, true},
		{`lower(message.text) == "hello free crypto"`, true},
		{`(message.text | lower()) == "hello free crypto"`, true},
		{`upper(message.text) == "HELLO FREE CRYPTO"`, true},
		{`"TIMImageElem" in message.types`, true},
		{`"TIMSoundElem" in message.types`, false},
		{`len(message.urls) == 1 && message.urls[0] startsWith "https://"`, true},
		{`"bob" in message.mentions`, true},
		{`message.at_all`, true},
		{`apply.msg contains "let"`, true},
		{`join.type == "Apply" && exit.type == "Kicked"`, true},
		{`counters.user_msgs == 7 && counters.group_joins == 40`, true},
		{`counters.user_msgs > 7`, false},
		{`user.id in lists.trusted`, true},
		{`user.id not in lists.trusted`, false},
		{`!(user.id in lists.trusted)`, false},
		{`"carol" in lists.trusted`, false},
		{`"carol" not in lists.trusted`, true},
		{`"ALICE" in lists.trusted`, false},
		{`"Ünal" in lists.trusted`, true},
		{`len(lists.trusted) == 3 && lists.trusted[0] == "alice"`, true},
		{`any(lists.spam, {lower(message.text) contains #})`, true},
		{`any(lists.mixed, {lower(message.text) contains #})`, false},
		{`contains_any(message.text, lists.spam)`, true},
		{`contains_any(message.text, lists.mixed)`, true},
		{`contains_any("nothing here", lists.spam)`, false},
		{`contains_any(message.text, ["crypto"])`, true},
		{`now.Year() == 2026 && now.Hour() == 23`, true},
		{`let u = user.id; u == "alice"`, true},
		{`any(message.mentions, {# == "bob"})`, true},
		{`map(message.types, {lower(#)})[0] == "timtextelem"`, true},
		{`len(filter(lists.trusted, {# == user.id})) == 1`, true},
		{`user.strikes > 1 ? message.at_all : false`, true},
	}
	for _, tt := range tests {
		t.Run(tt.cond, func(t *testing.T) {
			if got := matchWith(t, tt.cond, sampleInput()); got != tt.want {
				t.Errorf("%s = %v, want %v", tt.cond, got, tt.want)
			}
		})
	}
}

// hasIdent reports whether the compiled program reads the flat name.
func hasIdent(p *program, name string) bool {
	return ast.Find(p.prog.Node(), func(n ast.Node) bool {
		id, ok := n.(*ast.IdentifierNode)
		return ok && id.Value == name
	}) != nil
}

func TestThePatcherRewritesTheTree(t *testing.T) {
	set := mustParse(t, behaviourHeader+"  - {name: t, on: message, if: \"true\", verdict: block}\n")
	env := newCompileEnv(set.Counters, set.Lists)
	tests := []struct {
		name     string
		src      string
		reads    []string // flat names the program must read
		notReads []string // names it must not read
		counters []string
		fields   []string
	}{
		{
			name:   "member access becomes a flat name",
			src:    `user.id == "a" && group.type == "b"`,
			reads:  []string{"user.id", "group.type"},
			fields: []string{"group.type", "user.id"},
		},
		{
			name:   "an index with a constant name becomes a flat name",
			src:    `user["role"] == "admin"`,
			reads:  []string{"user.role"},
			fields: []string{"user.role"},
		},
		{
			name:     "a counter becomes a flat name and is recorded",
			src:      `counters.user_msgs > 5 && user.strikes > 0`,
			reads:    []string{"counters.user_msgs"},
			counters: []string{"user_msgs"},
			fields:   []string{"user.strikes"},
		},
		{
			name:     "in a list becomes a set lookup",
			src:      `user.id in lists.trusted`,
			reads:    []string{"lists.trusted#set"},
			notReads: []string{"lists.trusted"},
			fields:   []string{"user.id"},
		},
		{
			name:     "not in a list becomes a set lookup too",
			src:      `user.id not in lists.trusted`,
			reads:    []string{"lists.trusted#set"},
			notReads: []string{"lists.trusted"},
			fields:   []string{"user.id"},
		},
		{
			name:  "a list read as a list stays a list",
			src:   `len(lists.trusted) > 1`,
			reads: []string{"lists.trusted"},
		},
		{
			name:     "lower of the text reads the text lowered once",
			src:      `lower(message.text) contains "x"`,
			reads:    []string{"message.text#lower"},
			notReads: []string{"message.text"},
			fields:   []string{"message.text"},
		},
		{
			name:     "lower of anything else is left to expr",
			src:      `lower(message.text + "") contains "x"`,
			reads:    []string{"message.text"},
			notReads: []string{"message.text#lower"},
			fields:   []string{"message.text"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, errs := env.compile(tt.src, expr.AsBool())
			if len(errs) > 0 {
				t.Fatalf("compile: %q", errs)
			}
			for _, name := range tt.reads {
				if !hasIdent(p, name) {
					t.Errorf("the program does not read %s: %s", name, p.prog.Node())
				}
			}
			for _, name := range tt.notReads {
				if hasIdent(p, name) {
					t.Errorf("the program still reads %s: %s", name, p.prog.Node())
				}
			}
			if got := sortedKeys(p.use.counters); !reflect.DeepEqual(got, append([]string{}, tt.counters...)) {
				t.Errorf("counters read = %q, want %q", got, tt.counters)
			}
			if got := sortedKeys(p.use.fields); !reflect.DeepEqual(got, append([]string{}, tt.fields...)) {
				t.Errorf("fields read = %q, want %q", got, tt.fields)
			}
		})
	}
}

var equivalenceTexts = []string{
	"", "hello", "Hello FREE Crypto", "free cryptos!", "join t.me/xyz", "ТЫ ДУРАК", "Ünal İstanbul",
	"ΣΑΣ", "straße STRASSE", "SPAM and Spam", "zzz", "\xff\xfe broken utf-8", "emoji 🙂 crypto",
}

// TestPatchedExpressionsMeanWhatTheyWouldUnpatched checks each rewrite the
// patcher makes against a spelling of the same question it leaves alone.
func TestPatchedExpressionsMeanWhatTheyWouldUnpatched(t *testing.T) {
	tests := []struct {
		name string
		cond string // must hold for every text and user
	}{
		{
			name: "lower of the text is the lowered text",
			cond: `lower(message.text) == lower(message.text + "")`,
		},
		{
			name: "in a list is the same as scanning it",
			cond: `(user.id in lists.trusted) == any(lists.trusted, {# == user.id})`,
		},
		{
			name: "not in a list is the same as not scanning it",
			cond: `(user.id not in lists.trusted) == none(lists.trusted, {# == user.id})`,
		},
		{
			name: "any word of a lower-case list in the lowered text",
			cond: `any(lists.spam, {lower(message.text) contains #}) == any(lists.spam, {lower(message.text + "") contains #})`,
		},
		{
			name: "any word of a mixed-case list in the lowered text",
			cond: `any(lists.mixed, {lower(message.text) contains #}) == any(lists.mixed, {lower(message.text + "") contains #})`,
		},
		{
			name: "any word of a list holding an empty word in the lowered text",
			cond: `any(lists.blank, {lower(message.text) contains #}) == any(lists.blank, {lower(message.text + "") contains #})`,
		},
		{
			name: "contains_any ignores case and empty words",
			cond: `contains_any(message.text, lists.mixed) == any(lists.mixed, {# != "" && lower(message.text + "") contains lower(#)})`,
		},
		{
			name: "contains_any of a lower-case list",
			cond: `contains_any(message.text, lists.spam) == any(lists.spam, {# != "" && lower(message.text + "") contains lower(#)})`,
		},
		{
			name: "contains_any of a list holding an empty word",
			cond: `contains_any(message.text, lists.blank) == any(lists.blank, {# != "" && lower(message.text + "") contains lower(#)})`,
		},
	}
	users := []string{"alice", "bob", "Alice", "", "Ünal", "ünal", "carol"}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			set := mustParse(t, ruleIf(tt.cond))
			e := set.Env()
			defer e.Release()
			var failed []string
			for _, text := range equivalenceTexts {
				for _, user := range users {
					in := sampleInput()
					in.Text, in.UserID = text, user
					e.Fill(&in)
					ok, err := set.Rule("t").Match(e)
					if err != nil {
						t.Fatal(err)
					}
					if !ok {
						failed = append(failed, fmt.Sprintf("text %q user %q", text, user))
					}
				}
			}
			if len(failed) > 0 {
				t.Errorf("false in %d cases, first %s", len(failed), failed[0])
			}
		})
	}
}

// readsEverything is a condition that reads every event variable and
// counter of behaviourHeader: Fill sets only what the set reads.
const readsEverything = `event != "" || now.Year() > 0 || group.id != "" || group.type != "" || group.topic != "" || ` +
	`user.id != "" || user.role != "" || user.strikes > 0 || user.first_seen.Year() > 0 || user.messages > 0 || ` +
	`operator.id != "" || message.text != "" || lower(message.text) != "" || len(message.types) > 0 || ` +
	`len(message.urls) > 0 || len(message.mentions) > 0 || message.at_all || apply.msg != "" || join.type != "" || ` +
	`exit.type != "" || counters.user_msgs > 0 || counters.group_joins > 0`

func TestEnvFillSetsEveryVariable(t *testing.T) {
	set := mustParse(t, ruleIf(readsEverything))
	e := set.Env()
	defer e.Release()
	in := sampleInput()
	e.Fill(&in)
	want := map[string]any{
		"event":                "message",
		"now":                  in.Now,
		"group.id":             "@TGS#1",
		"group.type":           "Public",
		"user.id":              "alice",
		"user.role":            "member",
		"user.strikes":         2,
		"operator.id":          "op",
		"message.text":         "Hello FREE Crypto",
		"message.text#lower":   "hello free crypto",
		"message.types":        []string{tim.ElemText, tim.ElemImage},
		"message.urls":         []string{"https://x.example"},
		"message.mentions":     []string{"bob"},
		"message.at_all":       true,
		"apply.msg":            "let me in",
		"join.type":            "Apply",
		"exit.type":            "Kicked",
		"counters.user_msgs":   7,
		"counters.group_joins": 40,
	}
	for k, v := range want {
		if got := e.m[k]; !reflect.DeepEqual(got, v) {
			t.Errorf("%s = %#v, want %#v", k, got, v)
		}
	}
	for _, name := range []string{"trusted", "spam", "mixed", "blank"} {
		if !reflect.DeepEqual(e.m["lists."+name], set.Lists[name]) {
			t.Errorf("lists.%s = %#v, want the list", name, e.m["lists."+name])
		}
		if _, ok := e.m["lists."+name+"#set"].(map[string]struct{}); !ok {
			t.Errorf("lists.%s#set is %T, want a set", name, e.m["lists."+name+"#set"])
		}
	}
	// Every name an expression may read is set.
	for k := range fieldProto {
		if _, ok := e.m[k]; !ok {
			t.Errorf("%s is not set", k)
		}
	}

	// A second Fill replaces everything, nil slices read as empty and
	// missing counters as 0.
	e.Fill(&Input{Kind: Invite, Text: "already lower", Counters: []int{3}})
	again := map[string]any{
		"event": "invite", "user.id": "", "user.strikes": 0, "message.at_all": false,
		"message.text#lower": "already lower", "message.types": []string{}, "message.urls": []string{},
		"message.mentions": []string{}, "counters.user_msgs": 3, "counters.group_joins": 0,
	}
	for k, v := range again {
		if got := e.m[k]; !reflect.DeepEqual(got, v) {
			t.Errorf("after a second Fill %s = %#v, want %#v", k, got, v)
		}
	}
}

func TestEnvSetUserAndSetCountersChangeOnlyTheirFields(t *testing.T) {
	set := mustParse(t, behaviourHeader+"  - {name: t, on: member_joined, if: \"user.id == 'bob' && user.role == 'admin' && user.strikes == 4 && counters.group_joins == 9 && group.id != '' && message.text != '' && counters.user_msgs >= 0\", actions: [strike]}\n")
	e := set.Env()
	defer e.Release()
	in := sampleInput()
	in.Kind = MemberJoined
	e.Fill(&in)
	r := set.Rule("t")
	if ok, _ := r.Match(e); ok {
		t.Fatal("matched before the subject changed")
	}
	e.SetUser("bob", RoleAdmin, 4)
	e.SetCounters([]int{1, 9})
	ok, err := r.Match(e)
	if err != nil || !ok {
		t.Errorf("Match after SetUser and SetCounters = %v, %v; want true", ok, err)
	}
	if e.m["group.id"] != "@TGS#1" || e.m["message.text"] != "Hello FREE Crypto" {
		t.Error("SetUser changed fields other than the subject's")
	}
	e.SetCounters(nil)
	if e.m["counters.user_msgs"] != 0 || e.m["counters.group_joins"] != 0 {
		t.Error("SetCounters(nil) did not reset the counters to 0")
	}
}

func TestEnvsAreSafeToUseFromManyGoroutines(t *testing.T) {
	set := mustParse(t, ruleIf(`user.id in lists.trusted && counters.user_msgs > 5`))
	r := set.Rule("t")
	var wg sync.WaitGroup
	errs := make(chan string, 8)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				in := sampleInput()
				in.UserID = []string{"alice", "mallory"}[(g+i)%2]
				in.Counters = []int{i % 10}
				want := in.UserID == "alice" && i%10 > 5
				e := set.Env()
				e.Fill(&in)
				got, err := r.Match(e)
				e.Release()
				if err != nil || got != want {
					errs <- fmt.Sprintf("goroutine %d iteration %d: got %v, %v; want %v", g, i, got, err, want)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for msg := range errs {
		t.Error(msg)
	}
}

func TestCounterKeyFor(t *testing.T) {
	set := mustParse(t, `version: 1
counters:
  - {name: per_user, on: message, key: 'group.id + "/" + user.id', window: 10s}
  - {name: links, on: message, key: user.id, if: len(message.urls) > 0, window: 1h}
  - {name: per_group, on: [member_joined, join_request], key: group.id, window: 1m}
`)
	tests := []struct {
		name    string
		counter int
		urls    []string
		key     string
		counts  bool
	}{
		{"a key is the counter's name and the expression's value", 0, nil, "per_user|@TGS#1/alice", true},
		{"a counter whose condition holds counts", 1, []string{"https://a"}, "links|alice", true},
		{"a counter whose condition fails does not count but still has its key", 1, nil, "links|alice", false},
		{"a group counter keys on the group", 2, nil, "per_group|@TGS#1", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := set.Env()
			defer e.Release()
			in := sampleInput()
			in.URLs = tt.urls
			e.Fill(&in)
			key, counts, err := set.Counters[tt.counter].KeyFor(e)
			if err != nil || key != tt.key || counts != tt.counts {
				t.Errorf("KeyFor = %q, %v, %v; want %q, %v", key, counts, err, tt.key, tt.counts)
			}
		})
	}
	for i, c := range set.Counters {
		if c.Index != i {
			t.Errorf("counter %s has index %d, want %d", c.Name, c.Index, i)
		}
	}
	if w := set.Counters[1].Window; w != time.Hour {
		t.Errorf("window = %v, want 1h", w)
	}
}

func TestActionResolve(t *testing.T) {
	set := mustParse(t, behaviourHeader+`  - name: acts
    on: message
    if: "true"
    actions:
      - mute: 10m
      - mute: permanent
      - ban: forever
      - mute: duration("10m") * (user.strikes + 1)
      - mute: duration("1500ms")
      - mute: 1h30m1ms
      - mute: duration("2000000h")
      - mute: duration("2562047h47m16s")
      - mute: 7d
      - kick: Repeated violations
      - strike
      - strike: 3
      - warn: Be nice
      - mute_group: 15m
        announce: Open again
      - unmute
      - unmute_group
`)
	want := []Resolved{
		{Kind: ActMute, Seconds: 600},
		{Kind: ActMute, Seconds: PermanentSeconds},
		{Kind: ActBan, Seconds: PermanentSeconds},
		{Kind: ActMute, Seconds: 1800},
		{Kind: ActMute, Seconds: 2},
		{Kind: ActMute, Seconds: 5401},
		{Kind: ActMute, Seconds: PermanentSeconds},
		{Kind: ActMute, Seconds: PermanentSeconds},
		{Kind: ActMute, Seconds: 7 * 24 * 3600},
		{Kind: ActKick, Text: "Repeated violations"},
		{Kind: ActStrike, N: 1},
		{Kind: ActStrike, N: 3},
		{Kind: ActWarn, Text: "Be nice"},
		{Kind: ActMuteGroup, Seconds: 900, Announce: "Open again"},
		{Kind: ActUnmute},
		{Kind: ActUnmuteGroup},
	}
	r := set.Rule("acts")
	if len(r.Actions) != len(want) {
		t.Fatalf("%d actions compiled, want %d", len(r.Actions), len(want))
	}
	e := set.Env()
	defer e.Release()
	in := sampleInput()
	e.Fill(&in)
	for i, a := range r.Actions {
		got, err := a.Resolve(e)
		if err != nil || got != want[i] {
			t.Errorf("actions[%d] (line %d) = %+v, %v; want %+v", i, a.Line, got, err, want[i])
		}
	}
	// The expression is worked out for each subject.
	e.SetUser("bob", RoleMember, 0)
	if got, _ := r.Actions[3].Resolve(e); got.Seconds != 600 {
		t.Errorf("with no strikes the mute is %ds, want 600", got.Seconds)
	}
}

func TestActionResolveReportsAnExpressionThatGivesNoDuration(t *testing.T) {
	set := mustParse(t, behaviourHeader+"  - {name: t, on: message, if: \"true\", actions: [{mute: 'user.strikes > 5 ? duration(\"1h\") : nil'}]}\n")
	e := set.Env()
	defer e.Release()
	in := sampleInput()
	e.Fill(&in)
	_, err := set.Rule("t").Actions[0].Resolve(e)
	if err == nil || !strings.Contains(err.Error(), "not a duration") {
		t.Errorf("Resolve = %v, want an error saying it gave no duration", err)
	}
}

func TestDurationSecondsRoundsUpAndCaps(t *testing.T) {
	tests := []struct {
		name string
		d    time.Duration
		want int64
	}{
		{"zero is one second", 0, 1},
		{"a nanosecond is one second", time.Nanosecond, 1},
		{"a second is one second", time.Second, 1},
		{"a second and a nanosecond round up to two", time.Second + time.Nanosecond, 2},
		{"a second and a half round up to two", 1500 * time.Millisecond, 2},
		{"ten minutes are 600 seconds", 10 * time.Minute, 600},
		{"the permanent value is kept", PermanentSeconds * time.Second, PermanentSeconds},
		{"just under the permanent value rounds up to it", PermanentSeconds*time.Second - time.Millisecond, PermanentSeconds},
		{"beyond the permanent value is capped", (PermanentSeconds + 1) * time.Second, PermanentSeconds},
		{"the largest duration is capped, not wrapped", math.MaxInt64, PermanentSeconds},
		{"a second under the largest duration is capped", math.MaxInt64 - time.Second, PermanentSeconds},
		{"a negative duration means permanent", -1, PermanentSeconds},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := durationSeconds(tt.d); got != tt.want {
				t.Errorf("durationSeconds(%d) = %d, want %d", tt.d, got, tt.want)
			}
		})
	}
}

func TestResolvedString(t *testing.T) {
	tests := []struct {
		r    Resolved
		want string
	}{
		{Resolved{Kind: ActMute, Seconds: 600}, "mute 10m0s"},
		{Resolved{Kind: ActBan, Seconds: PermanentSeconds}, "ban permanent"},
		{Resolved{Kind: ActStrike, N: 2}, "strike 2"},
		{Resolved{Kind: ActKick, Text: "bye"}, `kick "bye"`},
		{Resolved{Kind: ActUnmute}, "unmute"},
	}
	for _, tt := range tests {
		if got := tt.r.String(); got != tt.want {
			t.Errorf("%+v.String() = %q, want %q", tt.r, got, tt.want)
		}
	}
}

// body decodes a MsgBody as the IM server sends it.
func body(t *testing.T, js string) []tim.MsgElem {
	t.Helper()
	var b []tim.MsgElem
	if err := json.Unmarshal([]byte(js), &b); err != nil {
		t.Fatal(err)
	}
	return b
}

func TestRewriterApply(t *testing.T) {
	set := mustParse(t, behaviourHeader+`  - {name: replace, on: message, if: "true", verdict: rewrite, rewrite: {text: '"[removed]"'}}
  - {name: edit, on: message, if: "true", verdict: rewrite, rewrite: {text: 'replace(message.text, "crypto", "cake")'}}
  - {name: mask, on: message, if: "true", verdict: rewrite, rewrite: {mask: lists.spam}}
  - {name: mask-hash, on: message, if: "true", verdict: rewrite, rewrite: {mask: lists.spam, with: "#"}}
  - {name: mask-literal, on: message, if: "true", verdict: rewrite, rewrite: {mask: '["Bad", "worse"]'}}
`)
	const image = `{"MsgType": "TIMImageElem", "MsgContent": {"UUID": "u1", "ImageFormat": 1, "ImageInfoArray": [{"Type": 1, "URL": "https://img"}]}}`
	tests := []struct {
		name string
		rule string
		in   string // MsgBody JSON
		want string // the rewritten MsgBody JSON
	}{
		{
			name: "a text rewrite replaces the only text element",
			rule: "replace",
			in:   `[{"MsgType": "TIMTextElem", "MsgContent": {"Text": "free crypto"}}]`,
			want: `[{"MsgType": "TIMTextElem", "MsgContent": {"Text": "[removed]"}}]`,
		},
		{
			name: "a text rewrite puts one text where the first was and keeps other elements in place",
			rule: "replace",
			in:   `[{"MsgType": "TIMTextElem", "MsgContent": {"Text": "a"}}, ` + image + `, {"MsgType": "TIMTextElem", "MsgContent": {"Text": "b"}}]`,
			want: `[{"MsgType": "TIMTextElem", "MsgContent": {"Text": "[removed]"}}, ` + image + `]`,
		},
		{
			name: "a text rewrite of a message without text adds the text at the end",
			rule: "replace",
			in:   `[` + image + `]`,
			want: `[` + image + `, {"MsgType": "TIMTextElem", "MsgContent": {"Text": "[removed]"}}]`,
		},
		{
			name: "a text rewrite of an empty message gives the text",
			rule: "replace",
			in:   `[]`,
			want: `[{"MsgType": "TIMTextElem", "MsgContent": {"Text": "[removed]"}}]`,
		},
		{
			name: "a text rewrite reads the message",
			rule: "edit",
			in:   `[{"MsgType": "TIMTextElem", "MsgContent": {"Text": "free crypto"}}]`,
			want: `[{"MsgType": "TIMTextElem", "MsgContent": {"Text": "free cake"}}]`,
		},
		{
			name: "a mask ignores case and keeps the length",
			rule: "mask",
			in:   `[{"MsgType": "TIMTextElem", "MsgContent": {"Text": "Get FREE Crypto at t.me/x"}}]`,
			want: `[{"MsgType": "TIMTextElem", "MsgContent": {"Text": "Get *********** at *****x"}}]`,
		},
		{
			name: "a mask works on every text element and leaves the rest alone",
			rule: "mask",
			in:   `[{"MsgType": "TIMTextElem", "MsgContent": {"Text": "ты дурак"}}, ` + image + `, {"MsgType": "TIMTextElem", "MsgContent": {"Text": "clean"}}, {"MsgType": "TIMTextElem", "MsgContent": {"Text": "ДУРАК!"}}]`,
			want: `[{"MsgType": "TIMTextElem", "MsgContent": {"Text": "ты *****"}}, ` + image + `, {"MsgType": "TIMTextElem", "MsgContent": {"Text": "clean"}}, {"MsgType": "TIMTextElem", "MsgContent": {"Text": "*****!"}}]`,
		},
		{
			name: "a mask with its own character",
			rule: "mask-hash",
			in:   `[{"MsgType": "TIMTextElem", "MsgContent": {"Text": "free crypto"}}]`,
			want: `[{"MsgType": "TIMTextElem", "MsgContent": {"Text": "###########"}}]`,
		},
		{
			name: "a mask from a literal list",
			rule: "mask-literal",
			in:   `[{"MsgType": "TIMTextElem", "MsgContent": {"Text": "bad, worse, BADDEST"}}]`,
			want: `[{"MsgType": "TIMTextElem", "MsgContent": {"Text": "***, *****, ***DEST"}}]`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := body(t, tt.in)
			e := set.Env()
			defer e.Release()
			input := sampleInput()
			input.Text = strings.Join(tim.Texts(in), "\n")
			e.Fill(&input)
			got, err := set.Rule(tt.rule).Rewrite.Apply(e, in)
			if err != nil {
				t.Fatal(err)
			}
			gotJSON, _ := json.Marshal(got)
			wantJSON, _ := json.Marshal(body(t, tt.want))
			if string(gotJSON) != string(wantJSON) {
				t.Errorf("rewritten body\n got %s\nwant %s", gotJSON, wantJSON)
			}
			// Elements other than text are passed on untouched.
			for i, el := range got {
				if el.MsgType != tim.ElemText {
					for _, orig := range in {
						if orig.MsgType == el.MsgType && !reflect.DeepEqual(orig, el) {
							t.Errorf("element %d changed: %+v", i, el)
						}
					}
				}
			}
		})
	}
}

func TestMaskWords(t *testing.T) {
	tests := []struct {
		name  string
		text  string
		words []string
		with  string
		want  string
	}{
		{"a word is masked one character per letter", "you idiot", []string{"idiot"}, "", "you *****"},
		{"case is ignored", "You IDIOT, Idiot", []string{"idiot"}, "", "You *****, *****"},
		{"a word given in capitals matches lower case", "you idiot", []string{"IDIOT"}, "", "you *****"},
		{"every occurrence is masked", "spam spam spam", []string{"spam"}, "", "**** **** ****"},
		{"overlapping words are both masked", "freecrypto", []string{"freec", "crypto"}, "", "**********"},
		{"a word inside another word is masked", "scrap", []string{"crap"}, "", "s****"},
		{"Cyrillic is masked ignoring case", "Ты ДУРАК", []string{"дурак"}, "", "Ты *****"},
		{"Greek is masked ignoring case", "ΣΑΣ", []string{"σασ"}, "", "***"},
		{"a mask of several bytes is repeated per letter", "bad", []string{"bad"}, "■", "■■■"},
		{"emoji count as one letter each", "🙂🙂 ok", []string{"🙂"}, "", "** ok"},
		{"a dotted capital I elsewhere does not stop case folding", "İstanbul IDIOT", []string{"idiot"}, "", "İstanbul *****"},
		{"an empty word masks nothing", "text", []string{""}, "", "text"},
		{"a word longer than the text masks nothing", "hi", []string{"hello"}, "", "hi"},
		{"no words mask nothing", "text", nil, "", "text"},
		{"an empty text stays empty", "", []string{"x"}, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := maskWords(tt.text, tt.words, tt.with); got != tt.want {
				t.Errorf("maskWords(%q, %q, %q) = %q, want %q", tt.text, tt.words, tt.with, got, tt.want)
			}
		})
	}
}

func TestPlanOfAKind(t *testing.T) {
	set := mustParse(t, `version: 1
counters:
  - {name: msgs, on: message, key: user.id, window: 10s}
  - {name: joins, on: [member_joined], key: group.id, window: 1m}
  - {name: unused, on: invite, key: group.id, window: 1m}
schedules:
  - {name: night, cron: "0 22 * * *", timezone: UTC, mode: {name: night, for: 8h}}
rules:
  - {name: flood, on: message, if: counters.msgs > 5, actions: [{mute: 10m}], budget: {actions: 5, per: 1m}}
  - {name: chatty-newcomer, on: member_joined, if: counters.msgs > 100, actions: [strike]}
  - {name: night-links, on: message, mode: night, if: len(message.urls) > 0, verdict: block}
  - {name: both, on: [message, member_joined], if: counters.joins > 10, actions: [strike]}
`)
	names := func(rs []*Rule) []string {
		out := []string{}
		for _, r := range rs {
			out = append(out, r.Name)
		}
		return out
	}
	uses := func(cs []CounterUse) []string {
		out := []string{}
		for _, c := range cs {
			out = append(out, fmt.Sprintf("%s touch=%v", c.Counter.Name, c.Touch))
		}
		return out
	}
	tests := []struct {
		kind      Kind
		rules     []string
		counters  []string
		budgeted  []string
		usesModes bool
	}{
		{Message, []string{"flood", "night-links", "both"}, []string{"msgs touch=true", "joins touch=false"}, []string{"flood"}, true},
		{MemberJoined, []string{"chatty-newcomer", "both"}, []string{"msgs touch=false", "joins touch=true"}, []string{}, false},
		{Invite, []string{}, []string{"unused touch=true"}, []string{}, false},
		{JoinRequest, []string{}, []string{}, []string{}, false},
	}
	for _, tt := range tests {
		t.Run(string(tt.kind), func(t *testing.T) {
			p := set.Plan(tt.kind)
			if p == nil || p.Kind != tt.kind {
				t.Fatalf("Plan(%s) = %+v", tt.kind, p)
			}
			if got := names(p.Rules); !reflect.DeepEqual(got, tt.rules) {
				t.Errorf("rules = %q, want %q", got, tt.rules)
			}
			if got := uses(p.Counters); !reflect.DeepEqual(got, tt.counters) {
				t.Errorf("counters = %q, want %q", got, tt.counters)
			}
			if got := names(p.Budgeted); !reflect.DeepEqual(got, tt.budgeted) {
				t.Errorf("budgeted = %q, want %q", got, tt.budgeted)
			}
			if p.UsesModes != tt.usesModes {
				t.Errorf("UsesModes = %v, want %v", p.UsesModes, tt.usesModes)
			}
		})
	}
	if got := set.Rule("flood").Budget; got == nil || got.Actions != 5 || got.Per != time.Minute {
		t.Errorf("flood budget = %+v, want 5 per minute", got)
	}
	if got := set.Rule("chatty-newcomer").Counters(); !reflect.DeepEqual(got, []string{"msgs"}) {
		t.Errorf("chatty-newcomer reads %q, want [msgs]", got)
	}
}

func TestExemptions(t *testing.T) {
	tests := []struct {
		line      string // the exempt: line, or "" for none
		exempt    []Role
		notExempt []Role
	}{
		{"", []Role{RoleAppAdmin, RoleOwner, RoleAdmin}, nil},
		{"exempt: default", []Role{RoleAppAdmin, RoleOwner, RoleAdmin}, nil},
		{"exempt: none", nil, []Role{RoleOwner, RoleAdmin, RoleAppAdmin}},
		{"exempt: []", nil, []Role{RoleOwner, RoleAdmin}},
		{"exempt: [owner]", []Role{RoleOwner}, []Role{RoleAdmin}},
		{"exempt: owner", []Role{RoleOwner}, []Role{RoleAdmin}},
		{"exempt: [owner, admin]", []Role{RoleOwner, RoleAdmin}, nil},
	}
	for _, tt := range tests {
		name := tt.line
		if name == "" {
			name = "no exempt key"
		}
		t.Run(name, func(t *testing.T) {
			set := mustParse(t, behaviourHeader+"  - name: t\n    on: message\n    if: \"true\"\n    verdict: block\n    "+tt.line+"\n")
			r := set.Rule("t")
			for _, role := range tt.exempt {
				if !r.IsExempt(role) {
					t.Errorf("%s is not exempt; exempt = %q", role, r.Exempt)
				}
			}
			for _, role := range append([]Role{RoleMember}, tt.notExempt...) {
				if r.IsExempt(role) {
					t.Errorf("%s is exempt; exempt = %q", role, r.Exempt)
				}
			}
			applies := r.AppliesToRoles()
			for _, role := range applies {
				if r.IsExempt(role) {
					t.Errorf("AppliesToRoles() = %q lists the exempt role %s", applies, role)
				}
			}
			for _, role := range []Role{RoleOwner, RoleAdmin} {
				if !r.IsExempt(role) && !slices.Contains(applies, role) {
					t.Errorf("AppliesToRoles() = %q lacks %s, which is not exempt", applies, role)
				}
			}
		})
	}
}

func TestVersionFollowsTheContent(t *testing.T) {
	src := ruleIf(`user.id == "x"`)
	a, b := mustParse(t, src), mustParse(t, src)
	c := mustParse(t, src+"# a comment changes the file\n")
	if a.Version != b.Version {
		t.Errorf("the same file gave versions %s and %s", a.Version, b.Version)
	}
	if a.Version == c.Version {
		t.Errorf("a changed file kept version %s", a.Version)
	}
	if len(a.Version) != 12 || strings.Trim(a.Version, "0123456789abcdef") != "" {
		t.Errorf("version %q is not 12 hex digits", a.Version)
	}
	if a.File != "rules.yaml" {
		t.Errorf("File = %q", a.File)
	}
}

func TestVariablesListsWhatExpressionsMayRead(t *testing.T) {
	got := Variables()
	documented := []string{"event", "group.id", "group.type", "user.id", "user.role", "user.strikes", "operator.id",
		"message.text", "message.types", "message.urls", "message.mentions", "message.at_all", "apply.msg", "now",
		"counters.NAME", "lists.NAME"}
	for _, name := range documented {
		found := false
		for _, v := range got {
			found = found || v == name
		}
		if !found {
			t.Errorf("Variables() lacks %s: %q", name, got)
		}
	}
	for i, v := range got {
		if strings.Contains(v, "#") {
			t.Errorf("Variables() shows the internal name %s", v)
		}
		if i > 0 && i < len(got)-2 && got[i-1] > v {
			t.Errorf("Variables() is not sorted at %s", v)
		}
	}
	if got[len(got)-2] != "counters.NAME" || got[len(got)-1] != "lists.NAME" {
		t.Errorf("Variables() should end with counters.NAME, lists.NAME: %q", got)
	}
	// Every variable listed compiles.
	for _, v := range got[:len(got)-2] {
		if _, err := Parse("r.yaml", []byte(ruleIf(v+" != nil"))); err != nil {
			t.Errorf("%s does not compile: %v", v, err)
		}
	}
}

func TestKinds(t *testing.T) {
	for _, k := range Kinds() {
		if !k.Valid() {
			t.Errorf("%s is not valid", k)
		}
		back, ok := KindOf(k.Command())
		if !ok || back != k {
			t.Errorf("KindOf(%s.Command()) = %s, %v", k, back, ok)
		}
		if (VerdictsFor(k) == nil) != k.IsAfter() {
			t.Errorf("%s: after %v but verdicts %q", k, k.IsAfter(), VerdictsFor(k))
		}
		for _, v := range VerdictsFor(k) {
			if !v.Allowed(k) {
				t.Errorf("%s is listed for %s but not allowed", v, k)
			}
			if !v.Stricter(None, k) {
				t.Errorf("%s is not stricter than no verdict for %s", v, k)
			}
		}
		vs := VerdictsFor(k)
		for i := 1; i < len(vs); i++ {
			if !vs[i].Stricter(vs[i-1], k) || vs[i-1].Stricter(vs[i], k) {
				t.Errorf("%s should be stricter than %s for %s", vs[i], vs[i-1], k)
			}
		}
	}
	if _, ok := KindOf(tim.CmdRequestOverLimit); ok {
		t.Error("Alert.RequestOverLimit is evaluated by rules")
	}
	if Kind("nope").Valid() || Kind("nope").Command() != "" {
		t.Error("an unknown kind is valid")
	}
	refuses := map[Verdict]bool{Reject: true, Refuse: true, Block: true, Drop: true, Approve: false, Hold: false, Allow: false, Rewrite: false, None: false}
	for v, want := range refuses {
		if v.Refuses() != want {
			t.Errorf("%q.Refuses() = %v, want %v", v, !want, want)
		}
	}
}

func TestKeptTestEventsUseTheShorthands(t *testing.T) {
	set := mustParse(t, behaviourHeader+`  - name: per-kind
    on: [join_request, invite, message, message_sent, member_joined, member_left]
    if: "true"
    actions: [strike]
    tests:
      - {event: {user: u1, apply_msg: please}}
      - {event: {user: u2, operator: op, CallbackCommand: Group.CallbackBeforeInviteJoinGroup}}
      - {event: {user: u3, text: hi, CallbackCommand: Group.CallbackBeforeSendMsg}}
      - {event: {user: u4, CallbackCommand: Group.CallbackAfterSendMsg}}
      - {event: {user: u5, CallbackCommand: Group.CallbackAfterNewMemberJoin}}
      - {event: {user: u6, CallbackCommand: Group.CallbackAfterMemberExit}}
      - {event: {}}
`)
	tests := set.Rule("per-kind").Tests
	if len(tests) != 7 {
		t.Fatalf("%d tests compiled, want 7", len(tests))
	}
	checks := []struct {
		kind Kind
		user func(ev tim.Event) string
		want string
	}{
		{JoinRequest, func(ev tim.Event) string { e := ev.(*tim.BeforeApplyJoinGroup); return e.Requestor + "|" + e.ApplyMsg }, "u1|please"},
		{Invite, func(ev tim.Event) string {
			e := ev.(*tim.BeforeInviteJoinGroup)
			return e.DestinationMembers[0].Account + "|" + e.Operator
		}, "u2|op"},
		{Message, func(ev tim.Event) string {
			e := ev.(*tim.BeforeSendMsg)
			return e.From + "|" + strings.Join(tim.Texts(e.MsgBody), "")
		}, "u3|hi"},
		{MessageSent, func(ev tim.Event) string { return ev.(*tim.AfterSendMsg).From }, "u4"},
		{MemberJoined, func(ev tim.Event) string { return ev.(*tim.AfterNewMemberJoin).NewMemberList[0].Account }, "u5"},
		{MemberLeft, func(ev tim.Event) string { return ev.(*tim.AfterMemberExit).ExitMemberList[0].Account }, "u6"},
		{JoinRequest, func(ev tim.Event) string { return ev.(*tim.BeforeApplyJoinGroup).Requestor }, "tester"},
	}
	for i, c := range checks {
		tt := tests[i]
		if tt.Kind() != c.kind {
			t.Errorf("test %d is a %s event, want %s", i+1, tt.Kind(), c.kind)
			continue
		}
		if got := c.user(tt.Event); got != c.want {
			t.Errorf("test %d: got %q, want %q", i+1, got, c.want)
		}
		if h := tt.Event.Header(); h.GroupID != "@TGS#test" || h.Type != tim.GroupPublic {
			t.Errorf("test %d: group %q type %q, want the defaults", i+1, h.GroupID, h.Type)
		}
		if tt.Name != strconv.Itoa(i+1) {
			t.Errorf("an unnamed test is called %q, want %d", tt.Name, i+1)
		}
		var decoded map[string]any
		if err := json.Unmarshal(tt.Body, &decoded); err != nil || decoded["CallbackCommand"] != c.kind.Command() {
			t.Errorf("test %d: body %s does not carry the command", i+1, tt.Body)
		}
	}
}

func TestSummaryCountsWhatTheSetHolds(t *testing.T) {
	set := mustParse(t, ruleIf("true"))
	// member_joined has a plan, for its counter, but no rules.
	want := "1 rules (message=1), 2 counters, 4 lists, 0 schedules, version " + set.Version
	if got := set.Summary(); got != want {
		t.Errorf("Summary() = %q, want %q", got, want)
	}
}

// TestPlanFetchesCountersEveryExpressionReads checks that a counter read only
// by an action's duration or a rewrite is still fetched for the kind: policy
// reads exactly the plan's counters, and a counter it did not fetch is 0.
func TestPlanFetchesCountersEveryExpressionReads(t *testing.T) {
	set := mustParse(t, `version: 1
counters:
  - {name: msgs, on: message, key: user.id, window: 10m}
  - {name: links, on: message, key: user.id, window: 1h}
  - {name: joins, on: member_joined, key: group.id, window: 1m}
rules:
  - name: long-mute-for-talkers
    on: member_joined
    if: "true"
    actions: [{mute: 'duration("1m") * counters.msgs'}]
  - name: rewrite-counting
    on: message
    if: counters.joins > 0
    verdict: rewrite
    rewrite: {text: 'string(counters.links) + " links"'}
`)
	tests := []struct {
		kind Kind
		want []string
	}{
		{MemberJoined, []string{"msgs touch=false", "joins touch=true"}},
		{Message, []string{"msgs touch=true", "links touch=true", "joins touch=false"}},
	}
	for _, tt := range tests {
		var got []string
		for _, c := range set.Plan(tt.kind).Counters {
			got = append(got, fmt.Sprintf("%s touch=%v", c.Counter.Name, c.Touch))
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s counters = %q, want %q", tt.kind, got, tt.want)
		}
	}
	if got := set.Rule("rewrite-counting").Counters(); !reflect.DeepEqual(got, []string{"joins", "links"}) {
		t.Errorf("rewrite-counting reads %q, want [joins links]", got)
	}
}

func TestRulesMayShareFieldsThroughMergeKeys(t *testing.T) {
	set := mustParse(t, behaviourHeader+`  - &blocking
    name: blocked-words
    on: message
    if: contains_any(message.text, lists.spam)
    verdict: block
    reply: {code: 10101, text: "Not here."}
  - <<: *blocking
    name: blocked-users
    if: user.id in lists.trusted
`)
	r := set.Rule("blocked-users")
	if r == nil || r.Verdict != Block || r.Reply == nil || r.Reply.Code != 10101 || r.Source != "user.id in lists.trusted" {
		t.Errorf("the merged rule = %+v", r)
	}
}

func TestExpressionDurationsMustBePositive(t *testing.T) {
	set, err := Parse("t.yaml", []byte(`version: 1
rules:
  - {name: t, on: message, if: 'true', actions: [{mute: 'duration("10m") * (3 - user.strikes)'}]}
`))
	if err != nil {
		t.Fatal(err)
	}
	e := set.Env()
	defer e.Release()
	e.Fill(&Input{Kind: Message})
	for _, tt := range []struct {
		strikes int
		want    int64
		wantErr bool
	}{{0, 1800, false}, {2, 600, false}, {3, 0, true}, {5, 0, true}} {
		e.SetUser("u", RoleMember, tt.strikes)
		got, err := set.Rule("t").Actions[0].Resolve(e)
		if (err != nil) != tt.wantErr || got.Seconds != tt.want && !tt.wantErr {
			t.Errorf("strikes %d: seconds %d err %v; want %d (error %v)", tt.strikes, got.Seconds, err, tt.want, tt.wantErr)
		}
		if tt.wantErr && (err == nil || !strings.Contains(err.Error(), "must be positive")) {
			t.Errorf("strikes %d: error %v, want one saying a duration must be positive", tt.strikes, err)
		}
	}
}
