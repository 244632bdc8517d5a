package record_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"testing"

	"github.com/timguard/timguard/record"
)

// FuzzReader: whatever a recording file holds, the reader never panics,
// reads every line once (entries, skipped lines and blank lines), and
// every entry it returns is written back and read again unchanged.
func FuzzReader(f *testing.F) {
	for _, s := range []string{
		`{"v":1,"time":"2026-12-04T10:00:00Z","command":"Group.CallbackBeforeSendMsg","text":"keep","body":{"CallbackCommand":"Group.CallbackBeforeSendMsg"},"state":{"subjects":{"bob":{"counters":{"c":6},"strikes":2,"role":"admin"}},"modes":["night"],"budgets":{"r":3}}}`,
		`{"CallbackCommand":"Group.CallbackBeforeSendMsg","GroupId":"@TGS#1","From_Account":"bob"}`,
		"{\"v\":2,\"body\":{}}\n\n{\"v\":1,\"command\":\"x\",\"body\":[]}\r\nnot json\n{}",
		`{"v":1,"command":"c","text":"redact","body":{}}`,
		`{"v":1,"command":"c","body":{},"state":null,"decided":[{"user":"u","verdict":"block"}]}` + "\n",
		"\n\n\n",
		"",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r := record.NewReader(bytes.NewReader(data))
		lines := 0
		for {
			e, err := r.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if r.Line() <= lines {
				t.Fatalf("line number went from %d to %d", lines, r.Line())
			}
			lines = r.Line()
			var le *record.LineError
			if errors.As(err, &le) {
				if le.Line != r.Line() {
					t.Fatalf("line error names line %d, reader is at %d", le.Line, r.Line())
				}
				continue
			}
			if err != nil {
				t.Fatalf("reading bytes failed with %v", err)
			}
			if e.Bare {
				if len(e.Body) == 0 {
					t.Fatal("a callback body alone was read with no body")
				}
				continue
			}
			line, err := json.Marshal(e)
			if err != nil {
				t.Fatalf("an entry read does not encode: %v", err)
			}
			again, err := record.Parse(line)
			if err != nil {
				t.Fatalf("an entry written back does not read: %v\n%s", err, line)
			}
			a, _ := json.Marshal(again)
			if !bytes.Equal(a, line) {
				t.Fatalf("round trip changed the entry:\n%s\n%s", line, a)
			}
		}
		if n := bytes.Count(data, []byte{'\n'}); lines > n+1 {
			t.Fatalf("read %d lines from input with %d line ends", lines, n)
		}
	})
}
