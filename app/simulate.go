package app

import (
	"fmt"
	"time"

	"github.com/timguard/timguard/policy"
	"github.com/timguard/timguard/rules"
	"github.com/timguard/timguard/tim"
)

// SimResult is what `bot simulate` and POST /v1/simulate print.
type SimResult struct {
	EventID      string            `json:"event_id"`
	Command      string            `json:"command"`
	Event        rules.Kind        `json:"event"`
	RulesVersion string            `json:"rules_version"`
	DryRun       bool              `json:"dry_run,omitempty"`
	Reply        tim.Reply         `json:"reply"`
	Decisions    []policy.Decision `json:"decisions"`
}

// Simulate evaluates a decoded callback against set with an assumed
// store state, with the full trace and no side effects.
func Simulate(set *rules.Set, cb tim.Event, body []byte, st SimState, appAdmin string, dryRun bool, now time.Time) (SimResult, error) {
	ev := policy.NewEvent(cb, body, now)
	var seenFor time.Duration
	if st.SeenFor != "" {
		d, err := rules.ParseDuration(st.SeenFor)
		if err != nil || d < 0 {
			return SimResult{}, fmt.Errorf("seen_for: %q is not a duration such as 3d", st.SeenFor)
		}
		seenFor = d
	}
	state, subjectAdmin, err := policy.Assume(set, ev, policy.Assumed{
		Counters: st.Counters, Strikes: st.Strikes, Role: st.Role, Modes: st.Modes, TouchedCountsOne: true,
		Messages: st.Messages, SeenFor: seenFor,
	})
	if err != nil {
		return SimResult{}, err
	}
	if subjectAdmin != "" {
		appAdmin = subjectAdmin
	}
	out := policy.Evaluate(set, ev, state, policy.Options{DryRun: dryRun, AppAdmin: appAdmin, Trace: true})
	res := SimResult{ev.ID, ev.Command, ev.Kind, set.Version, dryRun, out.Reply, out.Decisions}
	if res.Decisions == nil {
		res.Decisions = []policy.Decision{}
	}
	return res, nil
}

// SimState is the store state `bot simulate --state` assumes. Counters the
// event touches default to 1 (the event itself); others to 0.
type SimState struct {
	Counters map[string]int `yaml:"counters" json:"counters"`
	Strikes  int            `yaml:"strikes" json:"strikes"`
	Role     rules.Role     `yaml:"role" json:"role"`
	Modes    []string       `yaml:"modes" json:"modes"`
	// Messages is user.messages (default: 1 for a message that counts);
	// SeenFor how long before the event the user was first seen.
	Messages int    `yaml:"messages" json:"messages"`
	SeenFor  string `yaml:"seen_for" json:"seen_for"`
}
