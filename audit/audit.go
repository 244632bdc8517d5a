// Package audit defines the audit record, one JSON line per decision and per
// action result, and the writer that appends them to a file or standard
// output. Moderators read these lines to answer "why was this user muted?".
//
// Records never hold secrets or message text: only ids, rule names, verdicts
// and action parameters.
package audit

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sync"
	"time"
)

// Record kinds.
const (
	KindDecision = "decision" // one per subject of a callback
	KindAction   = "action"   // one per action result
	KindAdmin    = "admin"    // an admin API call that changed something
	KindSchedule = "schedule" // a scheduled job ran
	KindReload   = "reload"   // the rules were reloaded (or a reload failed)
)

// Action results.
const (
	ResultDone     = "done"      // the IM server did it
	ResultSkipped  = "skipped"   // not done on purpose; Error says why
	ResultRetry    = "retry"     // failed, will be tried again
	ResultDead     = "dead"      // failed for good, dead-lettered
	ResultDryRun   = "dry_run"   // decided, but dry_run is on
	ResultDegraded = "degraded"  // decided without the store (fail-open/closed)
	ResultDup      = "duplicate" // an "after" callback seen before
	ResultFailed   = "failed"    // a reload, an admin call or a scheduled job that did not work
)

// Record is one audit line. Field names are part of timguard's contract
// (docs/audit.md).
type Record struct {
	Time         time.Time   `json:"time"`
	Kind         string      `json:"kind"`
	EventID      string      `json:"event_id,omitempty"`
	Command      string      `json:"command,omitempty"`
	Event        string      `json:"event,omitempty"`
	Group        string      `json:"group,omitempty"`
	User         string      `json:"user,omitempty"`
	Role         string      `json:"role,omitempty"`
	Verdict      string      `json:"verdict,omitempty"`
	Rules        []string    `json:"rules"`
	RulesVersion string      `json:"rules_version,omitempty"`
	Actions      []ActionRef `json:"actions,omitempty"`
	Shadow       bool        `json:"shadow"`
	ShadowRules  []string    `json:"shadow_rules,omitempty"`
	Budget       []string    `json:"budget_exceeded,omitempty"`
	Result       string      `json:"result,omitempty"`
	Error        string      `json:"error,omitempty"`
	LatencyUS    int64       `json:"latency_us"`
	// Actor is who made an admin API call (the token's name) or which
	// replica ran a job.
	Actor string `json:"actor,omitempty"`
	// Attempt counts tries of an action.
	Attempt int `json:"attempt,omitempty"`
	// Reply is the error code answered to the IM server, when not 0.
	ReplyCode int `json:"reply_code,omitempty"`
}

// ActionRef describes an action in a record.
type ActionRef struct {
	ID      string `json:"id,omitempty"`
	Kind    string `json:"kind"`
	Group   string `json:"group,omitempty"`
	User    string `json:"user,omitempty"`
	Seconds int64  `json:"seconds,omitempty"`
	Text    string `json:"text,omitempty"`
	N       int    `json:"n,omitempty"`
	Rule    string `json:"rule,omitempty"`
	Shadow  bool   `json:"shadow,omitempty"`
}

// Writer appends records as JSON lines. It is safe for concurrent use; each
// record is written with one Write call so lines never interleave.
type Writer struct {
	mu     sync.Mutex
	w      io.Writer
	closer io.Closer
	errs   func(error)
}

// New writes records to w. onError, if not nil, hears about failed writes.
func New(w io.Writer, onError func(error)) *Writer {
	return &Writer{w: w, errs: onError}
}

// Open appends to the file at path (created 0640), or writes to standard
// output when path is "".
func Open(path string, onError func(error)) (*Writer, error) {
	if path == "" {
		return New(os.Stdout, onError), nil
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	w := New(f, onError)
	w.closer = f
	return w, nil
}

// Encode returns the record as one JSON line, without the newline.
func Encode(r *Record) ([]byte, error) {
	if r.Rules == nil {
		r.Rules = []string{}
	}
	return json.Marshal(r)
}

// Write appends one record.
func (w *Writer) Write(r *Record) {
	line, err := Encode(r)
	if err != nil {
		w.fail(fmt.Errorf("audit: encode %s record: %w", r.Kind, err))
		return
	}
	w.WriteLine(line)
}

// WriteLine appends a record already encoded by Encode.
func (w *Writer) WriteLine(line []byte) {
	buf := make([]byte, 0, len(line)+1)
	buf = append(append(buf, line...), '\n')
	w.mu.Lock()
	_, err := w.w.Write(buf)
	w.mu.Unlock()
	if err != nil {
		w.fail(fmt.Errorf("audit: write: %w", err))
	}
}

func (w *Writer) fail(err error) {
	if w.errs != nil {
		w.errs(err)
	}
}

// Close closes the file, if Open opened one.
func (w *Writer) Close() error {
	if w.closer == nil {
		return nil
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.closer.Close()
}
