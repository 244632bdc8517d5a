package console

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/timguard/timguard/audit"
	"github.com/timguard/timguard/policy"
	"github.com/timguard/timguard/rules"
	"github.com/timguard/timguard/tim"
)

// ruleRow is one rule in force.
type ruleRow struct {
	Name, On, If, Does, Mode string
	Shadow                   bool
	Hits                     string
}

// rulesView is the rules page: the rules in force and the playground.
type rulesView struct {
	File, Version, Summary string
	Rules                  []ruleRow
	HitsSince              string
	ShowHits               bool

	// The playground's inputs.
	Source, Callback string
	// The playground's results.
	Op         string
	CheckOK    bool
	CheckLines []string
	Simulated  string
	SimTrace   []simDecision
	Replay     *replayView
	NoRecorder bool
	Applied    string
}

// simDecision is a simulated decision with its trace.
type simDecision struct {
	Group, User, Verdict string
	Rules, Actions       []string
	Trace                []policy.Step
}

func (c *Console) rulesView() rulesView {
	v := rulesView{NoRecorder: c.cfg.Replayer == nil}
	set := c.rules()
	if set == nil {
		return v
	}
	v.File, v.Version, v.Summary = set.File, set.Version, set.Summary()
	var hits map[string]float64
	if c.cfg.RuleHits != nil {
		totals := c.cfg.RuleHits()
		c.hits.sample(c.cfg.Now(), totals)
		var since time.Time
		hits, since = c.hits.since(totals)
		v.ShowHits = true
		v.HitsSince = "since the start"
		if !since.IsZero() {
			v.HitsSince = "since " + since.UTC().Format("15:04Z")
			if c.cfg.Now().Sub(since) >= 59*time.Minute {
				v.HitsSince = "in the last hour"
			}
		}
	}
	for _, r := range set.Rules {
		on := make([]string, len(r.On))
		for i, k := range r.On {
			on[i] = string(k)
		}
		row := ruleRow{Name: r.Name, On: strings.Join(on, ", "), If: r.Source, Does: ruleDoes(r), Mode: r.Mode, Shadow: r.Shadow}
		if hits != nil {
			row.Hits = fmt.Sprintf("%.0f", hits[r.Name])
		}
		v.Rules = append(v.Rules, row)
	}
	return v
}

func (c *Console) rulesPage(w http.ResponseWriter, r *http.Request, s *session) {
	v := c.rulesView()
	if path := c.rulesFile(); path != "" {
		if data, err := os.ReadFile(path); err == nil {
			v.Source = string(data)
		}
	}
	c.renderPage(w, r, http.StatusOK, page{Page: "rules", Title: "Rules", Data: v}, s)
}

func (c *Console) rulesFile() string {
	if c.cfg.RulesFile == nil {
		return ""
	}
	return c.cfg.RulesFile()
}

// playground runs what the moderator asked for on the rule file in the
// text area: check (compile and the kept tests), simulate (the pasted
// callback under it), replay (recorded callbacks under the rules in force
// and under it, the changes side by side) or apply.
func (c *Console) playground(w http.ResponseWriter, r *http.Request, s *session) {
	v := c.rulesView()
	v.Source = strings.ReplaceAll(r.PostForm.Get("source"), "\r\n", "\n")
	v.Callback = strings.ReplaceAll(r.PostForm.Get("callback"), "\r\n", "\n")
	v.Op = r.PostForm.Get("op")
	p := page{Page: "rules", Title: "Rules", Data: &v}
	status := http.StatusOK
	candidate, checkErr := c.candidate(v.Source)
	v.CheckOK = checkErr == nil
	if checkErr != nil {
		v.CheckLines = strings.Split(checkErr.Error(), "\n")
	} else {
		total, _ := policy.RunTests(candidate)
		v.CheckLines = []string{fmt.Sprintf("The file compiles: %s; %d kept tests pass.", candidate.Summary(), total)}
	}
	switch v.Op {
	case "check":
	case "simulate":
		if candidate == nil {
			p.Error = "Fix the rule file first: it does not pass the check."
			break
		}
		if err := c.simulate(&v, candidate); err != nil {
			p.Error = err.Error()
		}
	case "replay":
		if candidate == nil {
			p.Error = "Fix the rule file first: it does not pass the check."
			break
		}
		rep, err := c.replay(r.Context(), &v, candidate)
		if err != nil {
			p.Error = err.Error()
			break
		}
		v.Replay = rep
	case "apply":
		if candidate == nil {
			p.Error = "Nothing was applied: the rule file does not pass the check."
			status = http.StatusUnprocessableEntity
			break
		}
		version, err := c.apply(r, s, v.Source)
		if err != nil {
			c.log.Warn("apply from the console failed", "moderator", s.Name, "err", err)
			p.Error = "Nothing was applied: " + err.Error()
			status = http.StatusUnprocessableEntity
			break
		}
		redirect(w, r, Prefix+"/rules", "Applied: rules version "+version+" is in force.")
		return
	default:
		p.Error = "Unknown playground operation."
		status = http.StatusBadRequest
	}
	c.renderPage(w, r, status, p, s)
}

// candidate compiles the text as if it were rules_file (list files resolve
// beside it) and runs its kept tests.
func (c *Console) candidate(src string) (*rules.Set, error) {
	if strings.TrimSpace(src) == "" {
		return nil, errors.New("the rule file is empty")
	}
	name := c.rulesFile()
	if name == "" {
		name = "rules.yaml"
	}
	set, err := rules.Parse(name, []byte(src))
	if err != nil {
		return nil, err
	}
	if err := policy.CheckTests(set); err != nil {
		return nil, err
	}
	return set, nil
}

func (c *Console) appAdmin() string {
	if c.cfg.AppAdmin == nil {
		return ""
	}
	return c.cfg.AppAdmin()
}

// simulate decides the pasted callback under the candidate rules, with
// every counter the event touches at 1 and no strikes.
func (c *Console) simulate(v *rulesView, set *rules.Set) error {
	body := []byte(strings.TrimSpace(v.Callback))
	if len(body) == 0 {
		return errors.New("paste a callback body (JSON with its CallbackCommand) to simulate")
	}
	if i := strings.IndexByte(string(body), '\n'); i > 0 && json.Valid(body[:i]) {
		body = body[:i] // several lines: the first
	}
	cb, err := tim.DecodeCallback("", body)
	if err != nil {
		return fmt.Errorf("the callback: %w", err)
	}
	ds, reply := evaluateAssumed(set, cb, body, c.appAdmin(), c.cfg.Now())
	out, _ := json.MarshalIndent(struct {
		Reply     tim.Reply         `json:"reply"`
		Decisions []policy.Decision `json:"decisions"`
	}{reply, ds}, "", "  ")
	v.Simulated = string(out)
	for _, d := range ds {
		v.SimTrace = append(v.SimTrace, simDecision{Group: d.Group, User: d.User, Verdict: string(d.Verdict), Rules: d.Rules, Actions: actionsOf(d), Trace: d.Trace})
	}
	return nil
}

// replay runs the pasted callbacks, when there are any, or the recorded
// ones (the Replayer) under the rules in force and the candidate.
func (c *Console) replay(ctx context.Context, v *rulesView, candidate *rules.Set) (*replayView, error) {
	current := c.rules()
	if current == nil {
		return nil, errors.New("no rules are in force")
	}
	if strings.TrimSpace(v.Callback) != "" {
		rep, err := replayPasted([]byte(v.Callback), current, candidate, c.appAdmin(), c.cfg.Now())
		if err != nil {
			return nil, fmt.Errorf("replay: %w", err)
		}
		return &replayView{Source: "the callbacks pasted above, with no recorded state (counters the event touches at 1, no strikes)", Report: rep}, nil
	}
	if c.cfg.Replayer == nil {
		return nil, errors.New("no callbacks are recorded (record.enabled in the configuration); paste callbacks, one JSON object a line, to replay them")
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	rep, source, err := c.cfg.Replayer.Replay(ctx, current, candidate)
	if err != nil {
		return nil, fmt.Errorf("replay: %w", err)
	}
	return &replayView{Source: source, Report: rep}, nil
}

// apply writes the candidate to rules_file atomically (a temporary file
// beside it, synced, then renamed over it) and reloads; the change is
// audited with the moderator and the version in force afterwards.
func (c *Console) apply(r *http.Request, s *session, src string) (string, error) {
	c.applyMu.Lock()
	defer c.applyMu.Unlock()
	path := c.rulesFile()
	rec := &audit.Record{Reason: "rules applied from the console", Result: audit.ResultDone}
	if set := c.rules(); set != nil {
		rec.RulesVersion = set.Version
	}
	fail := func(err error) (string, error) {
		rec.Result, rec.Error = audit.ResultFailed, err.Error()
		c.audit(r, s, rec)
		return "", err
	}
	if path == "" || c.cfg.Reload == nil {
		return fail(errors.New("the console cannot write the rules: no rules_file or no reload"))
	}
	if err := writeAtomic(path, []byte(src)); err != nil {
		return fail(err)
	}
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	defer cancel()
	version, err := c.cfg.Reload(ctx)
	rec.RulesVersion = version
	if err != nil {
		return fail(fmt.Errorf("written to %s, but the reload failed (the rules in force stay): %w", path, err))
	}
	c.audit(r, s, rec)
	c.log.Info("moderator applied a rule file from the console", "moderator", s.Name, "file", path, "version", version)
	return version, nil
}

// writeAtomic replaces path with data: readers see the old file or the new
// one, never a part. The file keeps its permissions.
func writeAtomic(path string, data []byte) error {
	mode := os.FileMode(0o644)
	if fi, err := os.Stat(path); err == nil {
		mode = fi.Mode().Perm()
	}
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".console-*")
	if err != nil {
		return fmt.Errorf("%s is not writable: %w", dir, err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // after the rename there is nothing to remove
	if _, err := f.Write(data); err != nil {
		_ = f.Close() // the write's error is the one to report
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	if err := f.Chmod(mode); err != nil {
		_ = f.Close() // the chmod's error is the one to report
		return fmt.Errorf("chmod %s: %w", tmp, err)
	}
	if err := f.Sync(); err != nil {
		_ = f.Close() // the sync's error is the one to report
		return fmt.Errorf("sync %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("replace %s: %w", path, err)
	}
	return nil
}
