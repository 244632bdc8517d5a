package rules

import (
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"
)

// This file compiles actions: which value each kind takes, where it may
// appear, and durations given as literals or expressions.

// actionNeeds says what value each action takes and where it may appear.
type actionRule struct {
	value   string // "", "duration", "text", "count"
	subject bool   // acts on the event's user
	kinds   []Kind // only these kinds (nil = every kind)
}

var actionRules = map[ActionKind]actionRule{
	ActMute:        {value: "duration", subject: true},
	ActUnmute:      {subject: true},
	ActKick:        {value: "text", subject: true},
	ActBan:         {value: "duration", subject: true},
	ActUnban:       {subject: true},
	ActStrike:      {value: "count", subject: true},
	ActWarn:        {value: "text"},
	ActMuteGroup:   {value: "duration"},
	ActUnmuteGroup: {},
	ActAdmit:       {subject: true, kinds: []Kind{JoinRequest}},
}

func actionNames() string {
	names := make([]string, 0, len(actionRules))
	for k := range actionRules {
		names = append(names, string(k))
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

// action compiles one action. literal forbids expressions (expected actions
// in tests, schedules).
func (c *compiler) action(as *actionSpec, on []Kind, section, name, field string, literal bool) *Action {
	add := func(format string, args ...any) { c.add(as.Line, section, name, field, format, args...) }
	for _, p := range as.problems {
		add("%s", p)
	}
	if len(as.problems) > 0 {
		return nil
	}
	ar, ok := actionRules[as.Kind]
	if !ok {
		add("%q is not an action (one of %s)", as.Kind, actionNames())
		return nil
	}
	for _, k := range on {
		if ar.subject && k == GroupDestroyed {
			add("%s needs a user; %s events have none", as.Kind, k)
			return nil
		}
		if ar.kinds != nil && !containsKind(ar.kinds, k) {
			add("%s only applies to %s events", as.Kind, ar.kinds[0])
			return nil
		}
	}
	a := &Action{Kind: as.Kind, Announce: as.Announce, Line: as.Line}
	if as.Announce != "" && as.Kind != ActMute && as.Kind != ActMuteGroup && as.Kind != ActBan {
		add("announce only goes with mute, ban and mute_group (it is sent when they end)")
		return nil
	}
	switch ar.value {
	case "":
		if as.HasValue && as.Value != "" {
			add("%s takes no value (write just %s)", as.Kind, as.Kind)
			return nil
		}
	case "text":
		if !as.HasValue || strings.TrimSpace(as.Value) == "" {
			add("%s needs a text, e.g. {%s: \"Repeated violations\"}", as.Kind, as.Kind)
			return nil
		}
		a.Text = as.Value
	case "count":
		n, err := strconv.Atoi(as.Value)
		if !as.HasValue {
			n, err = 1, nil
		}
		if err != nil || n < 1 || n > 100 {
			add("%s needs a whole number from 1 to 100, got %q", as.Kind, as.Value)
			return nil
		}
		a.N = n
	case "duration":
		if !as.HasValue || as.Value == "" {
			add("%s needs a duration, e.g. {%s: 10m}", as.Kind, as.Kind)
			return nil
		}
		d, err := c.duration(as.Value, literal)
		if err != "" {
			add("%s: %s%s", as.Kind, err, commentHint(as.Comment))
			return nil
		}
		a.duration = d
	}
	return a
}

// duration compiles a literal ("10m", "permanent") or an expression giving a
// duration.
func (c *compiler) duration(src string, literal bool) (*durationSpec, string) {
	if src == "permanent" || src == "forever" {
		return &durationSpec{fixed: -1, src: src}, ""
	}
	if d, err := parseDuration(src); err == nil {
		if d < time.Second {
			return nil, fmt.Sprintf("%q is shorter than a second", src)
		}
		return &durationSpec{fixed: d, src: src}, ""
	}
	if literal {
		return nil, fmt.Sprintf("%q is not a duration such as 10m or permanent", src)
	}
	p, errs := c.env.compile(src)
	if len(errs) > 0 {
		return nil, fmt.Sprintf("%q is neither a duration such as 10m nor a valid expression: %s", src, strings.Join(errs, "; "))
	}
	if t := p.prog.Node().Type(); t != nil && t != reflect.TypeOf(time.Duration(0)) && t.Kind() != reflect.Interface {
		return nil, fmt.Sprintf("%q gives %s, not a duration; build one with duration(\"10m\")", src, t)
	}
	return &durationSpec{prog: p, src: src}, ""
}

func containsKind(ks []Kind, k Kind) bool {
	for _, x := range ks {
		if x == k {
			return true
		}
	}
	return false
}

// ParseDuration reads a duration as rule files write them:
// time.ParseDuration plus days ("7d").
func ParseDuration(s string) (time.Duration, error) { return parseDuration(s) }

// parseDuration is time.ParseDuration plus days ("7d").
func parseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if strings.HasSuffix(s, "d") {
		n, err := strconv.Atoi(strings.TrimSuffix(s, "d"))
		if err == nil && n >= 0 && n <= 3650 {
			return time.Duration(n) * 24 * time.Hour, nil
		}
	}
	return time.ParseDuration(s)
}
