package record

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/timguard/timguard/policy"
	"github.com/timguard/timguard/rules"
)

// DefaultQueue is how many entries wait for the writer before more are
// dropped.
const DefaultQueue = 4096

// pruneEvery is how often files past their retention are removed while
// the recorder runs (and at every new file).
const pruneEvery = 10 * time.Minute

// Config configures a Recorder.
type Config struct {
	// Dir is where the hourly files go; it is made (0700) if missing.
	Dir string
	// Keep is how long a file is kept after its hour ended.
	Keep time.Duration
	// Kinds are the event kinds recorded; empty records every kind.
	Kinds []rules.Kind
	// Text is TextKeep or TextHash (the default).
	Text string
	// HashKey, when set, makes text hashes HMACs with this key.
	HashKey string
	// Queue bounds the entries waiting for the writer (DefaultQueue when
	// 0); entries beyond it are dropped and counted.
	Queue      int
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	// Now is the clock that retention is measured with (time.Now).
	Now func() time.Time
}

// Recorder writes evaluated callbacks to hourly files. Record never blocks:
// entries go through a bounded queue to one writer goroutine, and what does
// not fit is dropped and counted (timguard_record_dropped_total).
type Recorder struct {
	cfg    Config
	log    *slog.Logger
	kinds  map[rules.Kind]bool
	hasher *Hasher
	q      chan *Entry
	stop   chan struct{}
	done   chan struct{}
	once   sync.Once

	written prometheus.Counter
	dropped *prometheus.CounterVec
	pruned  prometheus.Counter

	// The writer goroutine's own.
	file     *os.File
	w        *bufio.Writer
	fileName string
	lastErr  time.Time
}

// Reasons an entry is dropped.
const (
	dropQueueFull = "queue_full"
	dropWrite     = "write_error"
	dropEncode    = "encode_error"
)

// New makes the directory, removes files past their retention, and starts
// the writer. Close stops it.
func New(cfg Config) (*Recorder, error) {
	r, err := newRecorder(cfg)
	if err != nil {
		return nil, err
	}
	go r.run()
	return r, nil
}

// newRecorder is New without starting the writer.
func newRecorder(cfg Config) (*Recorder, error) {
	if cfg.Dir == "" {
		return nil, errors.New("record: no directory")
	}
	if cfg.Queue <= 0 {
		cfg.Queue = DefaultQueue
	}
	if cfg.Text == "" {
		cfg.Text = TextHash
	}
	if cfg.Text != TextKeep && cfg.Text != TextHash {
		return nil, fmt.Errorf("record: text %q is not keep or hash", cfg.Text)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("record: %w", err)
	}
	r := &Recorder{
		cfg:    cfg,
		log:    cfg.Logger.With("component", "record"),
		hasher: NewHasher(cfg.HashKey),
		q:      make(chan *Entry, cfg.Queue),
		stop:   make(chan struct{}),
		done:   make(chan struct{}),
		written: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "timguard_record_entries_total", Help: "Callbacks written to the recording files.",
		}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "timguard_record_dropped_total",
			Help: "Callbacks not recorded: the writer's queue was full, a file could not be written, or a body could not be encoded.",
		}, []string{"reason"}),
		pruned: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "timguard_record_files_pruned_total", Help: "Recording files removed after their retention.",
		}),
	}
	for _, reason := range []string{dropQueueFull, dropWrite, dropEncode} {
		r.dropped.WithLabelValues(reason)
	}
	if len(cfg.Kinds) > 0 {
		r.kinds = make(map[rules.Kind]bool, len(cfg.Kinds))
		for _, k := range cfg.Kinds {
			r.kinds[k] = true
		}
	}
	if cfg.Registerer != nil {
		for _, c := range []prometheus.Collector{r.written, r.dropped, r.pruned} {
			if err := cfg.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("record: metrics: %w", err)
			}
		}
	}
	r.prune()
	return r, nil
}

// Dir is the directory the files are written to.
func (r *Recorder) Dir() string { return r.cfg.Dir }

// Record queues an evaluated callback for the writer. It copies what it
// keeps and never blocks; it implements policy.Recorder.
func (r *Recorder) Record(rec policy.Recorded) {
	ev := rec.Event
	if ev == nil || len(ev.Raw) == 0 || (r.kinds != nil && !r.kinds[ev.Kind]) {
		return
	}
	e := &Entry{
		V: Version, Time: ev.Received, EventID: ev.ID, Command: ev.Command, Platform: ev.Platform,
		Degraded: rec.Degraded, Body: slices.Clone(ev.Raw), ReplyCode: rec.Outcome.Reply.ErrorCode,
	}
	if rec.Rules != nil {
		e.RulesVersion = rec.Rules.Version
		if rec.State != nil {
			e.State = stateOf(ev, rec.Rules, rec.State, rec.Outcome.Decisions)
		}
	}
	for _, d := range rec.Outcome.Decisions {
		dd := Decided{User: d.User, Verdict: string(d.Verdict), Rules: slices.Clone(d.Rules)}
		for _, a := range d.Actions {
			if !a.Shadow {
				dd.Actions = append(dd.Actions, a.Resolved.String())
			}
		}
		e.Decided = append(e.Decided, dd)
	}
	select {
	case r.q <- e:
	default:
		r.dropped.WithLabelValues(dropQueueFull).Inc()
	}
}

// stateOf names what the rules read: counters by name (a replay may use
// another rule set, whose counters have other positions), per subject.
func stateOf(ev *policy.Event, set *rules.Set, st *policy.State, ds []policy.Decision) *State {
	out := &State{Subjects: make(map[string]Subject, len(ev.Subjects))}
	plan := set.Plan(ev.Kind)
	for si, u := range ev.Subjects {
		s := Subject{Strikes: st.Strikes[u], Role: st.Roles[u]}
		if si < len(ds) && ds[si].User == u && ds[si].Role != "" {
			s.Role = string(ds[si].Role)
		}
		if s.Role == string(rules.RoleMember) {
			s.Role = ""
		}
		if st.FirstSeen != nil {
			seen := st.FirstSeen[u]
			if seen.IsZero() {
				seen = ev.Received // the store had never seen them: first seen now
			}
			s.FirstSeen, s.Messages = &seen, st.Messages[u]
		}
		counters := st.Counters
		if sc, ok := st.SubjectCounters[u]; ok {
			counters = sc
		}
		for _, cu := range plan.Counters {
			if i := cu.Counter.Index; i >= 0 && i < len(counters) {
				if s.Counters == nil {
					s.Counters = make(map[string]int, len(plan.Counters))
				}
				s.Counters[cu.Counter.Name] = counters[i]
			}
		}
		out.Subjects[u] = s
	}
	for m, on := range st.Modes {
		if on {
			out.Modes = append(out.Modes, m)
		}
	}
	slices.Sort(out.Modes)
	if len(st.Budgets) > 0 {
		out.Budgets = make(map[string]int, len(st.Budgets))
		for k, v := range st.Budgets {
			out.Budgets[k] = v
		}
	}
	return out
}

// Close writes what is queued, closes the file and stops the writer.
func (r *Recorder) Close() error {
	r.once.Do(func() { close(r.stop) })
	<-r.done
	return nil
}

func (r *Recorder) run() {
	defer close(r.done)
	tick := time.NewTicker(pruneEvery)
	defer tick.Stop()
	for {
		select {
		case e := <-r.q:
			r.write(e)
			if len(r.q) == 0 {
				r.flush()
			}
		case <-tick.C:
			r.prune()
		case <-r.stop:
			for {
				select {
				case e := <-r.q:
					r.write(e)
				default:
					r.flush()
					r.closeFile()
					return
				}
			}
		}
	}
}

// write appends one entry to the file of its hour.
func (r *Recorder) write(e *Entry) {
	e.Text = r.cfg.Text
	if r.cfg.Text == TextHash {
		body, err := r.hasher.Body(e.Body)
		if err != nil {
			// The body is not written at all rather than with its text.
			r.fail(dropEncode, fmt.Errorf("hash the texts of event %s: %w", e.EventID, err))
			return
		}
		e.Body = body
	}
	line, err := json.Marshal(e)
	if err != nil {
		r.fail(dropEncode, fmt.Errorf("encode event %s: %w", e.EventID, err))
		return
	}
	name := FileName(e.Time)
	if name != r.fileName || r.w == nil {
		if err := r.open(name); err != nil {
			r.fail(dropWrite, err)
			return
		}
	}
	line = append(line, '\n')
	if _, err := r.w.Write(line); err != nil {
		r.fail(dropWrite, fmt.Errorf("write %s: %w", r.fileName, err))
		r.closeFile()
		return
	}
	r.written.Inc()
}

// open switches to the file called name, and prunes old files.
func (r *Recorder) open(name string) error {
	r.flush()
	r.closeFile()
	path := filepath.Join(r.cfg.Dir, name)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("open recording file: %w", err)
	}
	r.file, r.w, r.fileName = f, bufio.NewWriterSize(f, 64<<10), name
	r.prune()
	return nil
}

func (r *Recorder) flush() {
	if r.w == nil {
		return
	}
	if err := r.w.Flush(); err != nil {
		r.fail(dropWrite, fmt.Errorf("write %s: %w", r.fileName, err))
		r.closeFile()
	}
}

func (r *Recorder) closeFile() {
	if r.file == nil {
		return
	}
	if err := r.file.Close(); err != nil {
		r.logErr(fmt.Errorf("close %s: %w", r.fileName, err))
	}
	r.file, r.w, r.fileName = nil, nil, ""
}

// prune removes the files whose hour ended longer than Keep ago.
func (r *Recorder) prune() {
	if r.cfg.Keep <= 0 {
		return
	}
	files, err := Files(r.cfg.Dir, time.Time{})
	if err != nil {
		r.logErr(err)
		return
	}
	cut := r.cfg.Now().Add(-r.cfg.Keep)
	for _, f := range files {
		h, _ := HourOf(f)
		if !h.Add(time.Hour).Before(cut) || filepath.Base(f) == r.fileName {
			continue
		}
		if err := os.Remove(f); err != nil && !errors.Is(err, os.ErrNotExist) {
			r.logErr(fmt.Errorf("remove an expired recording: %w", err))
			continue
		}
		r.pruned.Inc()
	}
}

func (r *Recorder) fail(reason string, err error) {
	r.dropped.WithLabelValues(reason).Inc()
	r.logErr(err)
}

// logErr logs at most one error a minute: a full disk fails every write.
func (r *Recorder) logErr(err error) {
	now := time.Now()
	if now.Sub(r.lastErr) < time.Minute {
		return
	}
	r.lastErr = now
	r.log.Error("recording callbacks failed; see timguard_record_dropped_total", "dir", r.cfg.Dir, "err", err)
}
