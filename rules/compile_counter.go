package rules

import (
	"reflect"
	"strings"
	"time"

	"github.com/expr-lang/expr"
)

// This file compiles `counters:` and the `on:` lists of counters and rules.

func (c *compiler) counter(cs *counterSpec, ctr *Counter) {
	add := func(field, format string, args ...any) { c.add(cs.Line, "counter", cs.Name, field, format, args...) }
	if !namePattern.MatchString(cs.Name) {
		add("name", "%q must be letters, digits, _ . and - (at most 64)", cs.Name)
	}
	ctr.On = c.kinds(cs.On, cs.Line, "counter", cs.Name)
	if d, err := parseDuration(cs.Window); err != nil || d < time.Second || d > 7*24*time.Hour {
		add("window", "%q must be a duration from 1s to 168h", cs.Window)
	} else {
		ctr.Window = d
	}
	if strings.TrimSpace(cs.Key.Src) == "" {
		add("key", "is required, e.g. group.id + \"/\" + user.id")
	} else if p, errs := c.env.compile(cs.Key.Src, expr.AsKind(reflect.String)); len(errs) > 0 {
		for _, e := range errs {
			add("key", "%s%s", e, commentHint(cs.Key.Comment))
		}
	} else if bad := readsState(p); bad != "" {
		add("key", "cannot read %s: counters are keyed before the store is read", bad)
	} else {
		ctr.key = p
		ctr.keyParts, _ = joinParts(p.prog.Node())
	}
	if strings.TrimSpace(cs.If.Src) != "" {
		if p, errs := c.env.compile(cs.If.Src, expr.AsBool()); len(errs) > 0 {
			for _, e := range errs {
				add("if", "%s%s", e, commentHint(cs.If.Comment))
			}
		} else if bad := readsState(p); bad != "" {
			add("if", "cannot read %s: counters are touched before the store is read", bad)
		} else {
			ctr.cond = p
		}
	}
}

// readsState names the first thing p reads that comes from the store.
func readsState(p *program) string {
	for name := range p.use.counters {
		return "counters." + name
	}
	for _, f := range []string{varUserStrikes, varUserRole, varFirstSeen, varMessages} {
		if p.use.fields[f] {
			return f
		}
	}
	return ""
}

func (c *compiler) kinds(on kindList, line int, section, name string) []Kind {
	if len(on) == 0 {
		c.add(line, section, name, "on", "is required: one of %s", kindNames())
		return nil
	}
	var out []Kind
	for _, s := range on {
		k := Kind(s)
		if !k.Valid() {
			c.add(line, section, name, "on", "%q is not an event kind (one of %s)", s, kindNames())
			continue
		}
		out = append(out, k)
	}
	return out
}

func kindNames() string {
	kinds := Kinds()
	names := make([]string, len(kinds))
	for i, k := range kinds {
		names[i] = string(k)
	}
	return strings.Join(names, ", ")
}
