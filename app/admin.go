package app

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/timguard/timguard/handlers"
	"github.com/timguard/timguard/mutes"
	"github.com/timguard/timguard/tim"
)

// adminConfig wires the admin API to the app's parts. Tokens and dry run are
// read from the configuration in force, so a reload rotates them.
func (a *App) adminConfig() handlers.AdminConfig {
	var lifter handlers.Lifter
	if a.client != nil {
		lifter = mutes.Lifter{Client: a.client, Store: a.store, Now: a.now, Logger: a.log}
	}
	return handlers.AdminConfig{
		Token:    func() string { return a.config().Admin.Token.Reveal() },
		Store:    a.store,
		Lifter:   lifter,
		Simulate: a.simulate,
		Reload:   a.reload,
		Rules:    a.rulesInfo,
		Audit:    a.audit.Write,
		Logger:   a.log,
		Now:      a.now,
	}
}

// simulate is POST /v1/simulate: the decision the rules in force make for a
// callback body, with no side effects.
func (a *App) simulate(_ context.Context, body []byte, state json.RawMessage) (any, error) {
	cb, err := tim.DecodeCallback("", body)
	if err != nil {
		return nil, fmt.Errorf("event: %w", err)
	}
	var st SimState
	if len(state) > 0 && string(state) != "null" {
		if err := json.Unmarshal(state, &st); err != nil {
			return nil, fmt.Errorf("state: %w", err)
		}
	}
	cfg := a.config()
	return Simulate(a.rules.Rules(), cb, body, st, cfg.Tencent.Admin, cfg.DryRun, a.now())
}

// rulesInfo is GET /v1/rules.
func (a *App) rulesInfo() any {
	set := a.rules.Rules()
	type ruleInfo struct {
		Name   string   `json:"name"`
		On     []string `json:"on"`
		If     string   `json:"if"`
		Shadow bool     `json:"shadow,omitempty"`
		Mode   string   `json:"mode,omitempty"`
	}
	out := struct {
		File    string     `json:"file"`
		Version string     `json:"version"`
		Summary string     `json:"summary"`
		DryRun  bool       `json:"dry_run"`
		Rules   []ruleInfo `json:"rules"`
	}{File: set.File, Version: set.Version, Summary: set.Summary(), DryRun: a.config().DryRun}
	for _, r := range set.Rules {
		ri := ruleInfo{Name: r.Name, If: r.Source, Shadow: r.Shadow, Mode: r.Mode}
		for _, k := range r.On {
			ri.On = append(ri.On, string(k))
		}
		out.Rules = append(out.Rules, ri)
	}
	return out
}
