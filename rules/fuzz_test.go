package rules

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// FuzzParseRules checks that Parse never panics, that a refusal always comes
// with at least one problem, and that what it accepts can be evaluated.
func FuzzParseRules(f *testing.F) {
	files, err := filepath.Glob("testdata/*.yaml")
	if err != nil {
		f.Fatal(err)
	}
	for _, name := range append(files, exampleFile) {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		set, err := Parse("fuzz.yaml", data)
		if err != nil {
			var re *Error
			if set != nil || !errors.As(err, &re) || len(re.Problems) == 0 {
				t.Fatalf("a refusal without problems: set %v, error %T %v", set, err, err)
			}
			for _, p := range re.Problems {
				if p.Reason == "" {
					t.Fatalf("a problem without a reason: %+v", p)
				}
			}
			return
		}
		if len(set.Version) != 12 {
			t.Fatalf("version %q", set.Version)
		}
		e := set.Env()
		defer e.Release()
		for _, k := range Kinds() {
			p := set.Plan(k)
			in := sampleInput()
			in.Kind = k
			e.Fill(&in)
			for _, r := range p.Rules {
				_, _ = r.Match(e)
				for _, a := range r.Actions {
					_, _ = a.Resolve(e)
				}
				if r.Rewrite != nil {
					_, _ = r.Rewrite.Apply(e, nil)
				}
			}
			for _, c := range p.Counters {
				_, _, _ = c.Counter.KeyFor(e)
			}
		}
	})
}

// FuzzCompileExpr compiles an arbitrary expression as a rule's condition, a
// counter key, a duration, a rewrite text and a mask inside an otherwise
// valid file. None of it may panic, and what compiles may be run.
func FuzzCompileExpr(f *testing.F) {
	set, err := Load(exampleFile)
	if err != nil {
		f.Fatal(err)
	}
	for _, r := range set.Rules {
		f.Add(r.Source)
		for _, a := range r.Actions {
			if a.duration != nil {
				f.Add(a.duration.src)
			}
		}
	}
	for _, c := range set.Counters {
		f.Add(c.key.src)
		if c.cond != nil {
			f.Add(c.cond.src)
		}
	}
	f.Add(`len(matched_words(message.text, lists.spam)) > 1`)
	f.Add(`mask(message.text, lists.spam, "#") != message.text`)
	f.Add(`contains_any(apply.msg, concat(lists.spam, ["x"]))`)
	// More seeds are in testdata/fuzz/FuzzCompileExpr.
	f.Fuzz(func(t *testing.T, src string) {
		q := strconv.Quote(src)
		files := []string{
			ruleIf(src),
			behaviourHeader + "  - {name: t, on: message, if: \"true\", actions: [{mute: " + q + "}]}\n",
			behaviourHeader + "  - {name: t, on: message, if: \"true\", verdict: rewrite, rewrite: {mask: " + q + "}}\n",
			behaviourHeader + "  - {name: t, on: message, if: \"true\", verdict: rewrite, rewrite: {text: " + q + "}}\n",
			"version: 1\ncounters:\n  - {name: c, on: message, window: 1m, key: " + q + "}\n",
		}
		for _, file := range files {
			set, err := Parse("fuzz.yaml", []byte(file))
			if err != nil {
				continue
			}
			e := set.Env()
			in := sampleInput()
			e.Fill(&in)
			for _, r := range set.Rules {
				_, _ = r.Match(e)
				for _, a := range r.Actions {
					_, _ = a.Resolve(e)
				}
				if r.Rewrite != nil {
					_, _ = r.Rewrite.Apply(e, body(t, `[{"MsgType": "TIMTextElem", "MsgContent": {"Text": "free crypto"}}]`))
				}
			}
			for _, c := range set.Counters {
				_, _, _ = c.KeyFor(e)
			}
			e.Release()
		}
	})
}

// FuzzParseCron checks that cron specs never panic the parser and that an
// accepted spec gives times in the future (or none).
func FuzzParseCron(f *testing.F) {
	// The seeds are in testdata/fuzz/FuzzParseCron.
	shanghai, err := LoadTimezone("Asia/Shanghai")
	if err != nil {
		f.Fatal(err)
	}
	start := time.Date(2026, 3, 29, 1, 30, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, spec string) {
		valid := ValidateCron(spec) == nil
		for _, loc := range []*time.Location{time.UTC, shanghai, nil} {
			s, err := ParseCron(spec, loc)
			if valid && err != nil {
				t.Fatalf("ValidateCron accepts %q but ParseCron(%v) refuses it: %v", spec, loc, err)
			}
			if err != nil {
				continue
			}
			if next := s.Next(start); !next.IsZero() && !next.After(start) {
				t.Fatalf("%q: next %v is not after %v", spec, next, start)
			}
		}
	})
}

// FuzzLoadTimezone checks that any name is answered without a panic and
// that "Local" is never accepted.
func FuzzLoadTimezone(f *testing.F) {
	// The seeds are in testdata/fuzz/FuzzLoadTimezone.
	f.Fuzz(func(t *testing.T, name string) {
		loc, err := LoadTimezone(name)
		if err != nil {
			if !strings.Contains(err.Error(), strconv.Quote(name)) {
				t.Fatalf("the error %q does not name %q", err, name)
			}
			return
		}
		if loc == nil || name == "Local" {
			t.Fatalf("LoadTimezone(%q) = %v", name, loc)
		}
	})
}

// FuzzMaskWords checks that masking keeps the number of characters when
// the mask is one character, and leaves a text without the word unchanged.
func FuzzMaskWords(f *testing.F) {
	// The seeds are in testdata/fuzz/FuzzMaskWords.
	f.Fuzz(func(t *testing.T, text, word, with string) {
		if !utf8.ValidString(text) {
			return // callback text comes from JSON, which is valid UTF-8
		}
		out := maskWords(text, []string{word}, with)
		if utf8.RuneCountInString(with) <= 1 && utf8.RuneCountInString(out) != utf8.RuneCountInString(text) {
			t.Fatalf("maskWords(%q, %q, %q) = %q changed the length", text, word, with, out)
		}
		if word == "" || !strings.Contains(strings.ToLower(text), strings.ToLower(word)) {
			if out != text {
				t.Fatalf("maskWords(%q, %q, %q) = %q changed a text without the word", text, word, with, out)
			}
		}
	})
}
