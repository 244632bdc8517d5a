package rules

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/timguard/timguard/internal/yamlx"
)

// Problem is one thing wrong with a rule file.
type Problem struct {
	// File is the list file the problem is in, when it is not in the rule
	// file itself.
	File string
	Line int
	// Section is "rule", "counter", "schedule", "list" or "" for the file.
	Section string
	// Name is the rule's (counter's, schedule's) name, when it has one.
	Name string
	// Field is the key the problem is about, e.g. "if" or "actions[1]".
	Field  string
	Reason string
}

func (p Problem) String() string {
	var b strings.Builder
	if p.Line > 0 {
		fmt.Fprintf(&b, "%d: ", p.Line)
	}
	if p.Section != "" {
		if p.Name != "" {
			fmt.Fprintf(&b, "%s %q: ", p.Section, p.Name)
		} else {
			fmt.Fprintf(&b, "%s: ", p.Section)
		}
	}
	if p.Field != "" {
		b.WriteString(p.Field)
		b.WriteString(": ")
	}
	b.WriteString(p.Reason)
	return b.String()
}

// Error lists every problem of one rule file.
type Error struct {
	File     string
	Problems []Problem
}

func (e *Error) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		file := e.File
		if p.File != "" {
			file = p.File
		}
		lines[i] = file + ":" + p.String()
		if p.Line == 0 {
			lines[i] = file + ": " + p.String()
		}
	}
	return strings.Join(lines, "\n")
}

// Load reads and compiles the rule file at path.
func Load(path string) (*Set, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, &Error{File: path, Problems: []Problem{{Reason: err.Error()}}}
	}
	return Parse(path, data)
}

var namePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)

// Parse compiles a rule file already read. Every problem is reported at once
// in an *Error.
func Parse(file string, data []byte) (*Set, error) {
	var spec fileSpec
	root, yproblems := yamlx.DecodeNode(data, &spec, yamlx.Options{})
	c := &compiler{file: file}
	for _, p := range yproblems {
		section, name := nameAt(root, p.Line)
		c.problems = append(c.problems, Problem{Line: p.Line, Section: section, Name: name, Field: p.Path, Reason: p.Reason})
	}
	if root == nil {
		return nil, c.err()
	}
	// A document the decoder gave up on (a duplicate key, say) leaves
	// version at 0 although the file has one: that is a consequence, not
	// another problem.
	if v := mappingValue(root, "version"); spec.Version == 0 && v != "" && v != "0" {
		c.versionUnread = true
	}
	set := c.compile(&spec)
	if len(c.problems) > 0 {
		return nil, c.err()
	}
	// The version covers the list files: a changed list is a new version.
	h := sha256.New()
	h.Write(data)
	for _, d := range c.listData {
		h.Write(d)
	}
	set.File = file
	set.Version = hex.EncodeToString(h.Sum(nil)[:6])
	set.listFiles = c.listFiles
	return set, nil
}

type compiler struct {
	file     string
	problems []Problem
	env      *compileEnv
	modes    map[string]bool
	// ruleNames holds every rule name in the file, compiled or not.
	ruleNames map[string]int
	// versionUnread: the file has a version the decoder did not read.
	versionUnread bool
	// The lists, the list files read and their contents (for the version).
	listDefs  map[string]*listDef
	listFiles []string
	listData  [][]byte
}

func (c *compiler) err() error {
	sort.SliceStable(c.problems, func(i, j int) bool {
		if c.problems[i].File != c.problems[j].File {
			return c.problems[i].File < c.problems[j].File // the rule file's own first
		}
		return c.problems[i].Line < c.problems[j].Line
	})
	return &Error{File: c.file, Problems: c.problems}
}

func (c *compiler) add(line int, section, name, field, format string, args ...any) {
	c.problems = append(c.problems, Problem{Line: line, Section: section, Name: name, Field: field, Reason: fmt.Sprintf(format, args...)})
}

func (c *compiler) compile(spec *fileSpec) *Set {
	if spec.Version != 1 && !c.versionUnread {
		c.add(0, "", "", "version", "must be 1 (got %d)", spec.Version)
	}
	set := &Set{Lists: map[string][]string{}, plans: map[Kind]*Plan{}, StrikeDecay: 24 * time.Hour, UserTTL: DefaultUserTTL}
	c.readLists(spec.Lists, set)
	if spec.Strikes.Decay != "" {
		if d, err := parseDuration(spec.Strikes.Decay); err != nil || d < time.Minute {
			c.add(0, "", "", "strikes.decay", "%q must be a duration of at least 1m", spec.Strikes.Decay)
		} else {
			set.StrikeDecay = d
		}
	}

	if spec.Users.ForgetAfter != "" {
		if d, err := parseDuration(spec.Users.ForgetAfter); err != nil || d < time.Hour {
			c.add(0, "", "", "users.forget_after", "%q must be a duration of at least 1h, such as 90d", spec.Users.ForgetAfter)
		} else {
			set.UserTTL = d
		}
	}

	// Counters first: rules refer to them.
	seen := map[string]int{}
	for i := range spec.Counters {
		cs := &spec.Counters[i]
		if prev, dup := seen[cs.Name]; dup && cs.Name != "" {
			c.add(cs.Line, "counter", cs.Name, "name", "is also used by the counter on line %d", prev)
		}
		seen[cs.Name] = cs.Line
		set.Counters = append(set.Counters, &Counter{Name: cs.Name, Line: cs.Line, Index: i, varName: prefixCounters + cs.Name})
	}
	c.env = newCompileEnv(set.Counters, set.Lists)
	for i := range spec.Counters {
		c.counter(&spec.Counters[i], set.Counters[i])
	}

	c.modes = map[string]bool{}
	for i := range spec.Schedules {
		if s := c.schedule(&spec.Schedules[i]); s != nil {
			set.Schedules = append(set.Schedules, s)
		}
	}

	c.ruleNames = map[string]int{}
	for i := range spec.Rules {
		rs := &spec.Rules[i]
		if prev, dup := c.ruleNames[rs.Name]; dup && rs.Name != "" {
			c.add(rs.Line, "rule", rs.Name, "name", "duplicate rule name (first used on line %d)", prev)
		}
		c.ruleNames[rs.Name] = rs.Line
		if r := c.rule(rs); r != nil {
			set.Rules = append(set.Rules, r)
		}
	}
	set.byName = make(map[string]*Rule, len(set.Rules))
	for _, r := range set.Rules {
		set.byName[r.Name] = r
	}
	c.plan(set)
	c.compileWordLists(set)
	c.boxLists(set)
	set.findReaders()
	// Tests decode events against the finished set.
	for i := range spec.Rules {
		rs := &spec.Rules[i]
		r := set.Rule(rs.Name)
		if r == nil {
			continue
		}
		for j := range rs.Tests {
			if t := c.test(r, &rs.Tests[j], j); t != nil {
				r.Tests = append(r.Tests, t)
			}
		}
	}
	return set
}
