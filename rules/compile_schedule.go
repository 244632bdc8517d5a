package rules

import (
	"fmt"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

// This file compiles `schedules:` and holds the cron and timezone checks
// config and schedule share.

func (c *compiler) schedule(ss *scheduleSpec) *Schedule {
	before := len(c.problems)
	add := func(field, format string, args ...any) { c.add(ss.Line, "schedule", ss.Name, field, format, args...) }
	if !namePattern.MatchString(ss.Name) {
		add("name", "%q must be letters, digits, _ . and - (at most 64)", ss.Name)
	}
	s := &Schedule{Name: ss.Name, Cron: ss.Cron, Timezone: ss.Timezone, Groups: ss.Groups, Line: ss.Line}
	if err := ValidateCron(ss.Cron); err != nil {
		add("cron", "%s", err)
	}
	if ss.Timezone == "" {
		add("timezone", "is required: an IANA name such as Asia/Shanghai or UTC")
	} else if loc, err := LoadTimezone(ss.Timezone); err != nil {
		add("timezone", "%s", err)
	} else {
		s.Location = loc
	}
	if len(ss.Actions) == 0 && ss.Mode == nil {
		add("", "does nothing: give it actions or a mode")
	}
	if len(ss.Actions) > 0 && len(ss.Groups) == 0 {
		add("groups", "actions need the groups they apply to")
	}
	for i := range ss.Actions {
		as := &ss.Actions[i]
		ar, ok := actionRules[as.Kind]
		if ok && ar.subject {
			c.add(as.Line, "schedule", ss.Name, fmt.Sprintf("actions[%d]", i), "%s needs a user; schedules act on whole groups (mute_group, unmute_group, warn)", as.Kind)
			continue
		}
		if a := c.action(as, nil, "schedule", ss.Name, fmt.Sprintf("actions[%d]", i), true); a != nil {
			s.Actions = append(s.Actions, a)
		}
	}
	if ss.Mode != nil {
		d, err := parseDuration(ss.Mode.For)
		switch {
		case !namePattern.MatchString(ss.Mode.Name):
			add("mode.name", "%q must be letters, digits, _ . and -", ss.Mode.Name)
		case err != nil || d < time.Minute:
			add("mode.for", "%q must be a duration of at least 1m", ss.Mode.For)
		default:
			s.Mode = &ModeSwitch{Name: ss.Mode.Name, For: d}
			c.modes[ss.Mode.Name] = true
		}
	}
	if len(c.problems) > before {
		return nil
	}
	return s
}

// cronParser reads standard five-field specs and descriptors such as @daily.
func cronParser() cron.Parser {
	return cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)
}

// ValidateCron checks a cron expression. The timezone is given separately,
// so CRON_TZ= and TZ= prefixes are refused.
func ValidateCron(spec string) error {
	if strings.TrimSpace(spec) == "" {
		return fmt.Errorf("is required, e.g. \"0 23 * * *\"")
	}
	if strings.HasPrefix(spec, "CRON_TZ=") || strings.HasPrefix(spec, "TZ=") {
		return fmt.Errorf("%q: give the timezone in timezone:, not in the cron expression", spec)
	}
	if _, err := ParseCron(spec, time.UTC); err != nil {
		return err
	}
	if rest, ok := strings.CutPrefix(strings.TrimSpace(spec), "@every"); ok {
		if d, err := time.ParseDuration(strings.TrimSpace(rest)); err == nil && d < time.Minute {
			return fmt.Errorf("%q runs more often than once a minute; schedules run at most every minute", spec)
		}
	}
	return nil
}

// ParseCron parses spec in loc. It never panics.
func ParseCron(spec string, loc *time.Location) (sched cron.Schedule, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%q is not a cron expression: %v", spec, r)
		}
	}()
	s, err := cronParser().Parse("CRON_TZ=" + loc.String() + " " + spec)
	if err != nil {
		return nil, fmt.Errorf("%q is not a cron expression (minute hour day-of-month month day-of-week): %w", spec, err)
	}
	return s, nil
}

// LoadTimezone loads an IANA timezone by name, refusing "Local" and names
// that only work on some machines.
func LoadTimezone(name string) (*time.Location, error) {
	if name == "Local" {
		return nil, fmt.Errorf("%q depends on the machine; name the zone, e.g. Asia/Shanghai", name)
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil, fmt.Errorf("%q is not an IANA timezone such as Asia/Shanghai or Europe/Berlin", name)
	}
	return loc, nil
}
