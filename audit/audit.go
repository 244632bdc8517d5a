// Package audit defines the audit record, one JSON line per decision and per
// action result, and the writer that appends them to a file or standard
// output. Moderators read these lines to answer "why was this user muted?".
//
// Records never hold secrets or message text: only ids, rule names, verdicts
// and action parameters.
package audit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
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
	ResultLost     = "lost"      // an action that will never be carried out: the store never took it or forgot it
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
	// Words are the list entries the decision's rules found (words the
	// managers wrote in their lists, never the message text).
	Words     []string `json:"words,omitempty"`
	Result    string   `json:"result,omitempty"`
	Error     string   `json:"error,omitempty"`
	LatencyUS int64    `json:"latency_us"`
	// Actor is who made an admin API call (the token's name) or which
	// replica ran a job.
	Actor string `json:"actor,omitempty"`
	// Reason is why a moderator acted, as they wrote it in the console.
	Reason string `json:"reason,omitempty"`
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

// DefaultBuffer is the most bytes of records a Writer holds while its
// output is slower than the records come (a stalled reader of standard
// output, a slow disk): about 16,000 records of 500 bytes.
const DefaultBuffer = 8 << 20

// closeWait bounds how long Close waits for a stalled output to take the
// records still held.
const closeWait = 5 * time.Second

// Options configure a Writer; zero values take the defaults.
type Options struct {
	// Buffer is the most bytes of records held for the output
	// (DefaultBuffer). A record that does not fit is dropped.
	Buffer int
	// OnError hears about failed writes.
	OnError func(error)
	// OnDrop hears about each record dropped because the buffer was full
	// (for a metric). It must be cheap and safe for concurrent use.
	OnDrop func()
	// Logger says when records start being dropped and when the output
	// takes them again. Default: discard.
	Logger *slog.Logger
	// Linger is how long the writer waits, once woken by a record, for
	// more to join the same Write: under load one write (a syscall) and
	// one wake-up of the writer serve many records instead of a few. Flush,
	// Close and a queue a quarter full end the wait. Default 0: no wait.
	Linger time.Duration
}

// Writer appends records as JSON lines. Callers never wait for the output:
// WriteLine puts the line in a bounded buffer and returns, and one goroutine
// writes what the buffer holds, each time with one Write call, so lines
// never interleave. When the buffer is full (the output stalls), records
// are dropped, counted (OnDrop, Dropped) and logged, and Ready reports it
// until the output has taken half the buffer again. It is safe for
// concurrent use; Close writes what is held and stops the goroutine.
type Writer struct {
	w      io.Writer
	closer io.Closer
	opts   Options
	log    *slog.Logger

	mu       sync.Mutex
	queue    []byte // records waiting for the output, newline-terminated
	spare    []byte // the buffer the writer goroutine last wrote, for reuse
	dropping bool   // records were dropped since the buffer last drained to half
	streak   uint64 // records dropped since dropping began
	closed   bool
	dropped  atomic.Uint64
	// flushers are closed once the records queued before they were added
	// have been written (Flush).
	flushers []chan struct{}

	wake chan struct{} // a buffered signal: the queue has records
	// urgent ends a linger: Flush waits, Close stops, or the queue is a
	// quarter full (a buffered signal).
	urgent chan struct{}
	done   chan struct{} // closed when the writer goroutine has stopped
}

// New writes records to w. onError, if not nil, hears about failed writes.
func New(w io.Writer, onError func(error)) *Writer {
	return NewWithOptions(w, Options{OnError: onError})
}

// NewWithOptions writes records to w.
func NewWithOptions(w io.Writer, opts Options) *Writer {
	if opts.Buffer <= 0 {
		opts.Buffer = DefaultBuffer
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	aw := &Writer{
		w: w, opts: opts, log: opts.Logger.With("component", "audit"),
		wake: make(chan struct{}, 1), urgent: make(chan struct{}, 1), done: make(chan struct{}),
	}
	go aw.run()
	return aw
}

// Open appends to the file at path (created 0640), or writes to standard
// output when path is "".
func Open(path string, onError func(error)) (*Writer, error) {
	return OpenWithOptions(path, Options{OnError: onError})
}

// OpenWithOptions is Open with options.
func OpenWithOptions(path string, opts Options) (*Writer, error) {
	if path == "" {
		return NewWithOptions(os.Stdout, opts), nil
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640) //nolint:gosec // G302: group-readable on purpose, for the log shipper's group
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	w := NewWithOptions(f, opts)
	w.closer = f
	return w, nil
}

// Encode returns the record as one JSON line, without the newline.
func Encode(r *Record) ([]byte, error) {
	if r.Rules == nil {
		r.Rules = []string{}
	}
	return r.AppendJSON(make([]byte, 0, r.sizeHint()))
}

// sizeHint is about the length of r's line: its fixed part and what its
// strings add, so that Encode allocates the line once.
func (r *Record) sizeHint() int {
	n := 200 + len(r.EventID) + len(r.Command) + len(r.Event) + len(r.Group) + len(r.User) + len(r.Role) + len(r.Verdict) +
		len(r.RulesVersion) + len(r.Result) + len(r.Error) + len(r.Actor) + len(r.Reason) + len(r.Kind)
	for _, s := range r.Rules {
		n += len(s) + 3
	}
	for _, s := range r.ShadowRules {
		n += len(s) + 3
	}
	for _, s := range r.Budget {
		n += len(s) + 3
	}
	for _, s := range r.Words {
		n += len(s) + 3
	}
	for i := range r.Actions {
		a := &r.Actions[i]
		n += 100 + len(a.ID) + len(a.Kind) + len(a.Group) + len(a.User) + len(a.Text) + len(a.Rule)
	}
	return n
}

// AppendJSON appends r as encoding/json's Marshal writes it, byte for byte,
// without its reflection. A time Marshal refuses is left to Marshal, for
// its error.
func (r *Record) AppendJSON(dst []byte) ([]byte, error) {
	dst = append(dst, `{"time":`...)
	dst, ok := AppendTime(dst, r.Time)
	if !ok {
		return json.Marshal(r)
	}
	dst = append(dst, `,"kind":`...)
	dst = AppendString(dst, r.Kind)
	dst = appendOpt(dst, "event_id", r.EventID)
	dst = appendOpt(dst, "command", r.Command)
	dst = appendOpt(dst, "event", r.Event)
	dst = appendOpt(dst, "group", r.Group)
	dst = appendOpt(dst, "user", r.User)
	dst = appendOpt(dst, "role", r.Role)
	dst = appendOpt(dst, "verdict", r.Verdict)
	dst = append(dst, `,"rules":`...)
	dst = AppendStrings(dst, r.Rules)
	dst = appendOpt(dst, "rules_version", r.RulesVersion)
	if len(r.Actions) > 0 {
		dst = append(dst, `,"actions":[`...)
		for i := range r.Actions {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = r.Actions[i].appendJSON(dst)
		}
		dst = append(dst, ']')
	}
	dst = append(dst, `,"shadow":`...)
	dst = AppendBool(dst, r.Shadow)
	if len(r.ShadowRules) > 0 {
		dst = append(dst, `,"shadow_rules":`...)
		dst = AppendStrings(dst, r.ShadowRules)
	}
	if len(r.Budget) > 0 {
		dst = append(dst, `,"budget_exceeded":`...)
		dst = AppendStrings(dst, r.Budget)
	}
	if len(r.Words) > 0 {
		dst = append(dst, `,"words":`...)
		dst = AppendStrings(dst, r.Words)
	}
	dst = appendOpt(dst, "result", r.Result)
	dst = appendOpt(dst, "error", r.Error)
	dst = append(dst, `,"latency_us":`...)
	dst = AppendInt(dst, r.LatencyUS)
	dst = appendOpt(dst, "actor", r.Actor)
	dst = appendOpt(dst, "reason", r.Reason)
	if r.Attempt != 0 {
		dst = append(dst, `,"attempt":`...)
		dst = AppendInt(dst, int64(r.Attempt))
	}
	if r.ReplyCode != 0 {
		dst = append(dst, `,"reply_code":`...)
		dst = AppendInt(dst, int64(r.ReplyCode))
	}
	return append(dst, '}'), nil
}

func (a *ActionRef) appendJSON(dst []byte) []byte {
	dst = append(dst, '{')
	if a.ID != "" {
		dst = append(dst, `"id":`...)
		dst = AppendString(dst, a.ID)
		dst = append(dst, ',')
	}
	dst = append(dst, `"kind":`...)
	dst = AppendString(dst, a.Kind)
	dst = appendOpt(dst, "group", a.Group)
	dst = appendOpt(dst, "user", a.User)
	if a.Seconds != 0 {
		dst = append(dst, `,"seconds":`...)
		dst = AppendInt(dst, a.Seconds)
	}
	dst = appendOpt(dst, "text", a.Text)
	if a.N != 0 {
		dst = append(dst, `,"n":`...)
		dst = AppendInt(dst, int64(a.N))
	}
	dst = appendOpt(dst, "rule", a.Rule)
	if a.Shadow {
		dst = append(dst, `,"shadow":true`...)
	}
	return append(dst, '}')
}

// appendOpt appends ,"key":"value" unless value is empty (omitempty).
func appendOpt(dst []byte, key, value string) []byte {
	if value == "" {
		return dst
	}
	dst = append(dst, ',', '"')
	dst = append(dst, key...)
	dst = append(dst, '"', ':')
	return AppendString(dst, value)
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

// WriteLine appends a record already encoded by Encode. It never waits
// for the output: when the buffer cannot take the line, the line is
// dropped and counted.
func (w *Writer) WriteLine(line []byte) {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		w.drop(1)
		w.fail(errors.New("audit: write after close: record dropped"))
		return
	}
	if len(w.queue)+len(line)+1 > w.opts.Buffer {
		first := !w.dropping
		w.dropping = true
		w.streak++
		w.mu.Unlock()
		w.drop(1)
		if first {
			w.log.Error("the audit output does not keep up (a stalled reader or a slow disk): audit records are being dropped; /readyz fails until it catches up",
				"buffer_bytes", w.opts.Buffer)
		}
		return
	}
	w.queue = append(append(w.queue, line...), '\n')
	select { // under the lock: Close closes wake under it too
	case w.wake <- struct{}{}:
	default:
	}
	if w.opts.Linger > 0 && len(w.queue) >= w.opts.Buffer/4 {
		w.hurry()
	}
	w.mu.Unlock()
}

// hurry ends the writer's linger, if it is in one.
func (w *Writer) hurry() {
	select {
	case w.urgent <- struct{}{}:
	default:
	}
}

func (w *Writer) drop(n uint64) {
	w.dropped.Add(n)
	if w.opts.OnDrop != nil {
		for range n {
			w.opts.OnDrop()
		}
	}
}

// run writes what the queue holds until Close, then what is left.
func (w *Writer) run() {
	defer close(w.done)
	var linger *time.Timer
	if w.opts.Linger > 0 {
		linger = time.NewTimer(w.opts.Linger)
		linger.Stop()
	}
	for range w.wake {
		if linger != nil && w.queued() {
			w.linger(linger)
		}
		for w.flushOnce() {
		}
	}
	for w.flushOnce() {
	}
}

// queued reports whether records wait: a wake left over from records an
// earlier write took starts no linger.
func (w *Writer) queued() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.queue) > 0
}

// linger waits Linger, or until something hurries the writer.
func (w *Writer) linger(t *time.Timer) {
	t.Reset(w.opts.Linger)
	select {
	case <-t.C:
	case <-w.urgent:
		t.Stop()
		// Under GODEBUG=asynctimerchan=1 a tick may wait after Stop.
		select {
		case <-t.C:
		default:
		}
	}
}

// flushOnce writes the queued records with one Write call, then releases
// the Flush calls waiting for them; it reports whether it wrote anything.
func (w *Writer) flushOnce() bool {
	w.mu.Lock()
	buf := w.queue
	w.queue = w.spare[:0]
	w.spare = nil
	flushers := w.flushers
	w.flushers = nil
	w.mu.Unlock()
	defer func() {
		for _, ch := range flushers {
			close(ch)
		}
	}()
	if len(buf) == 0 {
		w.mu.Lock()
		w.spare = buf
		w.mu.Unlock()
		return false
	}
	_, err := w.w.Write(buf)
	if err != nil {
		w.fail(fmt.Errorf("audit: write: %w", err))
	}
	w.mu.Lock()
	if cap(buf) <= 2*w.opts.Buffer {
		w.spare = buf[:0]
	}
	var streak uint64
	if w.dropping && len(w.queue) <= w.opts.Buffer/2 {
		w.dropping, streak, w.streak = false, w.streak, 0
	}
	w.mu.Unlock()
	if streak > 0 {
		w.log.Warn("the audit output keeps up again", "records_dropped", streak, "records_dropped_total", w.dropped.Load())
	}
	return true
}

// Flush waits until the records written before it was called have been
// handed to the output, or ctx is done. After Close it returns at once.
func (w *Writer) Flush(ctx context.Context) error {
	ch := make(chan struct{})
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return nil
	}
	w.flushers = append(w.flushers, ch)
	select {
	case w.wake <- struct{}{}:
	default:
	}
	w.hurry()
	w.mu.Unlock()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("audit: flush: the output has not taken the records: %w", context.Cause(ctx))
	}
}

// Ready reports an error while records are being dropped: from the first
// record dropped until the output has taken half the buffer again.
func (w *Writer) Ready() error {
	w.mu.Lock()
	dropping := w.dropping
	w.mu.Unlock()
	if dropping {
		return fmt.Errorf("the audit output does not keep up: %d audit records dropped so far", w.dropped.Load())
	}
	return nil
}

// Dropped counts the records dropped since the Writer was made.
func (w *Writer) Dropped() uint64 { return w.dropped.Load() }

func (w *Writer) fail(err error) {
	if w.opts.OnError != nil {
		w.opts.OnError(err)
	}
}

// Close writes the records held, waiting for the output up to a few
// seconds, then closes the file if Open opened one. Records written after
// Close are dropped.
func (w *Writer) Close() error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return nil
	}
	w.closed = true
	close(w.wake)
	// Closed, not signalled: no linger may begin after Close (a wake
	// left in the channel would start one). Every other signal is sent
	// under mu before closed is set.
	close(w.urgent)
	w.mu.Unlock()
	t := time.NewTimer(closeWait)
	defer t.Stop()
	select {
	case <-w.done:
	case <-t.C:
		w.mu.Lock()
		n := len(w.queue)
		w.mu.Unlock()
		return fmt.Errorf("audit: the output did not take the last records within %v (%d bytes held); they are lost", closeWait, n)
	}
	if w.closer == nil {
		return nil
	}
	return w.closer.Close()
}
