// Package redis is the Store on Redis, shared by every replica of the
// bot. It works on a single node, Sentinel or Cluster through go-redis'
// UniversalClient.
//
// What must be atomic runs as Lua scripts: the outbox keys share one hash
// tag and the mute keys another, so each script touches a single Cluster
// slot. Enrich and Commit send one pipeline each, shared with concurrent
// calls as the scripts of completions, mutes and the REST budget are
// (BatchOptions). Every call is bounded by Options.Timeout, and failures
// to reach Redis wrap store.ErrUnavailable.
//
// Key layout under the prefix P (default "timguard:"):
//
//	P w:KEY                      counter window (zset EventID/i -> ms)
//	P s:LEN:GROUP:USER           strikes (zset ID/i -> ms)
//	P a:LEN:GROUP:USER           activity (hash f first seen ms, m messages, e last message; PX ttl)
//	P d:KEY                      dedupe mark (string, PX ttl)
//	P c:KEY                      ClaimOnce mark (string, PX ttl)
//	P r:GROUP                    cached roles (hash user -> role, PX ttl)
//	P modes                      rule modes (hash name -> until ms)
//	P decisions                  recent decisions (stream, MAXLEN ~)
//	P ready                      written by Ping (string, PX 1m)
//	P {P mutes}:g:GROUP          a group's mutes (hash user -> "until json")
//	P {P mutes}:groups           muted groups (zset group -> latest until)
//	P {P outbox}:...             the outbox (see scripts.go)
//	rate:P rest                  the REST budget (redis_rate GCRA)
package redis

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/prometheus/client_golang/prometheus"
	goredis "github.com/redis/go-redis/v9"

	"github.com/timguard/timguard/store"
	"github.com/timguard/timguard/store/internal/storeutil"
)

// Options configures a Redis Store. Zero values take the defaults.
type Options struct {
	// URL names the server:
	//   redis://[user:pass@]host:6379/0       a single node (rediss:// for TLS,
	//                                          unix:///path.sock also works)
	//   redis-sentinel://host:26379/0?master_name=mymaster&addr=host2:26379
	//                                          Sentinel (also redis:// with
	//                                          master_name)
	//   redis-cluster://host:7000?addr=host:7001
	//                                          Cluster (also redis:// with addr)
	// Query parameters are go-redis' (dial_timeout, pool_size, ...).
	URL string
	// KeyPrefix starts every key. Default "timguard:". It may not contain
	// braces, which would break the hash tags.
	KeyPrefix string
	// Timeout bounds every call, and is the dial, read, write and pool
	// timeout unless the URL sets those. Default 250ms.
	Timeout time.Duration
	// Logger receives availability changes. Default: discard.
	Logger *slog.Logger
	// DoneTTL is how long completed action ids are remembered so that
	// enqueueing them again is a no-op. Default 24h.
	DoneTTL time.Duration
	// MaxDecisions caps the recent-decision stream. Default 10000.
	MaxDecisions int
	// DeadMax caps the dead letters kept: when an action is dead-lettered,
	// the oldest beyond DeadMax are dropped with their data. Default
	// DefaultDeadMax (10000).
	DeadMax int
	// DeadTTL is how long a dead letter is kept: when an action is
	// dead-lettered, those dead-lettered longer ago are dropped with their
	// data. Default DefaultDeadTTL (7 days).
	DeadTTL time.Duration
	// Batch configures how concurrent Enrich and Commit calls and the
	// executor's scripts share pipelines (see BatchOptions).
	Batch BatchOptions
	// Registerer, when set, receives the store's metrics
	// (timguard_store_batch_size).
	Registerer prometheus.Registerer
}

// Defaults of the dead-letter retention, shared with store/memory.
const (
	DefaultDeadMax = storeutil.DefaultDeadMax
	DefaultDeadTTL = storeutil.DefaultDeadTTL
)

func (o *Options) defaults() error {
	if o.KeyPrefix == "" {
		o.KeyPrefix = "timguard:"
	}
	if strings.ContainsAny(o.KeyPrefix, "{}") {
		return fmt.Errorf("redis store: key prefix %q contains a brace", o.KeyPrefix)
	}
	if o.Timeout <= 0 {
		o.Timeout = 250 * time.Millisecond
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	storeutil.RetentionDefaults(&o.DoneTTL, &o.MaxDecisions, &o.DeadMax, &o.DeadTTL)
	o.Batch.defaults()
	return nil
}

// Store is the Redis Store.
type Store struct {
	rdb          goredis.UniversalClient
	shared       sharedScripter
	limiter      *redis_rate.Limiter
	scripts      scripts
	k            keys
	timeout      time.Duration
	doneTTL      time.Duration
	maxDecisions int
	deadMax      int
	deadTTL      time.Duration
	log          *slog.Logger
	down         atomic.Bool
	// batch shares pipelines between concurrent calls; nil when batching
	// is off.
	batch *batcher
	// completions merges concurrent Complete calls (outbox.go).
	completions completions
	// built, when set (by tests), is called with what a part's command
	// buffer holds once its commands are built, and what init was told,
	// to check the sizes. It takes values: a *cmdBuf passed to it would
	// move every buffer to the heap.
	built func(got, sized bufSize)
}

var _ store.Store = (*Store)(nil)

// startupTimeout is the least time New gives Redis to answer its first
// call, which also dials and handshakes (TLS, HELLO).
const startupTimeout = 2 * time.Second

// New connects to opts.URL and checks that Redis answers within ctx and the
// longer of opts.Timeout and two seconds; an unreachable server gives an
// error matching store.ErrUnavailable.
func New(ctx context.Context, opts Options) (*Store, error) {
	if err := opts.defaults(); err != nil {
		return nil, err
	}
	rdb, err := newClient(opts.URL, opts.Timeout)
	if err != nil {
		return nil, err
	}
	s, err := NewFromClient(rdb, opts)
	if err != nil {
		_ = rdb.Close()
		return nil, err
	}
	pctx, cancel := context.WithTimeout(ctx, max(opts.Timeout, startupTimeout))
	defer cancel()
	if err := s.result("ping", "", rdb.Ping(pctx).Err()); err != nil {
		_ = rdb.Close()
		return nil, err
	}
	return s, nil
}

// NewFromClient builds a Store on a client the caller configured; opts.URL is
// ignored. Close closes the client. The client should respect context
// deadlines (ContextTimeoutEnabled) for calls to be bounded.
func NewFromClient(rdb goredis.UniversalClient, opts Options) (*Store, error) {
	if err := opts.defaults(); err != nil {
		return nil, err
	}
	s := &Store{
		rdb:          rdb,
		scripts:      newScripts(),
		k:            newKeys(opts.KeyPrefix),
		timeout:      opts.Timeout,
		doneTTL:      opts.DoneTTL,
		maxDecisions: opts.MaxDecisions,
		deadMax:      opts.DeadMax,
		deadTTL:      opts.DeadTTL,
		log:          opts.Logger.With("component", "store.redis"),
	}
	if opts.Batch.MaxSize > 1 {
		s.batch = newBatcher(rdb, opts.Batch, opts.Registerer)
	}
	s.shared = sharedScripter{UniversalClient: rdb, s: s}
	s.limiter = redis_rate.NewLimiter(s.shared)
	return s, nil
}

// newClient builds a single-node, Sentinel or Cluster client from rawURL.
func newClient(rawURL string, timeout time.Duration) (goredis.UniversalClient, error) {
	if rawURL == "" {
		return nil, errors.New("redis store: empty URL")
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		// url.Error would print the URL, password included.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("redis store: parse URL: %w", err)
	}
	q := u.Query()
	base, kind, _ := strings.Cut(u.Scheme, "-")
	plain := base == "redis" || base == "rediss"
	switch {
	case plain && (kind == "sentinel" || kind == "" && q.Has("master_name")):
		u.Scheme = base
		o, err := goredis.ParseFailoverURL(u.String())
		if err != nil {
			return nil, fmt.Errorf("redis store: sentinel URL: %w", err)
		}
		if o.MasterName == "" {
			return nil, errors.New("redis store: sentinel URL without master_name")
		}
		tune(timeout, &o.DialTimeout, &o.ReadTimeout, &o.WriteTimeout, &o.PoolTimeout, &o.MaxRetries, &o.MaxRetryBackoff)
		if o.Protocol, err = Protocol(q, o.Protocol); err != nil {
			return nil, fmt.Errorf("redis store: sentinel URL: %w", err)
		}
		o.ContextTimeoutEnabled = true
		return goredis.NewFailoverClient(o), nil
	case plain && (kind == "cluster" || kind == "" && q.Has("addr")):
		u.Scheme = base
		o, err := goredis.ParseClusterURL(u.String())
		if err != nil {
			return nil, fmt.Errorf("redis store: cluster URL: %w", err)
		}
		tune(timeout, &o.DialTimeout, &o.ReadTimeout, &o.WriteTimeout, &o.PoolTimeout, &o.MaxRetries, &o.MaxRetryBackoff)
		if o.Protocol, err = Protocol(q, o.Protocol); err != nil {
			return nil, fmt.Errorf("redis store: cluster URL: %w", err)
		}
		o.ContextTimeoutEnabled = true
		return goredis.NewClusterClient(o), nil
	case kind == "" && (plain || base == "unix"):
		o, err := goredis.ParseURL(rawURL)
		if err != nil {
			return nil, fmt.Errorf("redis store: URL: %w", err)
		}
		tune(timeout, &o.DialTimeout, &o.ReadTimeout, &o.WriteTimeout, &o.PoolTimeout, &o.MaxRetries, &o.MaxRetryBackoff)
		if o.Protocol, err = Protocol(q, o.Protocol); err != nil {
			return nil, fmt.Errorf("redis store: URL: %w", err)
		}
		o.ContextTimeoutEnabled = true
		return goredis.NewClient(o), nil
	default:
		return nil, fmt.Errorf("redis store: URL scheme %q: want redis, rediss, unix, redis-sentinel or redis-cluster", u.Scheme)
	}
}

// Protocol is the RESP version a client of the store speaks: the URL's
// protocol parameter, 2 or 3, when it has one (parsed is what go-redis
// read from it), else 2. The store reads only integers, strings, arrays
// and errors, which RESP2 carries as well as RESP3; on RESP3 go-redis
// looks for push notifications (which the store never subscribes to)
// before every reply it reads, a few percent of the bot's CPU at
// saturation. RESP3 is what go-redis' maintenance notifications and
// client-side caching need; the store uses neither.
//
// A URL naming it twice is refused: go-redis reads the last, most readers
// the first.
func Protocol(q url.Values, parsed int) (int, error) {
	switch vs := q["protocol"]; {
	case len(vs) == 0:
		return 2, nil
	case len(vs) > 1:
		return 0, errors.New("protocol= is given more than once")
	case parsed != 2 && parsed != 3:
		return 0, fmt.Errorf("protocol=%q: want 2 or 3", vs[0])
	}
	return parsed, nil
}

// tune sets the timeouts the URL left unset to timeout, and retries a failed
// command once, quickly: the call's own deadline bounds the rest.
func tune(timeout time.Duration, dial, read, write, pool *time.Duration, retries *int, maxBackoff *time.Duration) {
	for _, d := range []*time.Duration{dial, read, write, pool} {
		if *d == 0 {
			*d = timeout
		}
	}
	if *retries == 0 {
		*retries = 1
	}
	if *maxBackoff == 0 {
		*maxBackoff = 64 * time.Millisecond
	}
}

// bound gives one call its deadline.
func (s *Store) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.timeout)
}

// run sends cmds: in a pipeline shared with concurrent calls when batching
// is on and they are few, else in one of their own. Either way the call is
// bounded like bound's: by ctx and Options.Timeout. Like Pipeliner.Exec it
// returns the commands and the first error among them; it returns no
// commands when they did not run, or may still be running for a caller that
// stopped waiting: their values must not be read then.
func (s *Store) run(ctx context.Context, cmds []goredis.Cmder) ([]goredis.Cmder, error) {
	if s.batch == nil || len(cmds) > batchMaxCommands {
		ctx, cancel := s.bound(ctx)
		defer cancel()
		pipe := s.rdb.Pipeline()
		_ = pipe.BatchProcess(ctx, cmds...)
		return pipe.Exec(ctx)
	}
	// A batched call needs no context of its own for its deadline (which
	// costs a timer, a context and a child in ctx's): the batcher waits
	// for its pipeline until then on a timer it reuses.
	deadline := time.Now().Add(s.timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	ran, err := s.batch.do(ctx, deadline, cmds)
	if !ran {
		return nil, err
	}
	return cmds, err
}

// sharedScripter is the client with EVALSHA sent through run, in a
// pipeline shared with concurrent calls: the scripts the executor runs one
// call at a time (completions, mutes, the shared REST budget's limiter)
// ride with the callbacks' reads and writes instead of paying a write and a
// read of the socket each, in the bot and in Redis. Script.Run falls back to
// EVAL, which goes to the client directly, when Redis does not have the
// script cached (after a restart or a SCRIPT FLUSH).
type sharedScripter struct {
	goredis.UniversalClient
	s *Store
}

// EvalSha runs the script sha1 through run. Its Cmd carries the error when
// the call did not run (or its caller stopped waiting, while its own Cmd may
// still be in use).
func (c sharedScripter) EvalSha(ctx context.Context, sha1 string, keys []string, args ...any) *goredis.Cmd {
	// A pipeline only builds the command here: run sends it.
	cmd := c.UniversalClient.Pipeline().EvalSha(ctx, sha1, keys, args...)
	if cmds, err := c.s.run(ctx, []goredis.Cmder{cmd}); cmds == nil {
		failed := goredis.NewCmd(ctx)
		failed.SetErr(err)
		return failed
	}
	return cmd
}

// result turns a go-redis error into the store's: nil stays nil (and notes
// that Redis answers), unreachable or slow Redis wraps store.ErrUnavailable,
// and every error names the operation and the key.
func (s *Store) result(op, key string, err error) error {
	if err == nil {
		if s.down.Load() && s.down.CompareAndSwap(true, false) {
			s.log.Info("redis answers again", "op", op)
		}
		return nil
	}
	if unavailable(err) {
		if s.down.CompareAndSwap(false, true) {
			s.log.Warn("redis unavailable", "op", op, "key", key, "err", err)
		}
		return fmt.Errorf("redis %s %q: %w: %w", op, key, store.ErrUnavailable, err)
	}
	return fmt.Errorf("redis %s %q: %w", op, key, err)
}

// unavailable says whether err means Redis could not be reached in time or
// cannot serve now: besides the network and timeouts, the replies of a
// server that refuses writes for a while (out of memory under
// maxmemory-policy noeviction, a failed snapshot with
// stop-writes-on-bgsave-error, too few replicas, a busy script, loading,
// read-only, failing over). Callers keep what they meant to write and try
// again; no such reply says the write itself is wrong.
func unavailable(err error) bool {
	for _, target := range []error{
		context.DeadlineExceeded, goredis.ErrPoolTimeout, goredis.ErrPoolExhausted, goredis.ErrClosed,
		io.EOF, io.ErrUnexpectedEOF, syscall.ECONNREFUSED, syscall.ECONNRESET, syscall.EPIPE,
	} {
		if errors.Is(err, target) {
			return true
		}
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return true
	}
	return goredis.IsLoadingError(err) || goredis.IsClusterDownError(err) || goredis.IsTryAgainError(err) ||
		goredis.IsMasterDownError(err) || goredis.IsReadOnlyError(err) || goredis.IsMaxClientsError(err) ||
		goredis.IsOOMError(err) || goredis.IsNoReplicasError(err) ||
		goredis.HasErrorPrefix(err, "MISCONF") || goredis.HasErrorPrefix(err, "BUSY")
}

// Ping checks that Redis answers and takes writes: it sets a small key
// that expires after a minute. A Redis that answers PING but refuses every
// write (full under maxmemory-policy noeviction, a failed snapshot with
// stop-writes-on-bgsave-error, a read-only replica) is not ready.
func (s *Store) Ping(ctx context.Context) error {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	return s.result("ping", s.k.ready, s.rdb.Set(ctx, s.k.ready, "1", time.Minute).Err())
}

// Close sends the calls waiting for a pipeline, then closes the client.
func (s *Store) Close() error {
	if s.batch != nil {
		s.batch.close()
	}
	if err := s.rdb.Close(); err != nil && !errors.Is(err, goredis.ErrClosed) {
		return fmt.Errorf("redis close: %w", err)
	}
	return nil
}

// RouteLibraryLog sends go-redis's own messages (failed dials, pool and
// Sentinel notices) to log as warnings with component "go-redis", instead
// of plain text lines on standard error that break a JSON log. During an
// outage go-redis repeats the same message for every failed dial: each
// message (by its format) is logged at most once every libraryLogEvery,
// with the number of repeats left out since. go-redis has one logger for
// the whole process, so this is called once, at start.
func RouteLibraryLog(log *slog.Logger) {
	goredis.SetLogger(newLibraryLog(log.With("component", "go-redis"), time.Now))
}

// libraryLogEvery is how often one go-redis message is logged at most.
const libraryLogEvery = 10 * time.Second

// libraryLog adapts slog to go-redis's logging interface.
type libraryLog struct {
	log *slog.Logger
	now func() time.Time

	mu   sync.Mutex
	seen map[string]*libraryMessage // by format
}

type libraryMessage struct {
	last    time.Time
	skipped int
}

func newLibraryLog(log *slog.Logger, now func() time.Time) *libraryLog {
	return &libraryLog{log: log, now: now, seen: map[string]*libraryMessage{}}
}

func (l *libraryLog) Printf(ctx context.Context, format string, v ...any) {
	now := l.now()
	l.mu.Lock()
	m := l.seen[format]
	if m == nil {
		m = &libraryMessage{}
		l.seen[format] = m
	} else if now.Sub(m.last) < libraryLogEvery {
		m.skipped++
		l.mu.Unlock()
		return
	}
	skipped := m.skipped
	m.last, m.skipped = now, 0
	l.mu.Unlock()
	msg := strings.TrimSpace(strings.TrimPrefix(fmt.Sprintf(format, v...), "redis: "))
	if skipped > 0 {
		l.log.WarnContext(ctx, msg, "repeats_not_logged", skipped)
		return
	}
	l.log.WarnContext(ctx, msg)
}

// keys names the store's keys under one prefix.
type keys struct {
	prefix    string
	modes     string
	decisions string
	rate      string
	ready     string // the key Ping writes
	mutes     string // prefix of a group's mute hash
	muted     string
	outbox    []string // the outbox scripts' KEYS, see scripts.go
	// The prefixes of the keys Enrich and Commit name per call, joined
	// once here rather than on every call.
	w, s, d, r string
}

func newKeys(p string) keys {
	mt := p + "{" + p + "mutes}:"
	ob := p + "{" + p + "outbox}:"
	return keys{
		prefix:    p,
		w:         p + "w:",
		s:         p + "s:",
		d:         p + "d:",
		r:         p + "r:",
		modes:     p + "modes",
		decisions: p + "decisions",
		rate:      p + "rest",
		ready:     p + "ready",
		mutes:     mt + "g:",
		muted:     mt + "groups",
		outbox: []string{
			ob + "ready", ob + "claimed", ob + "dead", ob + "done", ob + "data",
			ob + "attempt", ob + "token", ob + "error", ob + "due", ob + "reason",
		},
	}
}

func (k keys) window(key string) string    { return k.w + key }
func (k keys) dedupe(key string) string    { return k.d + key }
func (k keys) claimOnce(key string) string { return k.prefix + "c:" + key }
func (k keys) roles(group string) string   { return k.r + group }
func (k keys) groupMutes(group string) string {
	return k.mutes + group
}

// strikes names a user's strikes in a group; the group's length keeps
// ("a:b", "c") and ("a", "b:c") apart.
func (k keys) strikes(group, user string) string {
	return k.s + strconv.Itoa(len(group)) + ":" + group + ":" + user
}

// activity names a user's activity in a group (user.first_seen,
// user.messages), keyed like strikes.
func (k keys) activity(group, user string) string {
	return k.prefix + "a:" + strconv.Itoa(len(group)) + ":" + group + ":" + user
}

// randomToken returns 16 random hex digits.
func randomToken() string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms.
	return hex.EncodeToString(b[:])
}
