package rules

import (
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

var testPlaceholders = Placeholders{
	User: "alice", Rule: "spam", Words: []string{"free crypto", "t.me/"},
	Until: time.Date(2026, 11, 21, 12, 10, 0, 0, time.FixedZone("CST", 8*3600)),
}

func TestPlaceholdersAreFilled(t *testing.T) {
	forever := testPlaceholders
	forever.Forever = true
	for _, c := range []struct {
		name string
		text string
		p    Placeholders
		want string
	}{
		{"a text without braces is kept as it is", "Please be kind.", testPlaceholders, "Please be kind."},
		{"each placeholder is filled", "{user}: {rule} found {words}; muted until {until}.", testPlaceholders,
			"alice: spam found free crypto, t.me/; muted until 2026-11-21T04:10:00Z."},
		{"a placeholder may repeat and touch another", "{user}{user}-{rule}", testPlaceholders, "alicealice-spam"},
		{"doubled braces are braces", "{{user}} is {user}; }} and {{", testPlaceholders, "{user} is alice; } and {"},
		{"a permanent mute lasts forever", "until {until}", forever, "until forever"},
		{"no words found is an empty text", "[{words}]", Placeholders{}, "[]"},
		{"placeholders in Chinese text", "{user}，你被禁言至 {until}", testPlaceholders, "alice，你被禁言至 2026-11-21T04:10:00Z"},
	} {
		t.Run(c.name, func(t *testing.T) {
			tpl, err := parseTemplate(c.text)
			if err != nil {
				t.Fatal(err)
			}
			got := c.text
			if tpl != nil {
				got = tpl.render(c.p)
			}
			if got != c.want {
				t.Errorf("%q gave %q, want %q", c.text, got, c.want)
			}
		})
	}
}

func TestPlaceholderMistakesAreRefused(t *testing.T) {
	for _, c := range []struct {
		name, text, reason string
	}{
		{"an unknown name", "hello {name}", "{name} is not a placeholder"},
		{"a placeholder in another case", "{User}", "{User} is not a placeholder"},
		{"spaces inside the braces", "{ user }", "{ user } is not a placeholder"},
		{"an empty pair of braces", "{}", "{} is not a placeholder"},
		{"a brace never closed", "muted {until", "not closed"},
		{"a brace opened inside another", "{us{er}", "not closed"},
		{"a lone closing brace", "smile :}", "closes nothing"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := parseTemplate(c.text)
			if err == nil || !strings.Contains(err.Error(), c.reason) {
				t.Errorf("%q: error %v, want one saying %q", c.text, err, c.reason)
			}
		})
	}
}

func TestPlaceholderMistakesAreReportedWithTheRule(t *testing.T) {
	for _, c := range []struct {
		name string
		rule string
		want wantProblem
	}{
		{"an unknown placeholder in a warn text",
			`  - {name: w, on: message, if: 'true', actions: [{warn: "Hi {nick}"}]}`,
			wantProblem{11, "rule", "w", "actions[0]", "warn: {nick} is not a placeholder"}},
		{"an unknown placeholder in a reply text",
			`  - {name: r, on: message, if: 'true', verdict: block, reply: {code: 10101, text: "{reason}"}}`,
			wantProblem{11, "rule", "r", "reply.text", "{reason} is not a placeholder"}},
		{"{until} in a rule that mutes no one",
			`  - {name: u, on: message, if: 'true', actions: [{warn: "muted until {until}"}]}`,
			wantProblem{11, "rule", "u", "actions[0]", "{until} needs a mute, ban or mute_group action"}},
		{"{words} in a rule that looks up no list",
			`  - {name: x, on: message, if: 'true', verdict: block, reply: {code: 10101, text: "no {words}"}}`,
			wantProblem{11, "rule", "x", "reply.text", "{words} needs a list"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, problems := parseError(t, "rules.yaml", header+c.rule+"\n")
			if !slices.ContainsFunc(problems, c.want.matches) {
				t.Errorf("no problem like %+v in %v", c.want, problems)
			}
		})
	}
}

func TestPlaceholdersAcceptedWhereTheRuleCanFillThem(t *testing.T) {
	src := header + `  - name: spam
    on: message
    if: contains_any(message.text, lists.words) || matched_words(message.text, lists.trusted) != []
    verdict: block
    reply: {code: 10101, text: "{user}: {words} ({rule}) until {until}"}
    actions: [{mute: 10m}, {warn: "{user} is muted until {until} for {words}; {{braces}}"}]
  - {name: plain, on: message, if: 'false', actions: [{warn: "braces {{ and }} here"}]}
`
	set, err := Parse("rules.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	r := set.Rule("spam")
	if !r.LooksUpWords() || !r.HasPlaceholders() {
		t.Fatalf("LooksUpWords %v, HasPlaceholders %v; want both", r.LooksUpWords(), r.HasPlaceholders())
	}
	if !slices.Equal(r.wordListNames, []string{"trusted", "words"}) {
		t.Errorf("word lists %v, want [trusted words]", r.wordListNames)
	}
	e := set.Env()
	defer e.Release()
	e.Fill(&Input{Kind: Message, Text: "SPAM from bob and alice"})
	if got := r.MatchedWords(e); !slices.Equal(got, []string{"alice", "bob", "spam"}) {
		t.Errorf("matched words %v, want [alice bob spam]", got)
	}
	now := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	until, forever := UntilOf([]Resolved{{Kind: ActWarn}, {Kind: ActMute, Seconds: 600}}, now)
	p := Placeholders{User: "eve", Rule: r.Name, Words: r.MatchedWords(e), Until: until, Forever: forever}
	if got := r.FillReply(p).Text; got != "eve: alice, bob, spam (spam) until 2026-11-21T12:10:00Z" {
		t.Errorf("reply %q", got)
	}
	res := Resolved{Kind: ActWarn, Text: r.Actions[1].Text}
	r.Actions[1].Fill(&res, p)
	if res.Text != "eve is muted until 2026-11-21T12:10:00Z for alice, bob, spam; {braces}" {
		t.Errorf("warn %q", res.Text)
	}
	if set.Rule("plain").HasPlaceholders() != true {
		t.Error("a text with escaped braces must be rendered to unescape them")
	}
}

func TestUntilIsTheEndOfTheLongestMute(t *testing.T) {
	now := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		name    string
		actions []Resolved
		until   time.Time
		forever bool
	}{
		{"no mute", []Resolved{{Kind: ActWarn}, {Kind: ActStrike, N: 1}}, time.Time{}, false},
		{"the longest of a mute and a group mute", []Resolved{{Kind: ActMute, Seconds: 60}, {Kind: ActMuteGroup, Seconds: 3600}}, now.Add(time.Hour), false},
		{"a ban", []Resolved{{Kind: ActBan, Seconds: 120}}, now.Add(2 * time.Minute), false},
		{"a permanent mute", []Resolved{{Kind: ActMute, Seconds: 60}, {Kind: ActMute, Seconds: PermanentSeconds}}, time.Time{}, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			until, forever := UntilOf(c.actions, now)
			if !until.Equal(c.until) || forever != c.forever {
				t.Errorf("until %v forever %v, want %v %v", until, forever, c.until, c.forever)
			}
		})
	}
}

// FuzzPlaceholders checks the text parser: it never panics; a text it
// accepts renders without the placeholders' braces and its literal parts
// come back through escapeText; any text escaped parses back to itself.
func FuzzPlaceholders(f *testing.F) {
	for _, s := range []string{"", "plain", "{user}", "{{", "}}", "{", "}", "{until}{words}{rule}", "{{user}}", "a{b}c", "{us{er}", "禁言至{until}", "\xff{user}"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tpl, err := parseTemplate(s)
		if err == nil && tpl != nil {
			p := Placeholders{User: "U", Rule: "R", Words: []string{"W"}, Until: time.Unix(0, 0)}
			got := tpl.render(p)
			// Rebuild the source from the parts: literals escaped,
			// placeholders named; it must read as the same text.
			var src strings.Builder
			var want strings.Builder
			for _, part := range tpl.parts {
				if part.name == "" {
					src.WriteString(escapeText(part.lit))
					want.WriteString(part.lit)
					continue
				}
				src.WriteString("{" + part.name + "}")
				want.WriteString(map[string]string{PhUser: "U", PhRule: "R", PhWords: "W", PhUntil: "1970-01-01T00:00:00Z"}[part.name])
			}
			if src.String() != s {
				t.Errorf("%q parsed into parts that read back as %q", s, src.String())
			}
			if got != want.String() {
				t.Errorf("%q rendered %q, want %q", s, got, want.String())
			}
		}
		if err == nil && tpl == nil && strings.ContainsAny(s, "{}") {
			t.Errorf("%q holds braces but was taken as plain text", s)
		}
		back, err := parseTemplate(escapeText(s))
		if err != nil {
			t.Fatalf("escaped %q does not parse: %v", s, err)
		}
		got := s
		if back != nil {
			got = back.render(Placeholders{})
		}
		if got != s {
			t.Errorf("escaped %q reads back as %q", s, got)
		}
		if utf8.ValidString(s) && !utf8.ValidString(got) {
			t.Errorf("valid UTF-8 %q became invalid: %q", s, got)
		}
	})
}
