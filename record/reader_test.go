package record_test

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/timguard/timguard/record"
)

func TestReaderSkipsALineTooLongAndGoesOn(t *testing.T) {
	var in bytes.Buffer
	in.WriteString(`{"CallbackCommand":"` + strings.Repeat("x", record.MaxLine) + `"}` + "\n")
	in.WriteString(`{"CallbackCommand":"Group.CallbackBeforeSendMsg"}`) // no line end
	r := record.NewReader(&in)
	_, err := r.Next()
	var le *record.LineError
	if !errors.As(err, &le) || le.Line != 1 || !strings.Contains(le.Reason, "longer than") {
		t.Fatalf("first line: %v, want it skipped as too long", err)
	}
	e, err := r.Next()
	if err != nil || !e.Bare || e.Command != "Group.CallbackBeforeSendMsg" || r.Line() != 2 {
		t.Fatalf("second line: %+v, %v at line %d", e, err, r.Line())
	}
	if _, err := r.Next(); !errors.Is(err, io.EOF) {
		t.Fatalf("after the last line: %v, want EOF", err)
	}
}

func TestParseRefusesWhatIsNotAnEntry(t *testing.T) {
	cases := []struct{ name, line, want string }{
		{"not JSON", `hello`, "not a JSON object"},
		{"an object that is neither", `{"a":1}`, "neither a recorded entry"},
		{"a newer format", `{"v":2,"command":"c","body":{}}`, "format version 2"},
		{"a body that is not an object", `{"v":1,"command":"c","body":[1]}`, "body is not a JSON object"},
		{"no command", `{"v":1,"body":{}}`, "command is empty"},
		{"an unknown text mode", `{"v":1,"command":"c","text":"x","body":{}}`, `text "x"`},
	}
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := record.Parse([]byte(tt.line)); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Parse(%s) = %v, want an error saying %q", tt.line, err, tt.want)
			}
		})
	}
}
