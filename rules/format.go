package rules

import (
	"fmt"
	"strings"

	"github.com/timguard/timguard/internal/yamlx"
	"gopkg.in/yaml.v3"
)

// The types below mirror the rule file as written. Compile turns them into a
// Set. Each remembers its line so errors can point at it.

type fileSpec struct {
	Version   int                 `yaml:"version"`
	Lists     map[string]listSpec `yaml:"lists"`
	Strikes   strikesSpec         `yaml:"strikes"`
	Users     usersSpec           `yaml:"users"`
	Counters  []counterSpec       `yaml:"counters"`
	Rules     []ruleSpec          `yaml:"rules"`
	Schedules []scheduleSpec      `yaml:"schedules"`
}

// listSpec is one entry of `lists:`: a sequence of strings as before
// (`trusted: [alice, bob]`), or a mapping naming a file of words, words
// written inline and how the words are normalized:
// `spam_words: {file: lists/spam_words.txt, normalize: {separators: true}}`.
type listSpec struct {
	File      string         `yaml:"file"`
	Words     []wordSpec     `yaml:"words"`
	Normalize *normalizeSpec `yaml:"normalize"`
	// Items is the plain sequence form; Plain says the list was written so.
	// A list written as `name:` with nothing after it is never decoded
	// (Line stays 0): an empty plain list.
	Items []string `yaml:"-"`
	Plain bool     `yaml:"-"`
	Line  int      `yaml:"-"`
}

func (l *listSpec) UnmarshalYAML(n *yaml.Node) error {
	l.Line = n.Line
	switch n.Kind {
	case yaml.SequenceNode:
		l.Plain = true
		return n.Decode(&l.Items)
	case yaml.MappingNode:
		type plain listSpec
		return n.Decode((*plain)(l))
	}
	return yamlx.Errorf(n, "a list is a sequence of strings, or a mapping with file, words and normalize")
}

// wordSpec is a word written under `words:`, with its line.
type wordSpec struct {
	Word string
	Line int
}

func (w *wordSpec) UnmarshalYAML(n *yaml.Node) error {
	w.Line = n.Line
	if n.Kind != yaml.ScalarNode {
		return yamlx.Errorf(n, "a word is a string")
	}
	w.Word = n.Value
	return nil
}

// YAMLOpaque marks wordSpec as a scalar.
func (wordSpec) YAMLOpaque() {}

// normalizeSpec is a list's `normalize:` mapping; a step left out keeps its
// default. `normalize: none` switches every step off.
type normalizeSpec struct {
	NFKC        *bool   `yaml:"nfkc"`
	Case        *bool   `yaml:"case"`
	Invisible   *bool   `yaml:"invisible"`
	Confusables *bool   `yaml:"confusables"`
	Digits      *bool   `yaml:"digits"`
	Separators  *bool   `yaml:"separators"`
	Chinese     *string `yaml:"chinese"`
	None        bool    `yaml:"-"`
	Line        int     `yaml:"-"`
}

func (s *normalizeSpec) UnmarshalYAML(n *yaml.Node) error {
	s.Line = n.Line
	if n.Kind == yaml.ScalarNode {
		switch n.Value {
		case "none":
			s.None = true
			return nil
		case "default":
			return nil
		}
		return yamlx.Errorf(n, "normalize: want none, default or a mapping such as {separators: true}")
	}
	type plain normalizeSpec
	return n.Decode((*plain)(s))
}

type strikesSpec struct {
	Decay string `yaml:"decay"`
}

// usersSpec is `users:`: how long a user's activity in a group is kept.
type usersSpec struct {
	ForgetAfter string `yaml:"forget_after"`
}

type counterSpec struct {
	Name   string   `yaml:"name"`
	On     kindList `yaml:"on"`
	Key    exprSrc  `yaml:"key"`
	If     exprSrc  `yaml:"if"`
	Window string   `yaml:"window"`
	Line   int      `yaml:"-"`
}

func (c *counterSpec) UnmarshalYAML(n *yaml.Node) error {
	type plain counterSpec
	c.Line = n.Line
	return n.Decode((*plain)(c))
}

type ruleSpec struct {
	Name        string       `yaml:"name"`
	Description string       `yaml:"description"`
	On          kindList     `yaml:"on"`
	If          exprSrc      `yaml:"if"`
	Verdict     string       `yaml:"verdict"`
	Reply       *replySpec   `yaml:"reply"`
	Rewrite     *rewriteSpec `yaml:"rewrite"`
	Stop        bool         `yaml:"stop"`
	Actions     []actionSpec `yaml:"actions"`
	Shadow      bool         `yaml:"shadow"`
	Exempt      exemptSpec   `yaml:"exempt"`
	Budget      *budgetSpec  `yaml:"budget"`
	Mode        string       `yaml:"mode"`
	Tests       []testSpec   `yaml:"tests"`
	Line        int          `yaml:"-"`
}

func (r *ruleSpec) UnmarshalYAML(n *yaml.Node) error {
	type plain ruleSpec
	r.Line = n.Line
	return n.Decode((*plain)(r))
}

type replySpec struct {
	Code int    `yaml:"code"`
	Text string `yaml:"text"`
}

type rewriteSpec struct {
	// Text replaces the message's text elements with one holding the
	// expression's value.
	Text exprSrc `yaml:"text"`
	// Mask is an expression giving words to mask in every text element,
	// ignoring case.
	Mask exprSrc `yaml:"mask"`
	// With is the mask character (default "*").
	With string `yaml:"with"`
}

type budgetSpec struct {
	Actions int    `yaml:"actions"`
	Per     string `yaml:"per"`
}

// kindList is `on: message` or `on: [join_request, member_joined]`.
type kindList []string

func (k *kindList) UnmarshalYAML(n *yaml.Node) error {
	switch n.Kind {
	case yaml.ScalarNode:
		*k = kindList{n.Value}
		return nil
	case yaml.SequenceNode:
		var s []string
		if err := n.Decode(&s); err != nil {
			return err
		}
		*k = s
		return nil
	}
	return yamlx.Errorf(n, "on: want an event kind or a list of them")
}

// exemptSpec is `exempt: none`, `exempt: default` or a list of the roles
// that stay exempt, e.g. `exempt: [owner]` (admins are then subject to the
// rule).
type exemptSpec struct {
	Set   bool
	Roles []string
	Line  int
}

func (e *exemptSpec) UnmarshalYAML(n *yaml.Node) error {
	e.Set, e.Line = true, n.Line
	switch n.Kind {
	case yaml.ScalarNode:
		switch n.Value {
		case "none":
			e.Roles = []string{}
		case "default":
			e.Roles = nil
			e.Set = false
		default:
			e.Roles = []string{n.Value}
		}
		return nil
	case yaml.SequenceNode:
		var s []string
		if err := n.Decode(&s); err != nil {
			return err
		}
		e.Roles = s
		if e.Roles == nil {
			e.Roles = []string{}
		}
		return nil
	}
	return yamlx.Errorf(n, "exempt: want none, default or a list of roles")
}

// YAMLOpaque marks exemptSpec as checking its own shape.
func (exemptSpec) YAMLOpaque() {}

// actionSpec is one entry of `actions:`: `unmute`, `{mute: 10m}`,
// `{kick: "Repeated violations"}`, optionally with `announce: TEXT`.
type actionSpec struct {
	Kind     ActionKind
	Value    string // the literal or expression after the colon
	HasValue bool
	Comment  string // a YAML comment after the value
	Announce string
	Line     int
	problems []string
}

func (a *actionSpec) UnmarshalYAML(n *yaml.Node) error {
	a.Line = n.Line
	switch n.Kind {
	case yaml.ScalarNode:
		a.Kind = ActionKind(n.Value)
		return nil
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if v.Kind != yaml.ScalarNode {
				a.problems = append(a.problems, fmt.Sprintf("%s: want a single value, e.g. {mute: 10m}", k.Value))
				continue
			}
			if k.Value == "announce" {
				a.Announce = v.Value
				continue
			}
			if a.Kind != "" {
				a.problems = append(a.problems, fmt.Sprintf("one action per entry: found both %s and %s", a.Kind, k.Value))
				continue
			}
			a.Kind, a.Value, a.HasValue, a.Comment = ActionKind(k.Value), v.Value, true, v.LineComment
		}
		if a.Kind == "" && len(a.problems) == 0 {
			a.problems = append(a.problems, "empty action")
		}
		return nil
	}
	return yamlx.Errorf(n, "an action is a name (unmute) or a mapping ({mute: 10m})")
}

// YAMLOpaque marks actionSpec as checking its own shape.
func (actionSpec) YAMLOpaque() {}

func (a actionSpec) String() string {
	if !a.HasValue {
		return string(a.Kind)
	}
	return string(a.Kind) + ": " + a.Value
}

type scheduleSpec struct {
	Name     string       `yaml:"name"`
	Cron     string       `yaml:"cron"`
	Timezone string       `yaml:"timezone"`
	Groups   []string     `yaml:"groups"`
	Actions  []actionSpec `yaml:"actions"`
	Mode     *modeSpec    `yaml:"mode"`
	Line     int          `yaml:"-"`
}

func (s *scheduleSpec) UnmarshalYAML(n *yaml.Node) error {
	type plain scheduleSpec
	s.Line = n.Line
	return n.Decode((*plain)(s))
}

type modeSpec struct {
	Name string `yaml:"name"`
	For  string `yaml:"for"`
}

// nameAt finds the rule, counter or schedule around a line, for messages
// about problems the YAML decoder found.
func nameAt(root *yaml.Node, line int) (section, name string) {
	if root == nil || root.Kind != yaml.MappingNode {
		return "", ""
	}
	for i := 0; i+1 < len(root.Content); i += 2 {
		key, seq := root.Content[i].Value, root.Content[i+1]
		if seq.Kind != yaml.SequenceNode {
			continue
		}
		sectionEnd := int(^uint(0) >> 1)
		if i+2 < len(root.Content) {
			sectionEnd = root.Content[i+2].Line
		}
		for j, item := range seq.Content {
			end := sectionEnd
			if j+1 < len(seq.Content) {
				end = seq.Content[j+1].Line
			}
			if line >= item.Line && line < end {
				return strings.TrimSuffix(key, "s"), mappingValue(item, "name")
			}
		}
	}
	return "", ""
}

func mappingValue(n *yaml.Node, key string) string {
	if n.Kind != yaml.MappingNode {
		return ""
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1].Value
		}
	}
	return ""
}

// exprSrc is an expression as written. It keeps a YAML comment that followed
// it on the same line: an unquoted " #" (expr's closure argument) starts a
// comment, which silently cuts the expression short.
type exprSrc struct {
	Src     string
	Comment string
}

func (e *exprSrc) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return yamlx.Errorf(n, "want an expression (a string)")
	}
	e.Src, e.Comment = n.Value, n.LineComment
	return nil
}

// YAMLOpaque marks exprSrc as a scalar.
func (exprSrc) YAMLOpaque() {}

// commentHint explains an expression cut short by a YAML comment.
func commentHint(comment string) string {
	if comment == "" {
		return ""
	}
	return fmt.Sprintf(" (YAML read %q as a comment: a \" #\" starts one; quote the whole expression)", comment)
}
