package rules

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestRedactValuesKeepsTheReasonAndDropsTheValues(t *testing.T) {
	tests := []struct {
		name, reason, src, want string
	}{
		{"a word of the message", "invalid operation: int(PRIVATEWORD1)", `int(split(message.text, " ")[0]) > 0`, "invalid operation: int([value])"},
		{"a word with brackets", "invalid operation: int(SECRETWORD(X)", `int(upper(message.text)) > 0`, "invalid operation: int([value])"},
		{"a link", "invalid operation: int(evil.com/zz)", `int(message.urls[0]) > 0`, "invalid operation: int([value])"},
		{"a quoted text", `time: invalid duration "PRIVATEWORD1 secret"`, `duration(message.text) > duration("1s")`, "time: invalid duration [value]"},
		{"a quoted string the rule wrote", `time: invalid duration "5 mins"`, `duration("5 mins")`, `time: invalid duration "5 mins"`},
		{"a JSON character", "invalid character 'P' looking for beginning of value", "fromJSON(message.text)", "invalid character [value] looking for beginning of value"},
		{"a number and a length", "index out of range: 4111 (array length is 6)", `split(message.text, " ")[9]`, "index out of range: [value] (array length is [value])"},
		{"a number the rule wrote", "index out of range: 9 (array length is 6)", `split(message.text, " ")[9]`, "index out of range: 9 (array length is [value])"},
		{"a regular expression", "error parsing regexp: missing closing ): `secret(x`", `"x" matches message.text`, "error parsing regexp: missing closing ): [value]"},
		{"a type name", "invalid operation: int(map[string]interface {})", "int(x)", "invalid operation: int(map[string]interface {})"},
		{"words of the message between words of errors", "invalid date for sale now", "date(message.text)", "invalid date for [value]"},
		{"a quote left open", `time: invalid duration "secret`, "duration(message.text)", "time: invalid duration [value]"},
		{"an escaped quote inside", `time: invalid duration "a\"secret"`, "duration(message.text)", "time: invalid duration [value]"},
		{"Chinese text", "invalid operation: int(秘密的话)", "int(message.text)", "invalid operation: int([value])"},
		{"a negative duration the rule computed", `"duration(message.text)" gave -5s; a duration must be positive (write permanent for forever)`, "duration(message.text)",
			`"duration(message.text)" gave [value]; a duration must be positive (write permanent for forever)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := redactValues(tt.reason, tt.src); got != tt.want {
				t.Errorf("redactValues(%q)\n got %q\nwant %q", tt.reason, got, tt.want)
			}
		})
	}
}

func TestRedactReplacesTheEvalErrorInsideAWrappedError(t *testing.T) {
	ee := &EvalError{Source: "int(message.text)", Reason: "invalid operation: int(secret)", Line: 1, Column: 4}
	err := fmt.Errorf("mute: %w", ee)
	if got, want := Redact(err), "mute: invalid operation: int([value]) (1:4)"; got != want {
		t.Errorf("Redact = %q, want %q", got, want)
	}
	if got := err.Error(); got != "mute: invalid operation: int(secret) (1:4)" {
		t.Errorf("Error = %q, want the whole reason", got)
	}
	if got := Redact(errors.New("plain")); got != "plain" {
		t.Errorf("Redact of a plain error = %q", got)
	}
}

// FuzzRedactValues puts an arbitrary value into the reasons expr gives and
// checks that no word of it that is not a word of expr's own messages
// survives.
func FuzzRedactValues(f *testing.F) {
	for _, s := range []string{"PRIVATEWORD1", "secret word", `"quoted"`, "'x'", "4111 1111", "evil.com/zz", "秘密", "a\"b", "for sale", "`x", ")", "a\r"} {
		f.Add(s)
	}
	templates := []string{"invalid operation: int(%s)", "time: invalid duration %q", "invalid date %s", "index out of range: %s (array length is 3)",
		"error parsing regexp: missing closing ): `%s`", "unknown time zone %s", "strconv.Atoi: parsing %q: invalid syntax"}
	f.Fuzz(func(t *testing.T, value string) {
		if !utf8.ValidString(value) {
			return
		}
		for _, tmpl := range templates {
			reason := fmt.Sprintf(tmpl, value)
			got := redactValues(reason, "int(message.text)")
			for _, w := range splitWords(value) {
				if isExprWord(w) && !isNumber(w) || strings.Contains("int(message.text)", w) {
					continue
				}
				if containsWord(got, w) {
					t.Fatalf("redactValues(%q) = %q keeps %q", reason, got, w)
				}
			}
		}
	})
}

// containsWord reports whether w is one of the words of s.
func containsWord(s, w string) bool {
	for _, x := range splitWords(s) {
		if x == w {
			return true
		}
	}
	return false
}
