// Package record keeps the callbacks timguard evaluated, with the state its
// rules read, in hourly JSON Lines files (the `record:` configuration), and
// reads them back for replays. Recording is off unless configured: the
// files hold what members wrote, or a hash of it.
package record

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"
)

// Version is the format of the entries this package writes.
const Version = 1

// Text modes: what a recording keeps of the text members wrote.
const (
	TextKeep = "keep"
	TextHash = "hash"
)

// Entry is one recorded callback: one line of a recording file.
type Entry struct {
	V       int       `json:"v"`
	Time    time.Time `json:"time"`
	EventID string    `json:"event_id,omitempty"`
	Command string    `json:"command"`
	// Platform is the OptPlatform query parameter of the callback.
	Platform string `json:"platform,omitempty"`
	// Text says what Body holds of the text members wrote: "keep" (as it
	// was) or "hash" (each text replaced by its hash).
	Text string `json:"text,omitempty"`
	// Degraded is true when the event was decided without the store.
	Degraded bool `json:"degraded,omitempty"`
	// Body is the callback body.
	Body json.RawMessage `json:"body"`
	// State is what the rules read; nil when nothing was read.
	State *State `json:"state,omitempty"`
	// RulesVersion is the version of the rules that decided the event.
	RulesVersion string `json:"rules_version,omitempty"`
	// ReplyCode is the ErrorCode of the answer to the IM server.
	ReplyCode int `json:"reply_code,omitempty"`
	// Decided is what the rules decided, one per subject.
	Decided []Decided `json:"decided,omitempty"`

	// Bare is true for a line that was a callback body alone (the format
	// of `bot replay --events`), not a recorded entry; it is never written.
	Bare bool `json:"-"`
}

// State is what the rules read for an event.
type State struct {
	// Subjects maps each subject (a user, or "" for group-wide events) to
	// what was read for them.
	Subjects map[string]Subject `json:"subjects,omitempty"`
	// Modes are the modes that were on.
	Modes []string `json:"modes,omitempty"`
	// Budgets maps a budgeted rule to the actions it had taken in its
	// window in the event's group.
	Budgets map[string]int `json:"budgets,omitempty"`
}

// Subject is what the rules read about one subject.
type Subject struct {
	// Counters maps a counter's name to its value, this event included.
	Counters map[string]int `json:"counters,omitempty"`
	Strikes  int            `json:"strikes,omitempty"`
	Role     string         `json:"role,omitempty"`
	// FirstSeen and Messages are the subject's activity in the group
	// (user.first_seen, user.messages), when the rules read it.
	FirstSeen *time.Time `json:"first_seen,omitempty"`
	Messages  int        `json:"messages,omitempty"`
}

// Decided is what the rules decided about one subject.
type Decided struct {
	User    string   `json:"user,omitempty"`
	Verdict string   `json:"verdict,omitempty"`
	Rules   []string `json:"rules,omitempty"`
	Actions []string `json:"actions,omitempty"`
}

// MaxLine is the longest line a Reader reads; longer lines are skipped.
const MaxLine = 16 << 20

// LineError is a line a Reader skipped.
type LineError struct {
	Line   int
	Reason string
}

func (e *LineError) Error() string { return fmt.Sprintf("line %d: %s", e.Line, e.Reason) }

// Reader reads entries from a recording file. It also reads lines that are
// a callback body alone (Entry.Bare), so one reader serves both formats.
type Reader struct {
	r    *bufio.Reader
	line int
}

// NewReader reads entries from r.
func NewReader(r io.Reader) *Reader {
	return &Reader{r: bufio.NewReaderSize(r, 64<<10)}
}

// Line is the number of the line last read (from 1).
func (r *Reader) Line() int { return r.line }

// Next returns the next entry. A line that is not an entry gives a
// *LineError, and the next call goes on with the line after it; the end of
// the input gives io.EOF. Blank lines are passed over.
func (r *Reader) Next() (Entry, error) {
	for {
		line, tooLong, err := r.readLine()
		if err != nil {
			return Entry{}, err
		}
		r.line++
		if tooLong {
			return Entry{}, &LineError{Line: r.line, Reason: fmt.Sprintf("longer than %d bytes", MaxLine)}
		}
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			continue
		}
		e, err := Parse(line)
		if err != nil {
			return Entry{}, &LineError{Line: r.line, Reason: err.Error()}
		}
		return e, nil
	}
}

// readLine reads one line without its end; the part of a line beyond
// MaxLine is read and thrown away. At the end of the input it returns
// io.EOF, after a last line that has no line end.
func (r *Reader) readLine() (line []byte, tooLong bool, err error) {
	var buf []byte
	for {
		chunk, err := r.r.ReadSlice('\n')
		if !tooLong {
			if len(buf)+len(chunk) > MaxLine+1 {
				tooLong, buf = true, nil
			} else {
				buf = append(buf, chunk...)
			}
		}
		switch {
		case err == nil:
			return bytes.TrimSuffix(buf, []byte{'\n'}), tooLong, nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF):
			if len(buf) == 0 && !tooLong {
				return nil, false, io.EOF
			}
			return buf, tooLong, nil
		default:
			return nil, false, err
		}
	}
}

// Parse reads one line: a recorded entry, or a callback body alone.
func Parse(line []byte) (Entry, error) {
	var probe struct {
		V               *int            `json:"v"`
		Body            json.RawMessage `json:"body"`
		CallbackCommand *string         `json:"CallbackCommand"`
	}
	if err := json.Unmarshal(line, &probe); err != nil {
		return Entry{}, fmt.Errorf("not a JSON object: %w", err)
	}
	if probe.V == nil && probe.Body == nil {
		if probe.CallbackCommand == nil {
			return Entry{}, errors.New("neither a recorded entry (v, body) nor a callback body (CallbackCommand)")
		}
		body := make([]byte, len(line))
		copy(body, line)
		return Entry{Command: *probe.CallbackCommand, Body: body, Bare: true}, nil
	}
	var e Entry
	if err := json.Unmarshal(line, &e); err != nil {
		return Entry{}, fmt.Errorf("recorded entry: %w", err)
	}
	if e.V != Version {
		return Entry{}, fmt.Errorf("recorded entry of format version %d; this timguard reads version %d", e.V, Version)
	}
	if len(e.Body) == 0 || e.Body[0] != '{' {
		return Entry{}, errors.New("recorded entry: body is not a JSON object")
	}
	if e.Command == "" {
		return Entry{}, errors.New("recorded entry: command is empty")
	}
	switch e.Text {
	case "", TextKeep, TextHash:
	default:
		return Entry{}, fmt.Errorf("recorded entry: text %q is not keep or hash", e.Text)
	}
	return e, nil
}
