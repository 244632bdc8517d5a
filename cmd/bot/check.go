package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/timguard/timguard/app"
	"github.com/timguard/timguard/config"
	"github.com/timguard/timguard/policy"
	"github.com/timguard/timguard/rules"
	"github.com/timguard/timguard/tim"
	"gopkg.in/yaml.v3"
)

// checkCmd validates the configuration and the rule file and runs the tests
// kept beside the rules. Every problem is printed; exit 0 means all is well.
func checkCmd(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("check", stderr)
	configPath := fs.String("config", "", "configuration `file` (its rules_file is checked too)")
	rulesPath := fs.String("rules", "", "rule `file` to check on its own")
	verbose := fs.Bool("v", false, "print every rule test, not only failures")
	if code, stop := parseFlags(fs, args); stop {
		return code
	}
	if *configPath == "" && *rulesPath == "" {
		fmt.Fprintln(stderr, "bot check: give --config FILE or --rules FILE")
		return 2
	}
	path := *rulesPath
	configOK := true
	if *configPath != "" {
		cfg, err := config.Load(*configPath)
		switch {
		case err != nil:
			// Report the rule file's problems too, when the config still
			// says where it is.
			fmt.Fprintln(stderr, err)
			configOK = false
			if path == "" {
				path = rulesFileOf(*configPath)
			}
		default:
			fmt.Fprintf(stdout, "%s: ok\n", *configPath)
			if path == "" {
				path = cfg.RulesPath()
			}
		}
	}
	if path == "" {
		return 1
	}
	set, err := rules.Load(path)
	if err != nil {
		fmt.Fprintln(stderr, err)
		var re *rules.Error
		if errors.As(err, &re) {
			fmt.Fprintf(stderr, "%s: %d problem(s)\n", path, len(re.Problems))
		}
		return 1
	}
	total, failures := policy.RunTests(set)
	if *verbose {
		printTests(stdout, set)
	}
	for _, f := range failures {
		fmt.Fprintln(stderr, f.String())
	}
	if len(failures) > 0 {
		fmt.Fprintf(stderr, "%s: %d of %d rule tests failed\n", path, len(failures), total)
		return 1
	}
	fmt.Fprintf(stdout, "%s: ok: %s; %d rule tests passed\n", path, set.Summary(), total)
	if !configOK {
		return 1
	}
	return 0
}

// rulesFileOf reads rules_file from a config file that does not load, so
// that `bot check` can still report the rule file's problems. It returns ""
// when the file does not say.
func rulesFileOf(configPath string) string {
	data, err := os.ReadFile(configPath)
	if err != nil {
		return ""
	}
	var raw struct {
		RulesFile string `yaml:"rules_file"`
	}
	if yaml.Unmarshal(data, &raw) != nil || strings.Contains(raw.RulesFile, "${") {
		return ""
	}
	c := config.Config{File: configPath, RulesFile: raw.RulesFile}
	if c.RulesFile == "" {
		c.RulesFile = config.DefaultRulesFile
	}
	return c.RulesPath()
}

func printTests(w io.Writer, set *rules.Set) {
	for _, r := range set.Rules {
		for _, t := range r.Tests {
			out, d := policy.EvaluateTest(set, t)
			fmt.Fprintf(w, "  rule %s test %s: verdict %s, reply %d, rules %v, actions %d\n",
				r.Name, t.Name, verdictOrNone(d.Verdict), out.Reply.ErrorCode, d.Rules, len(d.Actions))
			// The decision itself, in the shape the audit log and `bot
			// simulate` print.
			if line, err := policy.EncodeDecision(&d); err == nil {
				fmt.Fprintf(w, "    %s\n", line)
			}
		}
	}
}

func verdictOrNone(v rules.Verdict) string {
	if v == rules.None {
		return "none"
	}
	return string(v)
}

// simulateCmd prints the decision the loaded rules make for one callback
// body. Nothing is read from or written to the store, and nothing is called.
func simulateCmd(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("simulate", stderr)
	configPath := fs.String("config", "", "configuration `file`")
	rulesPath := fs.String("rules", "", "rule `file` (instead of the config's rules_file)")
	eventPath := fs.String("event", "", "callback body `file` (JSON); its CallbackCommand tells the kind")
	statePath := fs.String("state", "", "optional `file` (YAML or JSON) with the store state to assume: counters, strikes, role, modes")
	if code, stop := parseFlags(fs, args); stop {
		return code
	}
	if *eventPath == "" || (*configPath == "" && *rulesPath == "") {
		fmt.Fprintln(stderr, "bot simulate: give --config FILE (or --rules FILE) and --event FILE.json")
		return 2
	}
	appAdmin := ""
	path := *rulesPath
	dryRun := false
	if *configPath != "" {
		cfg, err := config.Load(*configPath)
		if err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		appAdmin, dryRun = cfg.Tencent.Admin, cfg.DryRun
		if path == "" {
			path = cfg.RulesPath()
		}
	}
	set, err := rules.Load(path)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	body, err := os.ReadFile(*eventPath)
	if err != nil {
		fmt.Fprintf(stderr, "bot simulate: %v\n", err)
		return 1
	}
	cb, err := tim.DecodeCallback("", body)
	if err != nil {
		fmt.Fprintf(stderr, "bot simulate: %s: %v\n", *eventPath, err)
		return 1
	}
	var st app.SimState
	if *statePath != "" {
		data, err := os.ReadFile(*statePath)
		if err != nil {
			fmt.Fprintf(stderr, "bot simulate: %v\n", err)
			return 1
		}
		dec := yaml.NewDecoder(strings.NewReader(string(data)))
		dec.KnownFields(true)
		if err := dec.Decode(&st); err != nil {
			fmt.Fprintf(stderr, "bot simulate: %s: %v\n", *statePath, err)
			return 1
		}
	}
	result, err := app.Simulate(set, cb, body, st, appAdmin, dryRun, time.Now())
	if err != nil {
		fmt.Fprintf(stderr, "bot simulate: %s: %v\n", *statePath, err)
		return 1
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(result); err != nil {
		fmt.Fprintf(stderr, "bot simulate: %v\n", err)
		return 1
	}
	return 0
}
