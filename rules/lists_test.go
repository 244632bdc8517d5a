package rules

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// writeRules writes a rule file and list files (name -> content) into a new
// folder and returns the rule file's path.
func writeRules(t *testing.T, rules string, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(dir, "rules.yaml")
	if err := os.WriteFile(path, []byte(rules), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

const fileListRules = `version: 1
lists:
  banned: {file: lists/banned.txt}
rules:
  - {name: banned-words, on: message, if: 'contains_any(message.text, lists.banned)', verdict: block}
`

// matches evaluates rule name of set on a message with text.
func matches(t *testing.T, set *Set, name, text string) bool {
	t.Helper()
	e := set.Env()
	defer e.Release()
	in := sampleInput()
	in.Text = text
	e.Fill(&in)
	ok, err := set.Rule(name).Match(e)
	if err != nil {
		t.Fatal(err)
	}
	return ok
}

func TestListsAreReadFromFiles(t *testing.T) {
	path := writeRules(t, fileListRules, map[string]string{
		"lists/banned.txt": "\uFEFF# spam words, one a line\nfree crypto\n\n  免费领取  \n\\#hashtag\n",
	})
	set, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := set.Lists["banned"], []string{"free crypto", "免费领取", "#hashtag"}; !reflect.DeepEqual(got, want) {
		t.Errorf("lists.banned = %q, want %q", got, want)
	}
	if got := set.ListFiles(); len(got) != 1 || got[0] != filepath.Join(filepath.Dir(path), "lists/banned.txt") {
		t.Errorf("ListFiles() = %q", got)
	}
	for text, want := range map[string]bool{
		"get FREE CRYPTO now": true,
		"快来免費領取":              true,
		"see #HashTag":        true,
		"good morning":        false,
		"# spam words":        false,
	} {
		if got := matches(t, set, "banned-words", text); got != want {
			t.Errorf("%q: matched %v, want %v", text, got, want)
		}
	}
}

func TestAListFileIsReadAgainWithTheRules(t *testing.T) {
	path := writeRules(t, fileListRules, map[string]string{"lists/banned.txt": "casino\n"})
	first, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(filepath.Dir(path), "lists/banned.txt"), []byte("casino\nairdrop\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	second, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if matches(t, first, "banned-words", "airdrop here") || !matches(t, second, "banned-words", "airdrop here") {
		t.Error("the new word is not found after the reload, or was found before it")
	}
	if first.Version == second.Version {
		t.Errorf("the version %s did not change with the list file", first.Version)
	}
}

func TestListProblemsNameTheFileAndLine(t *testing.T) {
	rules := `version: 1
lists:
  banned: {file: lists/banned.txt, words: [extra, casino, "\u200b"]}
  missing: {file: lists/nope.txt}
  odd: {file: lists/banned.txt, normalize: {chinese: s2t}}
  empty: {}
  typo: {words: [x], normalise: {case: false}}
  device: {file: /dev/null}
rules:
  - {name: r, on: message, if: 'contains_any(message.text, lists.banned) || contains_any(message.text, lists.odd)', verdict: block}
`
	path := writeRules(t, rules, map[string]string{
		"lists/banned.txt": "casino\nfree\n\ncasino\nＦＲＥＥ\n免费\n免費\n...\n\xff\n",
	})
	_, err := Load(path)
	if err == nil {
		t.Fatal("Load accepted the lists")
	}
	file := filepath.Join(filepath.Dir(path), "lists/banned.txt")
	msg := err.Error()
	for _, want := range []string{
		file + `:4: list "banned": repeats line 1 ("casino")`,
		file + `:5: list "banned": "ＦＲＥＥ" is the same as "free" after normalization`,
		`(` + file + `:2); keep one`,
		file + `:7: list "banned": "免費" is the same as "免费" after normalization`,
		file + `:9: list "banned": is not UTF-8 text`,
		path + `:3: list "banned": words: "casino" is already in the list (` + file + `:1)`,
		path + `:3: list "banned": "\u200b" is empty after normalization`,
		path + `:4: list "missing": file: ` + filepath.Join(filepath.Dir(path), "lists/nope.txt") + `: no such file`,
		path + `:5: list "odd": normalize: chinese: "s2t" is not a conversion`,
		path + `:6: list "empty": give file: PATH`,
		path + `:8: list "device": file: /dev/null is not a regular file`,
		`lists.typo.normalise: unknown key (did you mean "normalize"?)`,
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("the error lacks %s\n%s", want, msg)
		}
	}
	// The rule file's own problems come first, then each list file's.
	if i, j := strings.Index(msg, path+":3:"), strings.Index(msg, file+":4:"); i < 0 || j < 0 || i > j {
		t.Errorf("problems out of order:\n%s", msg)
	}
	// "..." is only separators once those are skipped: with the defaults it
	// is a word like any other.
	if strings.Contains(msg, `"..."`) {
		t.Errorf("... was refused under the default normalization:\n%s", msg)
	}
}

func TestManyBadLinesAreCounted(t *testing.T) {
	var b strings.Builder
	for range 50 {
		b.WriteString("same\n")
	}
	path := writeRules(t, fileListRules, map[string]string{"lists/banned.txt": b.String()})
	_, err := Load(path)
	if err == nil {
		t.Fatal("Load accepted 49 repeated lines")
	}
	if n := strings.Count(err.Error(), "repeats line 1"); n != maxWordProblems {
		t.Errorf("%d repeats reported, want %d", n, maxWordProblems)
	}
	if !strings.Contains(err.Error(), "and 29 more problems like these") {
		t.Errorf("the rest are not counted:\n%s", err)
	}
}

func TestInlineListsKeepTheirOldChecks(t *testing.T) {
	// Empty and repeated words in a list written as a sequence were
	// accepted (and skipped by contains_any); they still are.
	set := mustParse(t, `version: 1
lists:
  w: ["", spam, Spam, spam]
rules:
  - {name: r, on: message, if: 'contains_any(message.text, lists.w)', verdict: block}
`)
	if !matches(t, set, "r", "SPAM!") || matches(t, set, "r", "ham") {
		t.Error("the inline list does not match as it did")
	}
}

func TestNormalizationIsSetPerList(t *testing.T) {
	set := mustParse(t, `version: 1
lists:
  plain: {words: [free], normalize: none}
  loose: {words: [free, 免费], normalize: {separators: true, digits: true}}
  strict_case: {words: [Free], normalize: {case: false}}
  simplified_only: {words: [免费], normalize: {chinese: none}}
rules:
  - {name: plain, on: message, if: 'contains_any(message.text, lists.plain)', verdict: block}
  - {name: loose, on: message, if: 'contains_any(message.text, lists.loose)', verdict: block}
  - {name: strict_case, on: message, if: 'contains_any(message.text, lists.strict_case)', verdict: block}
  - {name: simplified_only, on: message, if: 'contains_any(message.text, lists.simplified_only)', verdict: block}
`)
	tests := []struct {
		rule, text string
		want       bool
	}{
		{"plain", "free", true},
		{"plain", "FREE", false},
		{"plain", "ｆｒｅｅ", false},
		{"loose", "f.r.3.e", true},
		{"loose", "免 費", true},
		{"loose", "fr ee", false},
		{"strict_case", "Ｆree", true},
		{"strict_case", "free", false},
		{"simplified_only", "免费", true},
		{"simplified_only", "免費", false},
	}
	for _, tt := range tests {
		if got := matches(t, set, tt.rule, tt.text); got != tt.want {
			t.Errorf("%s on %q = %v, want %v", tt.rule, tt.text, got, tt.want)
		}
	}
}

// TestWordFunctions runs each word function as a rewrite text, printed as
// JSON.
func TestWordFunctions(t *testing.T) {
	tests := []struct {
		expr, text string
		want       any
	}{
		{`matched_words(message.text, lists.spam)`, "ＦＲＥＥ crypto at the c.a.s.i.n.o, 免費!", []string{"free crypto", "casino", "免费"}},
		{`matched_words(message.text, lists.spam)`, "hello", []string{}},
		{`len(matched_words(message.text, lists.spam)) > 0`, "CASINO", true},
		{`mask(message.text, lists.spam)`, "ＦＲＥＥ crypto at the c.a.s.i.n.o, 免費!", "*********** at the ***********, **!"},
		{`mask(message.text, lists.spam, "#")`, "go casino", "go ######"},
		{`mask(message.text, lists.plain)`, "you IDIOT", "you *****"},
		{`mask(apply.msg, lists.plain)`, "", "let me in"},
		{`contains_any(message.text, ["crypto"])`, "ＣＲＹＰＴＯ", true},
		{`contains_any(message.text, concat(lists.spam, ["extra"]))`, "EXTRA", true},
		{`contains_any(message.text, concat(lists.spam, ["extra"]))`, "none", false},
	}
	for _, tt := range tests {
		t.Run(tt.expr, func(t *testing.T) {
			s := mustParse(t, `version: 1
lists:
  spam: {words: [free crypto, 免费, casino], normalize: {separators: true}}
  plain: [idiot]
rules:
  - {name: t, on: message, if: "true", verdict: rewrite, rewrite: {text: 'toJSON(`+tt.expr+`)'}}
`)
			e := s.Env()
			defer e.Release()
			in := sampleInput()
			in.Text = tt.text
			e.Fill(&in)
			out, err := e.run(s.Rule("t").Rewrite.text)
			if err != nil {
				t.Fatal(err)
			}
			var got any
			if err := json.Unmarshal([]byte(out.(string)), &got); err != nil {
				t.Fatal(err)
			}
			want := tt.want
			if ws, ok := want.([]string); ok {
				want = toAny(ws)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("%s on %q = %v, want %v", tt.expr, tt.text, got, want)
			}
		})
	}
}

func toAny(ws []string) []any {
	out := make([]any, len(ws))
	for i, w := range ws {
		out[i] = w
	}
	return out
}

func TestAnyOfALowerCaseListRunsThroughTheAutomaton(t *testing.T) {
	set := mustParse(t, behaviourHeader+"  - {name: t, on: message, if: 'any(lists.spam, {lower(message.text) contains #})', verdict: block}\n")
	r := set.Rule("t")
	if !hasIdent(r.cond, "lists.spam#words") || hasIdent(r.cond, "lists.spam") {
		t.Errorf("the condition was not rewritten into contains_any: %s", r.cond.prog.Node())
	}
	if set.WordList("spam") == nil {
		t.Fatal("lists.spam was not compiled")
	}
	// The same words, found also when full-width or hidden.
	for text, want := range map[string]bool{"FREE CRYPTO": true, "ＦＲＥＥ ＣＲＹＰＴＯ": true, "fr\u200bee crypto": true, "free": false} {
		if got := matches(t, set, "t", text); got != want {
			t.Errorf("%q: %v, want %v", text, got, want)
		}
	}
}

func TestAWordFunctionNeedsAListName(t *testing.T) {
	for src, want := range map[string]string{
		`len(matched_words(message.text, ["a"])) > 0`:         "the second argument must name a list",
		`mask(message.text, message.mentions) == ""`:          "the second argument must name a list",
		`len(matched_words(message.text, lists.nope)) > 0`:    "lists.nope is not declared",
		`contains_any(message.text, lists.spam, lists.spam)`:  "contains_any takes a text and a list",
		`mask(message.text, lists.spam, "#", "x") == ""`:      "mask takes a text, a list and optionally a mask character",
		`matched_words(message.text, lists.spam, "x") == nil`: "matched_words takes a text and a list",
	} {
		_, problems := parseError(t, "rules.yaml", ruleIf(src))
		if len(problems) != 1 || !strings.Contains(problems[0].Reason, want) {
			t.Errorf("%s: %v, want one problem saying %s", src, problems, want)
		}
	}
}

func TestAListWithNothingAfterItIsEmpty(t *testing.T) {
	set := mustParse(t, `version: 1
lists:
  empty:
  also: ~
rules:
  - {name: r, on: message, if: 'contains_any(message.text, lists.empty) || user.id in lists.also', verdict: block}
`)
	if len(set.Lists["empty"]) != 0 || len(set.Lists["also"]) != 0 || matches(t, set, "r", "anything") {
		t.Errorf("lists %q, want two empty lists that match nothing", set.Lists)
	}
}

func TestATextIsNormalizedOncePerEventAndNormalization(t *testing.T) {
	set := mustParse(t, `version: 1
lists:
  a: {words: [alpha]}
  b: {words: [beta]}
  c: {words: [gamma], normalize: {separators: true}}
rules:
  - {name: r1, on: message, if: 'contains_any(message.text, lists.a)', verdict: block}
  - {name: r2, on: message, if: 'contains_any(message.text, lists.b) || contains_any(message.text, lists.a)', verdict: block}
  - {name: r3, on: message, if: 'contains_any(message.text, lists.c)', verdict: block}
  - {name: r4, on: message, if: 'len(matched_words(message.text, lists.b)) > 0', verdict: block}
  - {name: r5, on: message, if: 'contains_any(apply.msg, lists.a)', verdict: block}
  - {name: r6, on: message, if: 'contains_any(message.text, lists.a) && contains_any(message.text, lists.c)', verdict: block}
`)
	e := set.Env()
	defer e.Release()
	for i, text := range []string{"ＧＡＭＭＡ", "g.a.m.m.a and BETA"} {
		before := e.words.scratch.Normalized()
		in := sampleInput()
		in.Text, in.ApplyMsg = text, strings.Repeat("let me in ", i+1)
		e.Fill(&in)
		for _, r := range set.Plan(Message).Rules {
			if _, err := r.Match(e); err != nil {
				t.Fatal(err)
			}
		}
		// message.text under two normalizations, apply.msg under one.
		if got := e.words.scratch.Normalized() - before; got != 3 {
			t.Errorf("event %d: %d texts normalized, want 3", i, got)
		}
		if !set.Rule("r3").mustMatch(t, e) {
			t.Errorf("event %d: r3 does not match %q", i, text)
		}
	}
}

func (r *Rule) mustMatch(t *testing.T, e *Env) bool {
	t.Helper()
	ok, err := r.Match(e)
	if err != nil {
		t.Fatal(err)
	}
	return ok
}

func TestAMaskOfAListMasksTheOriginalCharacters(t *testing.T) {
	set := mustParse(t, `version: 1
lists:
  slurs: {words: [idiot, 笨蛋], normalize: {separators: true}}
rules:
  - {name: mask, on: message, if: 'contains_any(message.text, lists.slurs)', verdict: rewrite, rewrite: {mask: lists.slurs}}
  - {name: mask-hash, on: message, if: "true", verdict: rewrite, rewrite: {mask: lists.slurs, with: "#"}}
`)
	e := set.Env()
	defer e.Release()
	in := sampleInput()
	e.Fill(&in)
	got, err := set.Rule("mask").Rewrite.Apply(e, body(t, `[{"MsgType": "TIMTextElem", "MsgContent": {"Text": "you ＩＤＩＯＴ, i.d.i.o.t"}}, {"MsgType": "TIMTextElem", "MsgContent": {"Text": "笨 蛋!"}}]`))
	if err != nil {
		t.Fatal(err)
	}
	if got[0].MsgContent.Text != "you *****, *********" || got[1].MsgContent.Text != "***!" {
		t.Errorf("masked %q and %q", got[0].MsgContent.Text, got[1].MsgContent.Text)
	}
	got, err = set.Rule("mask-hash").Rewrite.Apply(e, body(t, `[{"MsgType": "TIMTextElem", "MsgContent": {"Text": "IDIOT"}}]`))
	if err != nil || got[0].MsgContent.Text != "#####" {
		t.Errorf("masked %v, %v", got, err)
	}
}
