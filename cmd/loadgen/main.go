// Command loadgen measures timguard: it sets up a bot with real Redis and the
// fake IM server, sends it signed callbacks of a realistic mix, sends the
// same load to two reference handlers, and prints throughput, latency
// percentiles, CPU per callback of every process and the ratios:
//
//   - bare: a gin handler that answers the same envelope and nothing else;
//   - floor: a gin handler that answers only after one pipelined Redis
//     round trip (INCR and PEXPIRE), the least any stateful decision pays.
//
// Each target first gets -warmup of load (the bot fills its role caches),
// then an open-loop run at -rate, then -pairs rounds of closed-loop runs,
// the targets one after the other in each round, so that a slow spell of
// the machine hits them alike; the report gives the median of the rounds.
//
//	go run ./cmd/loadgen                          # about 5 minutes
//	go run ./cmd/loadgen -rate 0 -pairs 1         # one closed-loop round only
//	go run ./cmd/loadgen -targets bot,floor       # leave out the bare handler
//	go run ./cmd/loadgen -json                    # machine-readable
//
// Everything it needs it starts itself: it builds ./cmd/bot (or runs -bot),
// starts a private redis-server (or uses REDIS_URL), runs the fake IM server
// in its own process with the groups of the mix, writes the config and the
// rules (harness.LoadRules), starts the bot and waits for /readyz. The bot's
// audit log is written outside its config directory, which the bot watches
// for reloads. The reference handlers run as separate processes, as the bot
// does, so that all are measured the same way: another process across
// loopback TCP, with its own Go runtime competing for the same CPUs.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/timguard/timguard/audit"
	"github.com/timguard/timguard/store/redis"
	"github.com/timguard/timguard/test/harness"
	"github.com/timguard/timguard/tim/timtest"
)

func main() {
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case bareCommand:
			os.Exit(serveBare(os.Args[2:], os.Stdout, os.Stderr))
		case floorCommand:
			os.Exit(serveFloor(os.Args[2:], os.Stdout, os.Stderr))
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// Targets.
const (
	targetBot   = "bot"
	targetBare  = "bare"
	targetFloor = "floor"
)

// options are the command line.
type options struct {
	bot         string
	redisURL    string
	rate        float64
	concurrency int
	connections int
	duration    time.Duration
	warmup      time.Duration
	runWarmup   time.Duration
	pairs       int
	groups      int
	users       int
	seed        uint64
	targets     []string
	json        bool
	keep        bool
}

func (o *options) has(target string) bool { return slices.Contains(o.targets, target) }

func parseOptions(args []string, stderr io.Writer) (*options, error) {
	o := &options{}
	var targets string
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.bot, "bot", "", "path of a built bot `binary` (default: go build ./cmd/bot into a temporary directory)")
	fs.StringVar(&o.redisURL, "redis-url", os.Getenv("REDIS_URL"), "Redis to use, under a key prefix of its own (default $REDIS_URL; empty: start a private redis-server)")
	fs.Float64Var(&o.rate, "rate", 2000, "open loop: callbacks per `second`, latency measured from each one's scheduled time (0 skips the open-loop runs)")
	fs.IntVar(&o.concurrency, "concurrency", 32, "closed loop: `workers` sending back to back, for the highest throughput (0 skips the closed-loop runs)")
	fs.IntVar(&o.connections, "connections", 64, "open loop: keep-alive `connections` (concurrent requests at most)")
	fs.DurationVar(&o.duration, "duration", 20*time.Second, "measured length of each run")
	fs.DurationVar(&o.warmup, "warmup", 10*time.Second, "closed-loop load sent to each target once before its first run, not measured (long enough for a fresh bot to fill every group's role cache at the REST budget's pace)")
	fs.DurationVar(&o.runWarmup, "run-warmup", time.Second, "load sent before each run's measurement, not measured")
	fs.IntVar(&o.pairs, "pairs", 3, "closed-loop rounds: each round runs every target once, one after the other; the report gives the median")
	fs.IntVar(&o.groups, "groups", 1000, "groups the callbacks are spread over")
	fs.IntVar(&o.users, "users", 20000, "ordinary users sending messages")
	fs.Uint64Var(&o.seed, "seed", 1, "seed of the mix")
	fs.StringVar(&targets, "targets", "bot,bare,floor", "what to load, comma-separated: bot, bare (a bare gin handler), floor (a handler making one pipelined Redis round trip)")
	fs.BoolVar(&o.json, "json", false, "print the report as JSON")
	fs.BoolVar(&o.keep, "keep", false, "keep the temporary directory (config, rules, audit log, bot log) and print its path")
	fs.Usage = func() {
		fmt.Fprint(stderr, "usage: loadgen [flags]\n\nloadgen runs timguard (bot, Redis, fake IM server) and two reference handlers under the same load and compares them.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	for t := range strings.SplitSeq(targets, ",") {
		t = strings.TrimSpace(t)
		switch {
		case t != targetBot && t != targetBare && t != targetFloor:
			return nil, fmt.Errorf("-targets: %q is not bot, bare or floor", t)
		case slices.Contains(o.targets, t):
			return nil, fmt.Errorf("-targets: %q is named twice", t)
		}
		o.targets = append(o.targets, t)
	}
	switch {
	case o.rate < 0 || o.concurrency < 0 || o.connections < 1:
		return nil, errors.New("-rate and -concurrency must not be negative, -connections must be positive")
	case o.rate == 0 && o.concurrency == 0:
		return nil, errors.New("-rate and -concurrency are both 0: nothing to run")
	case o.duration <= 0 || o.warmup < 0 || o.runWarmup < 0:
		return nil, errors.New("-duration must be positive, -warmup and -run-warmup not negative")
	case o.pairs < 1:
		return nil, errors.New("-pairs must be at least 1")
	case o.groups < 1 || o.users < 1:
		return nil, errors.New("-groups and -users must be positive")
	}
	return o, nil
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	o, err := parseOptions(args, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintf(stderr, "loadgen: %v\n", err)
		return 2
	}
	rep, err := measure(ctx, o, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "loadgen: %v\n", err)
		return 1
	}
	if o.json {
		err = rep.writeJSON(stdout)
	} else {
		err = rep.writeText(stdout)
	}
	if err != nil {
		fmt.Fprintf(stderr, "loadgen: %v\n", err)
		return 1
	}
	return 0
}

// env is everything measure starts; close stops it.
type env struct {
	dir      string
	keep     bool
	redisURL string
	prefix   string
	redis    *harness.Redis
	im       *timtest.Server
	bot      *harness.Bot
	bare     *server
	floor    *server
	store    *redis.Store
	cleanup  func()
}

// pids are the processes whose CPU time a run of target counts: the
// target's server, Redis (when loadgen started it) and loadgen itself.
func (e *env) pids(target string) map[string]int {
	pids := map[string]int{"loadgen": os.Getpid()}
	switch {
	case target == targetBot && e.bot != nil:
		pids["server"] = e.bot.PID()
	case target == targetBare && e.bare != nil:
		pids["server"] = e.bare.PID()
	case target == targetFloor && e.floor != nil:
		pids["server"] = e.floor.PID()
	}
	if e.redis != nil {
		pids["redis"] = e.redis.PID()
	}
	return pids
}

func (e *env) close(log io.Writer) {
	for _, s := range []*server{e.bare, e.floor} {
		if s != nil {
			s.stop()
		}
	}
	if e.bot != nil {
		if err := e.bot.Stop(15 * time.Second); err != nil {
			progress(log, "%v", err)
		}
	}
	if e.store != nil {
		_ = e.store.Close()
	}
	if e.cleanup != nil {
		e.cleanup()
	}
	if e.im != nil {
		e.im.Close()
	}
	if e.redis != nil {
		e.redis.Stop()
	}
	if e.keep {
		progress(log, "kept %s", e.dir)
	} else if e.dir != "" {
		_ = os.RemoveAll(e.dir)
	}
}

const (
	token = "loadgen-callback-token"
	appID = timtest.DefaultSDKAppID
)

// progress says on log what loadgen is doing.
func progress(log io.Writer, format string, args ...any) {
	fmt.Fprintf(log, "loadgen: "+format+"\n", args...)
}

// measure sets everything up, runs the loads and returns the report.
func measure(ctx context.Context, o *options, log io.Writer) (*report, error) {
	e := &env{keep: o.keep}
	defer e.close(log)
	var err error
	if e.dir, err = os.MkdirTemp("", "timguard-loadgen-"); err != nil {
		return nil, err
	}
	mix := harness.NewLoadMix(o.seed, o.groups, o.users)
	rep := newReport(o, mix)

	if o.has(targetBot) || o.has(targetFloor) {
		if err := e.startRedis(ctx, o, rep, log); err != nil {
			return nil, err
		}
	}
	drivers := map[string]*harness.Driver{}
	driver := func(url string) *harness.Driver {
		d := harness.NewDriver(harness.DriverConfig{Targets: []string{url}, SDKAppID: appID, Token: token, Mix: mix, Connections: max(o.connections, o.concurrency)})
		return d
	}
	for _, t := range o.targets {
		switch t {
		case targetBare:
			progress(log, "starting the bare handler (a separate process)")
			if e.bare, err = startServer(ctx, bareCommand); err != nil {
				return nil, err
			}
			drivers[t] = driver(e.bare.URL)
		case targetFloor:
			progress(log, "starting the floor handler (a separate process, one pipelined Redis round trip per callback)")
			if e.floor, err = startServer(ctx, floorCommand, "-redis-url", e.redisURL, "-prefix", e.prefix+"floor:"); err != nil {
				return nil, err
			}
			drivers[t] = driver(e.floor.URL)
		case targetBot:
			if err := e.startBot(ctx, o, mix, log); err != nil {
				return nil, err
			}
			drivers[t] = driver(e.bot.URL)
		}
	}
	defer func() {
		for _, d := range drivers {
			d.Close()
		}
	}()

	// Each run sends different events (First), so that the bot sees new
	// messages, not repeats.
	first := 0
	next := func(l harness.Load) harness.Load {
		l.First = first
		first += 1 << 28
		return l
	}
	if o.warmup > 0 {
		for _, t := range o.targets {
			progress(log, "warming up the %s for %v (closed loop, %d workers)", t, o.warmup, max(o.concurrency, 8))
			if _, err := drivers[t].Run(ctx, next(harness.Load{Workers: max(o.concurrency, 8), Duration: o.warmup})); err != nil {
				return nil, err
			}
			if t == targetBot {
				if err := harness.Settle(ctx, e.store, nil, 2*time.Minute); err != nil {
					progress(log, "after the warm-up: %v", err)
				}
			}
		}
	}
	if o.rate > 0 {
		l := harness.Load{Rate: o.rate, Workers: o.connections, Warmup: o.runWarmup, Duration: o.duration}
		for _, t := range o.targets {
			if err := e.runOne(ctx, t, drivers[t], next(l), 0, rep, log); err != nil {
				return nil, err
			}
		}
	}
	if o.concurrency > 0 {
		l := harness.Load{Workers: o.concurrency, Warmup: o.runWarmup, Duration: o.duration}
		for round := 1; round <= o.pairs; round++ {
			for _, t := range o.targets {
				if err := e.runOne(ctx, t, drivers[t], next(l), round, rep, log); err != nil {
					return nil, err
				}
			}
		}
	}
	rep.finish()
	return rep, nil
}

// startRedis starts a private Redis, or picks a key prefix of its own in
// the Redis -redis-url names.
func (e *env) startRedis(ctx context.Context, o *options, rep *report, log io.Writer) error {
	e.redisURL, e.prefix = o.redisURL, "timguard:"
	if e.redisURL == "" {
		dir := filepath.Join(e.dir, "redis")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		r, err := harness.StartRedis(harness.RedisOptions{Dir: dir})
		if err != nil {
			return err
		}
		e.redis, e.redisURL = r, r.URL()
		progress(log, "started a private redis-server on port %d", r.Port())
	} else {
		var b [6]byte
		_, _ = rand.Read(b[:])
		e.prefix = "timguard-loadgen:" + hex.EncodeToString(b[:]) + ":"
		url, prefix := e.redisURL, e.prefix
		e.cleanup = func() { deletePrefix(url, prefix) }
		progress(log, "using %s under the key prefix %s", redactURL(e.redisURL), e.prefix)
	}
	rep.Machine.Redis = redisVersion(ctx, e.redisURL)
	return nil
}

// startBot starts the fake IM server and the bot.
func (e *env) startBot(ctx context.Context, o *options, mix *harness.Mix, log io.Writer) error {
	binary := o.bot
	if binary == "" {
		progress(log, "building ./cmd/bot")
		var err error
		if binary, err = harness.BuildBot(ctx, e.dir); err != nil {
			return fmt.Errorf("%w (run loadgen inside the timguard repository, or pass -bot)", err)
		}
	}
	e.im = timtest.New(timtest.Options{})
	harness.AddGroups(e.im, mix)
	// The audit log goes outside the config directory, which the bot
	// watches for reloads.
	auditDir := filepath.Join(e.dir, "audit")
	if err := os.MkdirAll(auditDir, 0o755); err != nil {
		return err
	}
	cfg := harness.BotConfig{Token: token, IMURL: e.im.URL(), RedisURL: e.redisURL, KeyPrefix: e.prefix,
		AuditFile: filepath.Join(auditDir, "audit.jsonl")}
	progress(log, "starting the bot")
	var err error
	if e.bot, err = harness.StartBot(ctx, "bot", binary, filepath.Join(e.dir, "bot"), cfg, harness.LoadRules); err != nil {
		return err
	}
	e.store, err = redis.New(ctx, redis.Options{URL: e.redisURL, KeyPrefix: e.prefix, Timeout: 2 * time.Second,
		Batch: redis.BatchOptions{MaxSize: 1}})
	return err
}

// runOne runs one load against target and adds it to the report; for the
// bot it then waits until the executor has carried out what the load
// decided and adds the actions.
func (e *env) runOne(ctx context.Context, target string, d *harness.Driver, l harness.Load, round int, rep *report, log io.Writer) error {
	progress(log, "%s against the %s", describe(l), target)
	var before []audit.Record
	if target == targetBot {
		var err error
		if before, err = harness.ReadAudit(e.bot.AuditPath()); err != nil {
			return err
		}
		e.im.ResetCalls()
	}
	pids := e.pids(target)
	var cpu cpuTimes
	l.OnStart = func() { cpu, _ = readCPU(pids) }
	st, err := d.Run(ctx, l)
	if err != nil {
		return err
	}
	use := cpu.since()
	if err := ctx.Err(); err != nil {
		return err
	}
	var acts *actions
	if target == targetBot {
		if e.bot.Exited() {
			return fmt.Errorf("the bot exited during the run; its log ends:\n%s", e.bot.LogTail(10))
		}
		settle := harness.Settle(ctx, e.store, nil, 2*time.Minute)
		after, err := harness.ReadAudit(e.bot.AuditPath())
		if err != nil {
			return err
		}
		acts = countActions(after[len(before):], e.im.Calls())
		if settle != nil {
			acts.Unsettled = settle.Error()
		}
	}
	rep.addRun(target, round, l, st, use, acts)
	return nil
}

func describe(l harness.Load) string {
	if l.Rate > 0 {
		return fmt.Sprintf("open loop, %g callbacks/s for %v (+%v warm-up, %d connections),", l.Rate, l.Duration, l.Warmup, l.Workers)
	}
	return fmt.Sprintf("closed loop, %d workers for %v (+%v warm-up),", l.Workers, l.Duration, l.Warmup)
}

// deletePrefix removes the keys the run left in a Redis it did not start.
func deletePrefix(url, prefix string) {
	opts, err := goredis.ParseURL(url)
	if err != nil {
		return
	}
	c := goredis.NewClient(opts)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, pattern := range []string{prefix + "*", "rate:" + prefix + "*"} {
		iter := c.Scan(ctx, 0, pattern, 1000).Iterator()
		var keys []string
		for iter.Next(ctx) {
			keys = append(keys, iter.Val())
			if len(keys) == 500 {
				c.Unlink(ctx, keys...)
				keys = keys[:0]
			}
		}
		if len(keys) > 0 {
			c.Unlink(ctx, keys...)
		}
	}
}
