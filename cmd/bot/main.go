// Command bot is timguard: a moderation bot for Tencent Cloud IM groups.
// It parses the command line and turns signals into a cancelled context
// (SIGINT, SIGTERM) and reloads (SIGHUP); package app builds and runs the
// bot.
//
//	bot serve    --config FILE                  run the bot
//	bot check    --config FILE | --rules FILE   validate config and rules, run the rule tests
//	bot simulate --config FILE --event FILE.json [--state FILE.yaml]
//	                                            print the decision for one callback, no side effects
//	bot replay   --config FILE --rules NEW.yaml [--recordings DIR | --events FILE.jsonl]
//	                                            what a rule change would do to recorded callbacks
//	bot version
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	_ "time/tzdata" // schedules name IANA zones; do not depend on the machine's tzdata

	"github.com/timguard/timguard/app"
	"github.com/timguard/timguard/internal/gcfloor"
	"github.com/timguard/timguard/store/redis"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

const usage = `timguard: a moderation bot for Tencent Cloud IM groups

usage:
  bot serve    --config FILE                    run the bot (SIGTERM stops, SIGHUP reloads)
  bot check    --config FILE | --rules FILE     validate the config and rules and run the rule tests
  bot simulate --config FILE --event FILE.json [--state FILE.yaml]
                                                print the decision for one callback body, no side effects
  bot replay   --config FILE --rules NEW.yaml [--recordings DIR | --events FILE.jsonl]
               [--since T] [--until T] [--json] [--fail-on-change]
                                                replay recorded callbacks (record: in the config, with the
                                                state the rules read) or callback bodies (one JSON object
                                                per line) against the rules in force and NEW.yaml; print
                                                what would change
  bot version                                   print the version
`

// run dispatches a subcommand and returns the exit code.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "serve":
		return serveCmd(args[1:], stdout, stderr)
	case "check":
		return checkCmd(args[1:], stdout, stderr)
	case "simulate":
		return simulateCmd(args[1:], stdout, stderr)
	case "replay":
		return replayCmd(args[1:], stdout, stderr)
	case "version", "--version", "-version":
		fmt.Fprintln(stdout, "timguard", version)
		return 0
	case "help", "-h", "--help", "-help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "bot: unknown command %q\n\n%s", args[0], usage)
	return 2
}

// newFlags returns a flag set that reports errors instead of exiting.
func newFlags(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("bot "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

// parseFlags parses args; it returns an exit code when the caller should
// stop (help asked for, or a bad flag).
func parseFlags(fs *flag.FlagSet, args []string) (int, bool) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0, true
		}
		return 2, true
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(fs.Output(), "%s: unexpected argument %q\n", fs.Name(), fs.Arg(0))
		return 2, true
	}
	return 0, false
}

func serveCmd(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("serve", stderr)
	configPath := fs.String("config", "config.yaml", "configuration `file`")
	if code, stop := parseFlags(fs, args); stop {
		return code
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	reload := make(chan os.Signal, 1)
	signal.Notify(reload, syscall.SIGHUP)
	defer signal.Stop(reload)

	a, err := app.New(ctx, *configPath, app.Options{Stdout: stdout, Stderr: stderr, Version: version})
	if err != nil {
		fmt.Fprintf(stderr, "bot serve: %v\n", err)
		return 1
	}
	// go-redis has one logger for the whole process (redis.SetLogger), so
	// the process routes it through its own log here, once, rather than
	// app.New, which tests call for many apps in one process.
	redis.RouteLibraryLog(a.Logger())
	// The collector's pace is the process's too: set here, not in app.New.
	gc, why := gcfloor.Start(gcfloor.DefaultFloor)
	defer gc.Stop()
	a.Logger().Info("garbage collector: " + why)
	if err := a.Run(ctx, reload); err != nil {
		a.Logger().Error("stopped with an error", "err", err)
		return 1
	}
	return 0
}
