package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/timguard/timguard/config"
	"github.com/timguard/timguard/policy"
	"github.com/timguard/timguard/replay"
	"github.com/timguard/timguard/rules"
)

// replayCmd replays recorded callbacks against the rules in force and a
// candidate rule file, and prints every decision that would change.
// Recordings (record: in the config) carry the state the rules read, so
// rate and escalation rules decide as they did; callback bodies alone are
// evaluated with the counters they touch at 1. Nothing is read from or
// written to the store and nothing is called: it answers "what would this
// rule change do to yesterday's traffic?".
func replayCmd(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("replay", stderr)
	configPath := fs.String("config", "", "configuration `file`; its rules_file is the rules in force, its record: directory the default recordings")
	oldPath := fs.String("old", "", "rule `file` in force (instead of the config's rules_file)")
	newPath := fs.String("rules", "", "candidate rule `file` to compare with")
	eventsPath := fs.String("events", "", "`file` of callback bodies or recorded entries, one JSON object per line (JSON Lines); - for standard input")
	recordings := fs.String("recordings", "", "recording `directory` (or one recording file); the config's record directory by default")
	since := fs.String("since", "", "replay only callbacks that arrived since this `time` (RFC 3339, or a duration back from now such as 24h)")
	until := fs.String("until", "", "replay only callbacks that arrived before this `time` (RFC 3339, or a duration back from now)")
	asJSON := fs.Bool("json", false, "print the changes as JSON lines")
	failOnChange := fs.Bool("fail-on-change", false, "exit 1 when any outcome changes (for CI)")
	if code, stop := parseFlags(fs, args); stop {
		return code
	}
	if *newPath == "" || (*configPath == "" && *oldPath == "") {
		fmt.Fprintln(stderr, "bot replay: give --config FILE (or --old FILE), --rules NEW.yaml and --events FILE.jsonl or --recordings DIR")
		return 2
	}
	if *eventsPath != "" && *recordings != "" {
		fmt.Fprintln(stderr, "bot replay: give --events or --recordings, not both")
		return 2
	}
	now := time.Now()
	// --json prints the whole decisions, with the trace of every rule, as
	// `bot simulate` does.
	opts := replay.Options{Now: now, Trace: *asJSON}
	var err error
	if opts.Since, err = parseWhen(*since, now); err != nil {
		fmt.Fprintf(stderr, "bot replay: --since: %v\n", err)
		return 2
	}
	if opts.Until, err = parseWhen(*until, now); err != nil {
		fmt.Fprintf(stderr, "bot replay: --until: %v\n", err)
		return 2
	}
	oldFile := *oldPath
	source := *recordings
	if *configPath != "" {
		cfg, err := config.Load(*configPath)
		if err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		opts.AppAdmin = cfg.Tencent.Admin
		if oldFile == "" {
			oldFile = cfg.RulesPath()
		}
		if source == "" && *eventsPath == "" {
			source = cfg.RecordPath()
		}
	}
	if source == "" && *eventsPath == "" {
		fmt.Fprintln(stderr, "bot replay: nothing to replay: give --events FILE.jsonl or --recordings DIR (or a --config whose record: has a directory)")
		return 2
	}
	oldSet, err := rules.Load(oldFile)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	newSet, err := policy.LoadRules(*newPath)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	var src replay.Source
	name := *eventsPath
	switch {
	case *eventsPath == "-":
		src = replay.NewReader("", os.Stdin)
	case *eventsPath != "":
		f, err := os.Open(*eventsPath)
		if err != nil {
			fmt.Fprintf(stderr, "bot replay: %v\n", err)
			return 1
		}
		defer f.Close()
		src = replay.NewReader("", f)
	default:
		files, err := replay.OpenPath(source, opts.Since)
		if err != nil {
			fmt.Fprintf(stderr, "bot replay: %v\n", err)
			return 1
		}
		defer files.Close()
		src, name = files, source
	}
	sum, err := replay.Diff(oldSet, newSet, src, opts, func(c replay.Change) {
		if *asJSON {
			b, _ := json.Marshal(c)
			fmt.Fprintln(stdout, string(b))
			return
		}
		where := fmt.Sprintf("line %d", c.Line)
		if c.File != "" {
			where = filepath.Base(c.File) + " " + where
		}
		fmt.Fprintf(stdout, "%s %s group %s user %s: %s\n", where, c.Event, c.Group, c.User, strings.Join(c.Changes, "; "))
	})
	if err != nil {
		fmt.Fprintf(stderr, "bot replay: %s: %v\n", name, err)
		return 1
	}
	fmt.Fprintf(stderr, "replayed %d events (%d decisions) from %s: %d decisions change, %d lines skipped; rules %s -> %s\n",
		sum.Events, sum.Decisions, name, sum.Changed, sum.Skipped, oldSet.Version, newSet.Version)
	if sum.Assumed > 0 {
		fmt.Fprintf(stderr, "%d events carry no recorded state: the counters they touch read 1, strikes 0, roles member\n", sum.Assumed)
	}
	if len(sum.Unrecorded) > 0 {
		fmt.Fprintf(stderr, "counters not in the recording (they read 1 where the event touches them, else 0): %s\n", strings.Join(sum.Unrecorded, ", "))
	}
	if sum.Hashed > 0 {
		fmt.Fprintf(stderr, "%d events were recorded with their texts hashed (record.text: hash): rules reading words in texts cannot match them\n", sum.Hashed)
	}
	if sum.Mismatched > 0 {
		fmt.Fprintf(stderr, "%d decisions recorded under rules %s are not reproduced by replaying them\n", sum.Mismatched, oldSet.Version)
	}
	if *failOnChange && sum.Changed > 0 {
		return 1
	}
	return 0
}

// parseWhen reads a time as RFC 3339 or as a duration back from now.
func parseWhen(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		return now.Add(-d), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is neither an RFC 3339 time nor a duration such as 24h", s)
	}
	return t, nil
}
