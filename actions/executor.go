// Package actions is the executor: it drains the durable outbox and carries
// out what the rules decided through the IM REST API.
//
// One round claims up to BatchMax due actions (lingering briefly so that a
// burst enqueued together, such as a join wave, is claimed together), sorts
// them by group, and works on each group in its own goroutine: it learns the
// group's type when the action does not carry it, skips what the type does
// not allow (no mute in Private groups; no kick in AVChatRoom groups, where a
// kick becomes a ban, and no notice to one member, which becomes a message
// mentioning the member), leaves the owner, the admins and the App admin
// alone unless the rule names their role (an AVChatRoom group's owner comes
// from get_group_info: those groups have no admins and no member list),
// batches what can be batched (up to 500 members per forbid_send_msg, 100
// per delete_group_member) and sends the calls one after the other.
// docs/group-types.md has the whole table. Every action ends in exactly one
// audit record: done, skipped, retry, dead or dry_run.
//
// Failures are sorted by tim.Classify: retryable and rate-limited calls come
// back after an exponential backoff with jitter until MaxAttempts, then they
// are dead-lettered; permanent failures are dead-lettered at once (a batch
// refused as a whole is first retried one action at a time, so that one bad
// member does not sink the others); a call interrupted by shutdown is
// handed back without counting the attempt.
//
// A successful mute leaves a record and, when the mute ends on a time the IM
// server does not keep (a group mute) or is to be announced, a delayed
// action whose ID ends in mutelife.EndSuffix. Before that action runs it is checked:
// when a later mute of the same subject is in force (a second mute_group
// extended the group mute; a shorter one never shortens it), or the mute was
// lifted before its end (an unmute, or reconciliation saw a human lift it:
// see MarkLifted), it is skipped and audited with the reason. Likewise a
// member mute that would end before a mute of the same member timguard
// recorded (or one claimed with it) is skipped: the IM server keeps only the
// last MuteTime, so it would shorten the longer one. An unmute lifts any.
//
// Exactly once: the outbox hands each action to one worker under a lease,
// and Complete succeeds only for the lease holder. An outcome the store
// cannot record (it is down) is kept in the Journal (state_dir) and
// recorded before the next claim, also by the next process on the same
// state_dir (see kept.go). An action is repeated when a worker dies during
// the call, when another replica claims it after its lease while its
// outcome waits in a journal (or without one, after the worker gave up
// recording it), or when a call failed without an answer. Mutes, removals,
// bans and group mutes are idempotent in effect (muting twice sets the
// same mute). Messages carry a Random derived
// from the action, which makes the IM server drop a repeat within 5 minutes;
// later they are not sent again. Notices have no such key: one whose call
// failed without an answer is dead-lettered, not repeated (see fail).
package actions

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v5"

	"github.com/timguard/timguard/audit"
	"github.com/timguard/timguard/rules"
	"github.com/timguard/timguard/store"
	"github.com/timguard/timguard/tim"
)

// Store is what the executor needs from shared state: the outbox, the mute
// records it keeps up to date, and the marks of mutes lifted early.
type Store interface {
	Claim(ctx context.Context, now time.Time, limit int, lease time.Duration) ([]store.Claimed, error)
	Extend(ctx context.Context, c store.Claimed, now time.Time, lease time.Duration) error
	Complete(ctx context.Context, c store.Claimed) error
	Retry(ctx context.Context, c store.Claimed, at time.Time, errText string) error
	Release(ctx context.Context, cs ...store.Claimed) error
	DeadLetter(ctx context.Context, c store.Claimed, reason string) error
	Enqueue(ctx context.Context, actions ...store.Action) error
	SetMute(ctx context.Context, m store.Mute) error
	ClearMute(ctx context.Context, group, user string) error
	ListMutes(ctx context.Context, group string) ([]store.Mute, error)
	ClaimOnce(ctx context.Context, key string, ttl time.Duration) (bool, error)
}

// Client is the part of the IM REST client the executor calls. *tim.Client
// implements it.
type Client interface {
	ForbidSendMsg(ctx context.Context, req tim.ForbidSendMsgRequest) error
	DeleteGroupMember(ctx context.Context, req tim.DeleteGroupMemberRequest) error
	AddGroupMember(ctx context.Context, req tim.AddGroupMemberRequest) ([]tim.AddMemberResult, error)
	BanGroupMember(ctx context.Context, groupID string, members []string, seconds uint32, description string) error
	UnbanGroupMember(ctx context.Context, groupID string, members []string) error
	SendGroupSystemNotification(ctx context.Context, groupID string, to []string, content string) error
	SendGroupMsg(ctx context.Context, req tim.SendGroupMsgRequest) (tim.SendGroupMsgResult, error)
	ModifyGroupBaseInfo(ctx context.Context, req tim.ModifyGroupBaseInfoRequest) error
	GetGroupInfo(ctx context.Context, groupIDs []string) ([]tim.GroupInfo, error)
}

// RoleSource tells the owner and admins of a group. *rolecache.Filler implements
// it.
type RoleSource interface {
	// GroupRoles returns the role ("owner", "admin" or "member") of each of
	// users in group; groupType is the group's type, "" when unknown.
	GroupRoles(ctx context.Context, group, groupType string, users []string) (map[string]string, error)
}

// AuditSink takes encoded audit records; *audit.Writer implements it.
type AuditSink interface {
	WriteLine(line []byte)
}

// RecordSink is an AuditSink that also takes the record each line encodes,
// so that it need not decode the line to read it (console.ActionResults
// keeps each action's last result). The executor calls WriteRecord instead
// of WriteLine when its sink has it; rec must not be kept.
type RecordSink interface {
	AuditSink
	WriteRecord(rec *audit.Record, line []byte)
}

// Defaults for Config fields left zero.
const (
	DefaultLease        = 30 * time.Second
	DefaultMaxAttempts  = 8
	DefaultMinBackoff   = time.Second
	DefaultMaxBackoff   = 5 * time.Minute
	DefaultPollInterval = 100 * time.Millisecond
	DefaultLinger       = 25 * time.Millisecond
	DefaultBatchMax     = 500
	DefaultWorkers      = 8
	DefaultGrace        = 10 * time.Second
	DefaultGroupInfoTTL = 5 * time.Minute
	// DefaultKickBanSeconds is how long a kick bans in an AVChatRoom group,
	// where members cannot be removed, when the action has no duration.
	DefaultKickBanSeconds = 3600
)

// RESTOffReason is the audit error of actions skipped because no client is
// configured.
const RESTOffReason = "REST calls are off (no tencent.secret_key)"

// How a warning to one member of an AVChatRoom (live) group is carried out.
// A system notification there goes to all members only
// (https://intl.cloud.tencent.com/document/product/1047/34958).
const (
	// LiveWarnMention sends a group message from the App admin that starts
	// with @member and mentions the member (GroupAtInfo); every viewer sees
	// it.
	LiveWarnMention = "mention"
	// LiveWarnSkip sends nothing and audits the warning as skipped.
	LiveWarnSkip = "skip"
)

// Config configures an Executor. Store and Audit are required; the rest
// have defaults.
type Config struct {
	Store Store
	// Client calls the IM server. Nil switches REST calls off: actions are
	// completed and audited as skipped with RESTOffReason.
	Client Client
	// Roles tells owners and admins; required with a Client (a rolecache.Filler
	// on the same Client and Store, shared with the policy engine, so that
	// both fill the role cache with one call).
	Roles  RoleSource
	Audit  AuditSink
	Logger *slog.Logger
	// Now is the clock (time.Now by default).
	Now func() time.Time
	// AppAdmin is the App admin account (tencent.admin); it is never acted
	// on unless the rule names the app_admin role.
	AppAdmin string
	// DryRun decides and audits, and calls nothing.
	DryRun bool
	// Lease is how long a claim is held before another worker may take the
	// action over. It must exceed the time of one REST call with its lookups;
	// leases are renewed before a call when half of them has passed.
	Lease time.Duration
	// MaxAttempts is how many claims an action gets before it is
	// dead-lettered.
	MaxAttempts int
	// MinBackoff and MaxBackoff bound the exponential backoff with jitter
	// between attempts.
	MinBackoff, MaxBackoff time.Duration
	// PollInterval is the wait between claims when the outbox is idle.
	PollInterval time.Duration
	// Linger is how long the executor waits for more actions after claiming
	// fewer than BatchMax, so that a burst becomes one batch. Negative
	// switches it off.
	Linger time.Duration
	// BatchMax is the most actions claimed at once.
	BatchMax int
	// Workers is how many groups are worked on at once.
	Workers int
	// Grace is how long calls in flight may finish after Run's context is
	// done.
	Grace time.Duration
	// GroupInfoTTL is how long a group's type and join option are cached.
	GroupInfoTTL time.Duration
	// KickBanSeconds is the ban a kick becomes in an AVChatRoom group when
	// the action has no duration.
	KickBanSeconds int64
	// LiveWarn is LiveWarnMention (the default) or LiveWarnSkip: what a
	// warning to one member of an AVChatRoom group becomes.
	LiveWarn string
	// Replica names this process in audit records (actor).
	Replica string
	// Observe, when set, hears about every action result (metrics). It
	// must be cheap and safe for concurrent use.
	Observe func(kind, result string)
	// Journal, when set (state_dir), keeps the outcomes the store cannot
	// record, so that no action carried out is carried out again by this
	// process or the next one on the same state_dir (see OutcomeJournal).
	// Without it, recording an outcome is retried until the lease ends.
	Journal OutcomeJournal
	// Kept are the outcomes read back from Journal at start; they are
	// recorded before the first claim.
	Kept []KeptOutcome
}

// Executor drains the outbox. It is safe for concurrent use; several
// executors (in one process or many) may share one Store.
type Executor struct {
	cfg    Config
	log    *slog.Logger
	groups *groupCache
	dryRun atomic.Bool

	downMu sync.Mutex
	down   bool // the store is failing: log once, not every poll

	kept keptOutcomes // outcomes waiting for the store (with a Journal)
}

// New returns an Executor. It fails when a required part is missing.
func New(cfg Config) (*Executor, error) {
	if cfg.Store == nil {
		return nil, errors.New("actions: Config.Store is nil")
	}
	if cfg.Audit == nil {
		return nil, errors.New("actions: Config.Audit is nil")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	setDefault(&cfg.Lease, DefaultLease)
	setDefault(&cfg.MaxAttempts, DefaultMaxAttempts)
	setDefault(&cfg.MinBackoff, DefaultMinBackoff)
	setDefault(&cfg.MaxBackoff, DefaultMaxBackoff)
	setDefault(&cfg.PollInterval, DefaultPollInterval)
	setDefault(&cfg.Linger, DefaultLinger)
	setDefault(&cfg.BatchMax, DefaultBatchMax)
	setDefault(&cfg.Workers, DefaultWorkers)
	setDefault(&cfg.Grace, DefaultGrace)
	setDefault(&cfg.GroupInfoTTL, DefaultGroupInfoTTL)
	setDefault(&cfg.KickBanSeconds, DefaultKickBanSeconds)
	setDefault(&cfg.LiveWarn, LiveWarnMention)
	if cfg.LiveWarn != LiveWarnMention && cfg.LiveWarn != LiveWarnSkip {
		return nil, fmt.Errorf("actions: LiveWarn %q is not %s or %s", cfg.LiveWarn, LiveWarnMention, LiveWarnSkip)
	}
	if cfg.MaxBackoff < cfg.MinBackoff {
		return nil, fmt.Errorf("actions: MaxBackoff %v is below MinBackoff %v", cfg.MaxBackoff, cfg.MinBackoff)
	}
	if cfg.Client != nil && cfg.Roles == nil {
		return nil, errors.New("actions: Config.Roles is nil; it is required with a Client (see rolecache.New)")
	}
	e := &Executor{cfg: cfg, log: cfg.Logger.With("component", "actions")}
	e.groups = newGroupCache(cfg.GroupInfoTTL, cfg.Now)
	e.dryRun.Store(cfg.DryRun)
	if len(cfg.Kept) > 0 && cfg.Journal == nil {
		return nil, errors.New("actions: Config.Kept without a Config.Journal")
	}
	e.restoreKept(cfg.Kept)
	return e, nil
}

// SetDryRun switches dry run on or off (a configuration reload); it applies
// from the next batch.
func (e *Executor) SetDryRun(on bool) { e.dryRun.Store(on) }

func setDefault[T comparable](v *T, def T) {
	var zero T
	if *v == zero {
		*v = def
	}
}

// Run claims and carries out actions until ctx is done. Then it starts no
// new call, hands the actions it claimed but did not start back to the
// outbox, lets the calls in flight finish for up to Grace, and returns nil.
func (e *Executor) Run(ctx context.Context) error {
	work, cancelWork := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWork()
	finished := make(chan struct{})
	defer close(finished)
	go func() {
		select {
		case <-finished:
		case <-ctx.Done():
			t := time.NewTimer(e.cfg.Grace)
			defer t.Stop()
			select {
			case <-t.C:
				cancelWork()
			case <-finished:
			}
		}
	}()
	e.log.Info("executor started", "dry_run", e.dryRun.Load(), "rest", e.cfg.Client != nil,
		"lease", e.cfg.Lease, "max_attempts", e.cfg.MaxAttempts, "workers", e.cfg.Workers)
	for ctx.Err() == nil {
		n, err := e.round(ctx, work)
		if err != nil || n == 0 {
			sleep(ctx, e.cfg.PollInterval)
		}
	}
	e.replayAtStop()
	e.log.Info("executor stopped")
	return nil
}

// RunOnce claims one batch and carries it out, returning how many actions
// it claimed. It is Run's loop body, for tests and tools.
func (e *Executor) RunOnce(ctx context.Context) (int, error) {
	return e.round(ctx, ctx)
}

// round records the outcomes kept while the store was unavailable, then
// claims one batch and works on it; it claims nothing while an outcome
// waits. stop ends the starting of new calls; work bounds the calls
// themselves.
func (e *Executor) round(stop, work context.Context) (int, error) {
	if err := e.replayKept(stop); err != nil {
		e.storeDown(err)
		return 0, err
	}
	jobs, err := e.claim(stop)
	if err != nil {
		e.storeDown(err)
		return len(jobs), err
	}
	e.storeUp()
	if len(jobs) == 0 {
		return 0, nil
	}
	e.process(stop, work, jobs)
	return len(jobs), nil
}

// claim takes up to BatchMax due actions. After a claim that found some but
// fewer than BatchMax, it waits Linger and claims again, as long as more
// keep coming (at most maxLingers times), so that a burst enqueued over a
// few milliseconds is worked on as one batch.
func (e *Executor) claim(ctx context.Context) ([]*job, error) {
	const maxLingers = 8
	var jobs []*job
	for i := 0; ; i++ {
		now := e.cfg.Now()
		cs, err := e.cfg.Store.Claim(ctx, now, e.cfg.BatchMax-len(jobs), e.cfg.Lease)
		for _, c := range cs {
			jobs = append(jobs, &job{c: c, claimed: now})
		}
		if err != nil {
			if len(jobs) > 0 {
				return jobs, nil // work on what we hold; the next round reports the error
			}
			return nil, fmt.Errorf("claim actions: %w", err)
		}
		if len(cs) == 0 || len(jobs) >= e.cfg.BatchMax || e.cfg.Linger < 0 || i >= maxLingers {
			return jobs, nil
		}
		if !sleep(ctx, e.cfg.Linger) {
			return jobs, nil
		}
	}
}

func (e *Executor) storeDown(err error) {
	e.downMu.Lock()
	defer e.downMu.Unlock()
	if !e.down && !errors.Is(err, context.Canceled) {
		e.down = true
		e.log.Error("cannot claim actions; retrying every poll interval", "err", err)
	}
}

func (e *Executor) storeUp() {
	e.downMu.Lock()
	defer e.downMu.Unlock()
	if e.down {
		e.down = false
		e.log.Info("claiming actions again")
	}
}

// process works on a claimed batch: one goroutine per group, at most Workers
// at once; within a group the calls go one after the other, in the order the
// actions came.
func (e *Executor) process(stop, work context.Context, jobs []*job) {
	var order []string
	byGroup := map[string][]*job{}
	for _, j := range jobs {
		g := j.c.Group
		if _, ok := byGroup[g]; !ok {
			order = append(order, g)
		}
		byGroup[g] = append(byGroup[g], j)
	}
	sem := make(chan struct{}, e.cfg.Workers)
	var wg sync.WaitGroup
	for _, g := range order {
		gj := byGroup[g]
		select {
		case sem <- struct{}{}:
		case <-stop.Done():
			e.release(gj)
			continue
		}
		wg.Go(func() {
			defer func() { <-sem }()
			e.runGroup(stop, work, g, gj)
		})
	}
	wg.Wait()
}

// sleep waits d or until ctx is done; it reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// backoff is the wait before attempt+1: exponential from MinBackoff with
// ±50% jitter, capped at MaxBackoff. Rate-limited failures wait one step
// longer.
func (e *Executor) backoff(attempt int, class tim.Class) time.Duration {
	b := &backoff.ExponentialBackOff{
		InitialInterval:     e.cfg.MinBackoff,
		RandomizationFactor: 0.5,
		Multiplier:          2,
		MaxInterval:         e.cfg.MaxBackoff,
	}
	b.Reset()
	steps := max(attempt, 1)
	if class == tim.RateLimited {
		steps++
	}
	var d time.Duration
	for range steps {
		d = b.NextBackOff()
	}
	return min(d, e.cfg.MaxBackoff)
}

// retryStore runs op until it succeeds, fails for another reason than the
// store being unavailable, or ctx ends. It is used after a REST call
// succeeded, so that a short store outage does not cause the call to be
// made again.
func retryStore(ctx context.Context, op func(context.Context) error) error {
	return RetryStore(ctx, 50*time.Millisecond, time.Second, op)
}

// RetryStore runs op until it succeeds, fails for another reason than the
// store being unavailable (store.ErrUnavailable), or ctx ends; it then
// returns op's last error. Between attempts it waits first, doubling the
// wait up to most. ctx bounds the whole; op gets ctx and may bound each
// attempt itself. The executor and the scheduler share it.
func RetryStore(ctx context.Context, first, most time.Duration, op func(context.Context) error) error {
	wait := first
	for {
		err := op(ctx)
		if err == nil || !errors.Is(err, store.ErrUnavailable) {
			return err
		}
		if !sleep(ctx, wait) {
			return err
		}
		wait = min(2*wait, most)
	}
}

// bounded gives a store operation that must happen even during shutdown its
// own short deadline, detached from ctx's cancellation but not from its
// values.
func bounded(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
}

// hasRole reports whether the action's rule may act on role.
func hasRole(a store.Action, role string) bool {
	for _, r := range a.Roles {
		if r == role {
			return true
		}
	}
	return false
}

// permanent reports whether seconds means "without end".
func permanent(seconds int64) bool { return seconds >= rules.PermanentSeconds }

// clampSeconds turns an action's seconds into the uint32 the API takes.
func clampSeconds(seconds int64) uint32 {
	if seconds >= int64(tim.MuteForever) {
		return tim.MuteForever
	}
	return uint32(max(seconds, 0))
}

// record writes one action audit record.
func (e *Executor) record(j *job, result, command, errText string) {
	a := j.c.Action
	rec := &audit.Record{
		Time:    e.cfg.Now(),
		Kind:    audit.KindAction,
		EventID: a.EventID,
		Command: command,
		Group:   a.Group,
		User:    a.User,
		Actions: []audit.ActionRef{{
			ID: a.ID, Kind: a.Kind, Group: a.Group, User: a.User, Seconds: a.Seconds, Text: a.Text, Rule: a.Rule,
		}},
		Result:  result,
		Error:   errText,
		Attempt: j.c.Attempt,
		Actor:   e.cfg.Replica,
	}
	if a.Rule != "" {
		rec.Rules = []string{a.Rule}
	}
	rec.LatencyUS = j.took.Microseconds()
	if e.cfg.Observe != nil {
		e.cfg.Observe(a.Kind, result)
	}
	line, err := audit.Encode(rec)
	if err != nil {
		e.log.Error("encode action audit record", "action", a.ID, "err", err)
		return
	}
	if rs, ok := e.cfg.Audit.(RecordSink); ok {
		rs.WriteRecord(rec, line)
		return
	}
	e.cfg.Audit.WriteLine(line)
}

// soloPrefix starts the error recorded for an action whose batch was
// refused as a whole: the next attempt sends it in a call of its own.
const soloPrefix = "batch refused; retrying alone: "

func isSolo(c store.Claimed) bool { return strings.HasPrefix(c.LastError, soloPrefix) }
