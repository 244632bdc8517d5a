// Command loadgen measures timguard: it sets up a bot with real Redis and the
// fake IM server, sends it signed callbacks of a realistic mix, then sends
// the same load to a bare gin handler that answers the same envelope, and
// prints throughput, latency percentiles and the ratio of the two.
//
//	go run ./cmd/loadgen                          # open loop 2000/s and closed loop, 30 s each
//	go run ./cmd/loadgen -rate 2000 -concurrency 0 -duration 30s
//	go run ./cmd/loadgen -rate 0 -concurrency 32  # closed loop only
//	go run ./cmd/loadgen -json                    # machine-readable
//
// Everything it needs it starts itself: it builds ./cmd/bot (or runs -bot),
// starts a private redis-server (or uses REDIS_URL), runs the fake IM server
// in its own process with the groups of the mix, writes the config and the
// rules (harness.LoadRules), starts the bot and waits for /readyz. The bare
// handler runs as a separate process, as the bot does, so that both are
// measured the same way: another process across loopback TCP, with its own
// Go runtime competing for the same CPUs.
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
	"syscall"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/timguard/timguard/store/redis"
	"github.com/timguard/timguard/test/harness"
	"github.com/timguard/timguard/tim/timtest"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == bareCommand {
		os.Exit(serveBare(os.Args[2:], os.Stdout, os.Stderr))
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// options are the command line.
type options struct {
	bot         string
	redisURL    string
	rate        float64
	concurrency int
	connections int
	duration    time.Duration
	warmup      time.Duration
	groups      int
	users       int
	seed        uint64
	target      string
	json        bool
	keep        bool
}

func parseOptions(args []string, stderr io.Writer) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.bot, "bot", "", "path of a built bot `binary` (default: go build ./cmd/bot into a temporary directory)")
	fs.StringVar(&o.redisURL, "redis-url", os.Getenv("REDIS_URL"), "Redis to use, under a key prefix of its own (default $REDIS_URL; empty: start a private redis-server)")
	fs.Float64Var(&o.rate, "rate", 2000, "open loop: callbacks per `second`, latency measured from each one's scheduled time (0 skips the open-loop runs)")
	fs.IntVar(&o.concurrency, "concurrency", 32, "closed loop: `workers` sending back to back, for the highest throughput (0 skips the closed-loop runs)")
	fs.IntVar(&o.connections, "connections", 64, "open loop: keep-alive `connections` (concurrent requests at most)")
	fs.DurationVar(&o.duration, "duration", 30*time.Second, "measured length of each run")
	fs.DurationVar(&o.warmup, "warmup", 10*time.Second, "load sent before each run's measurement, not measured (long enough for a fresh bot to fill every group's role cache at the REST budget's pace)")
	fs.IntVar(&o.groups, "groups", 1000, "groups the callbacks are spread over")
	fs.IntVar(&o.users, "users", 20000, "ordinary users sending messages")
	fs.Uint64Var(&o.seed, "seed", 1, "seed of the mix")
	fs.StringVar(&o.target, "target", "both", "what to load: both, bot or bare")
	fs.BoolVar(&o.json, "json", false, "print the report as JSON")
	fs.BoolVar(&o.keep, "keep", false, "keep the temporary directory (config, rules, audit log, bot log) and print its path")
	fs.Usage = func() {
		fmt.Fprint(stderr, "usage: loadgen [flags]\n\nloadgen runs timguard (bot, Redis, fake IM server) and a bare gin handler under the same load and compares them.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	switch {
	case o.rate < 0 || o.concurrency < 0 || o.connections < 1:
		return nil, errors.New("-rate and -concurrency must not be negative, -connections must be positive")
	case o.rate == 0 && o.concurrency == 0:
		return nil, errors.New("-rate and -concurrency are both 0: nothing to run")
	case o.duration <= 0 || o.warmup < 0:
		return nil, errors.New("-duration must be positive and -warmup not negative")
	case o.groups < 1 || o.users < 1:
		return nil, errors.New("-groups and -users must be positive")
	case o.target != "both" && o.target != "bot" && o.target != "bare":
		return nil, fmt.Errorf("-target %q: want both, bot or bare", o.target)
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
	dir     string
	keep    bool
	redis   *harness.Redis
	im      *timtest.Server
	bot     *harness.Bot
	bare    *bareServer
	store   *redis.Store
	cleanup func()
}

// pids are loadgen's own processes: itself, the bot, Redis and the bare
// handler, as far as they run.
func (e *env) pids() []int {
	pids := []int{os.Getpid()}
	if e.bot != nil {
		pids = append(pids, e.bot.PID())
	}
	if e.redis != nil {
		pids = append(pids, e.redis.PID())
	}
	if e.bare != nil {
		pids = append(pids, e.bare.cmd.Process.Pid)
	}
	return pids
}

func (e *env) close(log io.Writer) {
	if e.bare != nil {
		e.bare.stop()
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

	var bare *harness.Driver
	if o.target != "bot" {
		progress(log, "starting the bare handler (a separate process)")
		if e.bare, err = startBare(ctx); err != nil {
			return nil, err
		}
		bare = harness.NewDriver(harness.DriverConfig{Targets: []string{e.bare.URL}, SDKAppID: appID, Token: token, Mix: mix, Connections: max(o.connections, o.concurrency)})
		defer bare.Close()
	}
	var bot *harness.Driver
	if o.target != "bare" {
		if err := e.startBot(ctx, o, mix, rep, log); err != nil {
			return nil, err
		}
		bot = harness.NewDriver(harness.DriverConfig{Targets: []string{e.bot.URL}, SDKAppID: appID, Token: token, Mix: mix, Connections: max(o.connections, o.concurrency)})
		defer bot.Close()
	}

	// Each run sends different events (First), so that the bot sees new
	// messages, not repeats.
	first := 0
	next := func(l harness.Load) harness.Load {
		l.First = first
		first += 1 << 28
		return l
	}
	var loads []harness.Load
	if o.rate > 0 {
		loads = append(loads, harness.Load{Rate: o.rate, Workers: o.connections, Warmup: o.warmup, Duration: o.duration})
	}
	if o.concurrency > 0 {
		loads = append(loads, harness.Load{Workers: o.concurrency, Warmup: o.warmup, Duration: o.duration})
	}
	for _, l := range loads {
		if bot != nil {
			if err := e.runBot(ctx, bot, next(l), rep, log); err != nil {
				return nil, err
			}
		}
		if bare != nil {
			progress(log, "%s against the bare handler", describe(l))
			cpu, _ := readCPU(e.pids()...)
			st, err := bare.Run(ctx, next(l))
			if err != nil {
				return nil, err
			}
			rep.addRun("bare", l, st, cpu.since(), nil)
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
	}
	rep.finish()
	return rep, nil
}

// startBot starts Redis (or uses -redis-url), the fake IM server and the bot.
func (e *env) startBot(ctx context.Context, o *options, mix *harness.Mix, rep *report, log io.Writer) error {
	binary := o.bot
	if binary == "" {
		progress(log, "building ./cmd/bot")
		var err error
		if binary, err = harness.BuildBot(ctx, e.dir); err != nil {
			return fmt.Errorf("%w (run loadgen inside the timguard repository, or pass -bot)", err)
		}
	}
	url, prefix := o.redisURL, "timguard:"
	if url == "" {
		dir := filepath.Join(e.dir, "redis")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		r, err := harness.StartRedis(harness.RedisOptions{Dir: dir})
		if err != nil {
			return err
		}
		e.redis, url = r, r.URL()
		progress(log, "started a private redis-server on port %d", r.Port())
	} else {
		var b [6]byte
		_, _ = rand.Read(b[:])
		prefix = "timguard-loadgen:" + hex.EncodeToString(b[:]) + ":"
		e.cleanup = func() { deletePrefix(url, prefix) }
		progress(log, "using %s under the key prefix %s", redactURL(url), prefix)
	}
	rep.Machine.Redis = redisVersion(ctx, url)

	e.im = timtest.New(timtest.Options{})
	harness.AddGroups(e.im, mix)
	cfg := harness.BotConfig{Token: token, IMURL: e.im.URL(), RedisURL: url, KeyPrefix: prefix}
	progress(log, "starting the bot")
	var err error
	if e.bot, err = harness.StartBot(ctx, "bot", binary, filepath.Join(e.dir, "bot"), cfg, harness.LoadRules); err != nil {
		return err
	}
	e.store, err = redis.New(ctx, redis.Options{URL: url, KeyPrefix: prefix, Timeout: 2 * time.Second})
	return err
}

// runBot runs one load against the bot, waits until the executor has
// carried out what the load decided, and adds the run and its actions to
// the report.
func (e *env) runBot(ctx context.Context, d *harness.Driver, l harness.Load, rep *report, log io.Writer) error {
	progress(log, "%s against the bot", describe(l))
	before, err := harness.ReadAudit(e.bot.AuditPath())
	if err != nil {
		return err
	}
	e.im.ResetCalls()
	cpu, _ := readCPU(e.pids()...)
	st, err := d.Run(ctx, l)
	if err != nil {
		return err
	}
	use := cpu.since()
	if e.bot.Exited() {
		return fmt.Errorf("the bot exited during the run; its log ends:\n%s", e.bot.LogTail(10))
	}
	settle := harness.Settle(ctx, e.store, nil, 2*time.Minute)
	after, err := harness.ReadAudit(e.bot.AuditPath())
	if err != nil {
		return err
	}
	acts := countActions(after[len(before):], e.im.Calls())
	if settle != nil {
		acts.Unsettled = settle.Error()
	}
	rep.addRun("bot", l, st, use, acts)
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
