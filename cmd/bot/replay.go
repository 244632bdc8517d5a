package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/timguard/timguard/config"
	"github.com/timguard/timguard/policy"
	"github.com/timguard/timguard/rules"
	"github.com/timguard/timguard/tim"
)

// replayCmd replays callback bodies against the rules in force and a
// candidate rule file, and prints every event whose outcome would change.
// Nothing is read from or written to the store and nothing is called: it
// answers "what would this rule change do to yesterday's traffic?".
func replayCmd(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("replay", stderr)
	configPath := fs.String("config", "", "configuration `file`; its rules_file is the rules in force")
	oldPath := fs.String("old", "", "rule `file` in force (instead of the config's rules_file)")
	newPath := fs.String("rules", "", "candidate rule `file` to compare with")
	eventsPath := fs.String("events", "", "`file` of callback bodies, one JSON object per line (JSON Lines); - for standard input")
	asJSON := fs.Bool("json", false, "print the changes as JSON lines")
	failOnChange := fs.Bool("fail-on-change", false, "exit 1 when any outcome changes (for CI)")
	if code, stop := parseFlags(fs, args); stop {
		return code
	}
	if *newPath == "" || *eventsPath == "" || (*configPath == "" && *oldPath == "") {
		fmt.Fprintln(stderr, "bot replay: give --config FILE (or --old FILE), --rules NEW.yaml and --events FILE.jsonl")
		return 2
	}
	appAdmin := ""
	oldFile := *oldPath
	if *configPath != "" {
		cfg, err := config.Load(*configPath)
		if err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		appAdmin = cfg.Tencent.Admin
		if oldFile == "" {
			oldFile = cfg.RulesPath()
		}
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
	in := io.Reader(os.Stdin)
	if *eventsPath != "-" {
		f, err := os.Open(*eventsPath)
		if err != nil {
			fmt.Fprintf(stderr, "bot replay: %v\n", err)
			return 1
		}
		defer f.Close()
		in = f
	}
	sum, err := replay(in, oldSet, newSet, appAdmin, func(c replayChange) {
		if *asJSON {
			b, _ := json.Marshal(c)
			fmt.Fprintln(stdout, string(b))
			return
		}
		fmt.Fprintf(stdout, "line %d %s group %s user %s: %s\n", c.Line, c.Event, c.Group, c.User, strings.Join(c.Changes, "; "))
	})
	if err != nil {
		fmt.Fprintf(stderr, "bot replay: %s: %v\n", *eventsPath, err)
		return 1
	}
	fmt.Fprintf(stderr, "replayed %d events (%d decisions) from %s: %d decisions change, %d lines skipped; rules %s -> %s\n",
		sum.Events, sum.Decisions, *eventsPath, sum.Changed, sum.Skipped, oldSet.Version, newSet.Version)
	if *failOnChange && sum.Changed > 0 {
		return 1
	}
	return 0
}

// replayChange is one decision that the candidate rules would make
// differently.
type replayChange struct {
	Line    int      `json:"line"`
	EventID string   `json:"event_id"`
	Event   string   `json:"event"`
	Group   string   `json:"group"`
	User    string   `json:"user,omitempty"`
	Changes []string `json:"changes"`
	// Before and After are the decisions under the rules in force and
	// under the candidate rules, in the shape the audit log and `bot
	// simulate` print.
	Before *policy.Decision `json:"before"`
	After  *policy.Decision `json:"after"`
}

type replaySummary struct {
	Events, Decisions, Changed, Skipped int
}

// replay evaluates every callback body read from in under both rule sets,
// with an empty store state, and reports each decision that differs.
func replay(in io.Reader, oldSet, newSet *rules.Set, appAdmin string, report func(replayChange)) (replaySummary, error) {
	var sum replaySummary
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
	now := time.Now()
	line := 0
	for sc.Scan() {
		line++
		body := []byte(strings.TrimSpace(sc.Text()))
		if len(body) == 0 {
			continue
		}
		cb, err := tim.DecodeCallback("", body)
		if err != nil {
			sum.Skipped++
			continue
		}
		ev := policy.NewEvent(cb, body, now)
		if ev.Kind == "" {
			continue
		}
		sum.Events++
		before := evaluateReplay(oldSet, ev, appAdmin)
		after := evaluateReplay(newSet, ev, appAdmin)
		for i := range after.Decisions {
			sum.Decisions++
			var old policy.Decision
			var was *policy.Decision
			if i < len(before.Decisions) {
				old = before.Decisions[i]
				was = &before.Decisions[i]
			}
			changes := diffDecisions(old, after.Decisions[i])
			if len(changes) == 0 {
				continue
			}
			sum.Changed++
			d := &after.Decisions[i]
			report(replayChange{Line: line, EventID: ev.ID, Event: string(ev.Kind), Group: d.Group, User: d.User, Changes: changes, Before: was, After: d})
		}
	}
	return sum, sc.Err()
}

func evaluateReplay(set *rules.Set, ev *policy.Event, appAdmin string) policy.Outcome {
	st, _, err := policy.Assume(set, ev, policy.Assumed{TouchedCountsOne: true})
	if err != nil {
		return policy.Outcome{}
	}
	return policy.Evaluate(set, ev, st, policy.Options{AppAdmin: appAdmin, Trace: true})
}

// diffDecisions describes how b differs from a: verdict, matched rules,
// actions.
func diffDecisions(a, b policy.Decision) []string {
	var out []string
	if a.Verdict != b.Verdict {
		out = append(out, fmt.Sprintf("verdict %s -> %s", verdictOrNone(a.Verdict), verdictOrNone(b.Verdict)))
	}
	if !slices.Equal(a.Rules, b.Rules) {
		out = append(out, fmt.Sprintf("rules %v -> %v", a.Rules, b.Rules))
	}
	if aa, ba := actionList(a), actionList(b); !slices.Equal(aa, ba) {
		out = append(out, fmt.Sprintf("actions %v -> %v", aa, ba))
	}
	return out
}

func actionList(d policy.Decision) []string {
	var out []string
	for _, a := range d.Actions {
		if !a.Shadow {
			out = append(out, a.Resolved.String())
		}
	}
	slices.Sort(out)
	return out
}
