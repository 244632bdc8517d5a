package harness

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/timguard/timguard/tim/timtest"
)

// DriverConfig configures a Driver.
type DriverConfig struct {
	// Targets are base URLs (http://127.0.0.1:8080); requests go to them
	// round robin.
	Targets []string
	// Path is the callback path (/callback when empty).
	Path string
	// SDKAppID and Token sign the callbacks as the IM server does.
	SDKAppID uint64
	Token    string
	Mix      *Mix
	// Keep keeps a Result per request in Stats.Results; otherwise only the
	// latencies and the counts are kept.
	Keep bool
	// FailOver marks a target down at its first transport error: later
	// requests go to the targets still up, as a load balancer's health
	// check would do. Without it every request goes to its target.
	FailOver bool
	// Timeout bounds one request (5 s when zero).
	Timeout time.Duration
	// Connections is the most idle keep-alive connections kept per target
	// (256 when zero); set it to at least Load.Workers.
	Connections int
}

// Driver sends a Mix's callbacks. Run may be called several times, not
// concurrently.
type Driver struct {
	cfg    DriverConfig
	client *http.Client
	down   []atomic.Bool
	rr     atomic.Uint64
}

// NewDriver returns a Driver.
func NewDriver(cfg DriverConfig) *Driver {
	if cfg.Path == "" {
		cfg.Path = "/callback"
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 5 * time.Second
	}
	if cfg.Connections == 0 {
		cfg.Connections = 256
	}
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 2 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        cfg.Connections * len(cfg.Targets),
		MaxIdleConnsPerHost: cfg.Connections,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
	return &Driver{
		cfg:    cfg,
		client: &http.Client{Transport: tr, Timeout: cfg.Timeout},
		down:   make([]atomic.Bool, len(cfg.Targets)),
	}
}

// Close closes the idle connections.
func (d *Driver) Close() { d.client.CloseIdleConnections() }

// Load is one run's shape.
type Load struct {
	// Rate > 0 sends open loop: request i is due at start + i/Rate whether
	// or not earlier ones were answered, and its latency is measured from
	// that time (so a slow answer that delays the next sends is counted
	// against the server, not hidden: no coordinated omission). Rate 0
	// sends closed loop: Workers requests back to back, as fast as the
	// server answers.
	Rate float64
	// Workers are the concurrent senders (connections); 64 when zero.
	Workers int
	// Warmup is sent first and not measured; Duration is measured.
	Warmup, Duration time.Duration
	// First is the Mix index of the first request, so that runs one after
	// the other send different events.
	First int
	// OnStart, when set, is called once when the measured part begins.
	OnStart func()
}

// Result is one request's outcome.
type Result struct {
	Index  int
	Class  Class
	Group  string
	Users  []string
	Target int
	// Scheduled is when the request was due (open loop) or sent (closed
	// loop); Sent is when it was sent.
	Scheduled, Sent time.Time
	// Latency runs from Scheduled to the last byte of the answer (or the
	// error).
	Latency time.Duration
	// Status is the HTTP status, 0 without an answer.
	Status int
	// Envelope reports an IM callback envelope with ActionStatus OK; Code
	// is its ErrorCode.
	Envelope bool
	Code     int
	Err      string
}

// Answered reports whether the request got a 200 with a valid envelope.
func (r *Result) Answered() bool { return r.Status == http.StatusOK && r.Envelope }

// Stats sums up a run.
type Stats struct {
	Mode     string        `json:"mode"` // "open" or "closed"
	Rate     float64       `json:"rate,omitempty"`
	Workers  int           `json:"workers"`
	Duration time.Duration `json:"duration_ns"`
	// Sent counts the measured requests; Answered those with a 200 and a
	// valid envelope; Errors those without an answer; Non2xx those with
	// another status; BadEnvelope 200s whose body is not a valid envelope;
	// Refused the envelopes with a non-zero ErrorCode (blocked, rejected,
	// dropped).
	Sent        int `json:"sent"`
	Answered    int `json:"answered"`
	Errors      int `json:"errors"`
	Non2xx      int `json:"non_2xx"`
	BadEnvelope int `json:"bad_envelope"`
	Refused     int `json:"refused"`
	// Throughput is answered requests per second of the measured part.
	Throughput float64     `json:"throughput"`
	Latency    Percentiles `json:"latency"`
	// PacerLag is how late the generator itself released requests (open
	// loop): it is part of every latency and should stay far below it.
	PacerLag Percentiles `json:"pacer_lag,omitzero"`
	// FirstError is an example of the errors, for the report.
	FirstError string `json:"first_error,omitempty"`
	// Results holds every measured request with DriverConfig.Keep.
	Results []Result `json:"-"`
}

// Percentiles of a latency distribution.
type Percentiles struct {
	P50  time.Duration `json:"p50_ns"`
	P90  time.Duration `json:"p90_ns"`
	P99  time.Duration `json:"p99_ns"`
	P999 time.Duration `json:"p999_ns"`
	Max  time.Duration `json:"max_ns"`
}

// percentiles sorts ds and reads the percentiles (nearest rank).
func percentiles(ds []time.Duration) Percentiles {
	if len(ds) == 0 {
		return Percentiles{}
	}
	slices.Sort(ds)
	at := func(q float64) time.Duration {
		i := int(q*float64(len(ds))+0.999999) - 1
		return ds[min(max(i, 0), len(ds)-1)]
	}
	return Percentiles{P50: at(0.50), P90: at(0.90), P99: at(0.99), P999: at(0.999), Max: ds[len(ds)-1]}
}

// worker is one sender's state; only its goroutine touches it until the run
// ends.
type worker struct {
	d       *Driver
	buf     bytes.Buffer
	urls    map[string]signedURL
	lat     []time.Duration
	lag     []time.Duration
	results []Result
	st      Stats
}

type signedURL struct {
	second int64
	target int
	url    string
}

// Run sends one load and returns its stats. It stops early, with what it
// measured, when ctx is done.
func (d *Driver) Run(ctx context.Context, l Load) (*Stats, error) {
	if len(d.cfg.Targets) == 0 || d.cfg.Mix == nil {
		return nil, errors.New("harness: a driver needs targets and a mix")
	}
	if l.Workers <= 0 {
		l.Workers = 64
	}
	if l.Duration <= 0 {
		return nil, errors.New("harness: a load needs a duration")
	}
	ws := make([]*worker, l.Workers)
	for i := range ws {
		ws[i] = &worker{d: d, urls: map[string]signedURL{}}
	}
	var start time.Time
	if l.Rate > 0 {
		start = d.open(ctx, l, ws)
	} else {
		start = d.closed(ctx, l, ws)
	}
	st := &Stats{Mode: "closed", Rate: l.Rate, Workers: l.Workers, Duration: l.Duration}
	if l.Rate > 0 {
		st.Mode = "open"
	}
	var lat, lag []time.Duration
	for _, w := range ws {
		st.Sent += w.st.Sent
		st.Answered += w.st.Answered
		st.Errors += w.st.Errors
		st.Non2xx += w.st.Non2xx
		st.BadEnvelope += w.st.BadEnvelope
		st.Refused += w.st.Refused
		if st.FirstError == "" {
			st.FirstError = w.st.FirstError
		}
		lat = append(lat, w.lat...)
		lag = append(lag, w.lag...)
		st.Results = append(st.Results, w.results...)
	}
	measured := l.Duration
	if end := time.Now(); ctx.Err() != nil && end.Before(start.Add(l.Warmup+l.Duration)) {
		measured = max(end.Sub(start.Add(l.Warmup)), time.Millisecond)
	}
	st.Duration = measured
	st.Throughput = float64(st.Answered) / measured.Seconds()
	st.Latency = percentiles(lat)
	st.PacerLag = percentiles(lag)
	slices.SortFunc(st.Results, func(a, b Result) int { return a.Index - b.Index })
	return st, nil
}

type job struct {
	i   int
	due time.Time
}

// open sends open loop; it returns the start time.
func (d *Driver) open(ctx context.Context, l Load, ws []*worker) time.Time {
	total := int(l.Rate * (l.Warmup + l.Duration).Seconds())
	jobs := make(chan job, 1<<16)
	start := time.Now().Add(20 * time.Millisecond)
	measureFrom := start.Add(l.Warmup)
	var wg sync.WaitGroup
	for _, w := range ws {
		wg.Go(func() {
			for j := range jobs {
				w.send(ctx, l.First+j.i, j.due, !j.due.Before(measureFrom))
			}
		})
	}
	p := newPacer()
	p.lock()
	started := false
	for i := range total {
		if ctx.Err() != nil {
			break
		}
		due := start.Add(time.Duration(float64(i) / l.Rate * float64(time.Second)))
		p.sleepUntil(due)
		if !started && !due.Before(measureFrom) {
			started = true
			if l.OnStart != nil {
				l.OnStart()
			}
		}
		jobs <- job{i: i, due: due}
	}
	p.unlock()
	close(jobs)
	wg.Wait()
	return start
}

// closed sends closed loop; it returns the start time.
func (d *Driver) closed(ctx context.Context, l Load, ws []*worker) time.Time {
	start := time.Now()
	measureFrom := start.Add(l.Warmup)
	end := measureFrom.Add(l.Duration)
	var next atomic.Int64
	var once sync.Once
	var wg sync.WaitGroup
	for _, w := range ws {
		wg.Go(func() {
			for ctx.Err() == nil {
				now := time.Now()
				if !now.Before(end) {
					return
				}
				measured := !now.Before(measureFrom)
				if measured && l.OnStart != nil {
					once.Do(l.OnStart)
				}
				i := int(next.Add(1) - 1)
				w.send(ctx, l.First+i, now, measured)
			}
		})
	}
	wg.Wait()
	return start
}

// pick chooses the target of request i: round robin over the targets up.
func (d *Driver) pick() (int, bool) {
	n := len(d.cfg.Targets)
	first := int(d.rr.Add(1) % uint64(n))
	for k := range n {
		t := (first + k) % n
		if !d.down[t].Load() {
			return t, true
		}
	}
	return 0, false
}

// url returns the signed callback URL for command on target, reusing it
// within one second of RequestTime.
func (w *worker) url(target int, command string, now time.Time) string {
	sec := now.Unix()
	if u, ok := w.urls[command]; ok && u.second == sec && u.target == target {
		return u.url
	}
	u := timtest.SignedURL(w.d.cfg.Targets[target], w.d.cfg.Path, w.d.cfg.SDKAppID, command, w.d.cfg.Token, now)
	w.urls[command] = signedURL{second: sec, target: target, url: u}
	return u
}

// send sends request i, due at due, and records it when measured.
func (w *worker) send(ctx context.Context, i int, due time.Time, measured bool) {
	d := w.d
	now := time.Now()
	req := d.cfg.Mix.Request(i, now)
	res := Result{Index: i, Class: req.Class, Group: req.Group, Users: req.Users, Scheduled: due, Sent: now, Target: -1}
	target, ok := d.pick()
	if !ok {
		res.Err = "no target is up"
	} else {
		res.Target = target
		w.do(ctx, &res, req, now)
		if res.Status == 0 && d.cfg.FailOver && ctx.Err() == nil {
			d.down[target].Store(true)
		}
	}
	res.Latency = time.Since(due)
	if !measured {
		return
	}
	w.st.Sent++
	switch {
	case res.Status == 0:
		w.st.Errors++
		if w.st.FirstError == "" {
			w.st.FirstError = res.Err
		}
	case res.Status != http.StatusOK:
		w.st.Non2xx++
	case !res.Envelope:
		w.st.BadEnvelope++
	default:
		w.st.Answered++
		if res.Code != 0 {
			w.st.Refused++
		}
	}
	w.lat = append(w.lat, res.Latency)
	if !res.Sent.Before(due) {
		w.lag = append(w.lag, res.Sent.Sub(due))
	}
	if d.cfg.Keep {
		w.results = append(w.results, res)
	}
}

// do posts the callback and fills res with the answer.
func (w *worker) do(ctx context.Context, res *Result, req Request, now time.Time) {
	httpReq, err := http.NewRequestWithContext(ctx, http.MethodPost, w.url(res.Target, req.Command, now), bytes.NewReader(req.Body))
	if err != nil {
		res.Err = err.Error()
		return
	}
	httpReq.Header.Set("Content-Type", "application/json")
	resp, err := w.d.client.Do(httpReq)
	if err != nil {
		res.Err = err.Error()
		return
	}
	w.buf.Reset()
	_, err = w.buf.ReadFrom(resp.Body)
	resp.Body.Close()
	if err != nil {
		res.Err = "read the answer: " + err.Error()
		return
	}
	res.Status = resp.StatusCode
	if resp.StatusCode != http.StatusOK {
		res.Err = fmt.Sprintf("HTTP %d: %.200s", resp.StatusCode, w.buf.Bytes())
		return
	}
	res.Code, res.Envelope = parseEnvelope(w.buf.Bytes(), w.d.cfg.Keep)
	if !res.Envelope {
		res.Err = fmt.Sprintf("not a callback envelope: %.200s", w.buf.Bytes())
	}
}

// okPrefix starts every envelope timguard and the bare handler answer.
var okPrefix = []byte(`{"ActionStatus":"OK"`)

// parseEnvelope reads the ErrorCode of a callback answer and reports
// whether it is an envelope with ActionStatus OK. strict decodes the whole
// body; otherwise only the prefix and the code are read, which costs the
// generator (sharing the CPUs with the server) next to nothing.
func parseEnvelope(b []byte, strict bool) (int, bool) {
	if strict {
		var env struct {
			ActionStatus *string
			ErrorCode    *int
		}
		if err := json.Unmarshal(b, &env); err != nil || env.ActionStatus == nil || *env.ActionStatus != "OK" || env.ErrorCode == nil {
			return 0, false
		}
		return *env.ErrorCode, true
	}
	if !bytes.HasPrefix(b, okPrefix) {
		return 0, false
	}
	const key = `"ErrorCode":`
	i := bytes.Index(b, []byte(key))
	if i < 0 {
		return 0, false
	}
	code, neg, digits := 0, false, 0
	for _, c := range b[i+len(key):] {
		switch {
		case c == '-' && digits == 0 && !neg:
			neg = true
			continue
		case c >= '0' && c <= '9':
			code = code*10 + int(c-'0')
			digits++
			continue
		}
		break
	}
	if digits == 0 {
		return 0, false
	}
	if neg {
		code = -code
	}
	return code, true
}
