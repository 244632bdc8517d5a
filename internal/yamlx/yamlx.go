// Package yamlx decodes YAML strictly: every unknown key is reported with its
// full path and line, not just the first, and ${ENV} references can be
// expanded inside scalar values (never in the raw text, so a secret holding
// YAML syntax cannot change the document's structure).
package yamlx

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

// Problem is one thing wrong with a document.
type Problem struct {
	Line   int
	Path   string // dotted key path, e.g. callback.token or rules[2].verdict
	Reason string
}

func (p Problem) String() string {
	var b strings.Builder
	if p.Line > 0 {
		fmt.Fprintf(&b, "line %d: ", p.Line)
	}
	if p.Path != "" {
		b.WriteString(p.Path)
		b.WriteString(": ")
	}
	b.WriteString(p.Reason)
	return b.String()
}

// Error lists every problem found in one file.
type Error struct {
	File     string
	Problems []Problem
}

func (e *Error) Error() string {
	lines := make([]string, 0, len(e.Problems))
	for _, p := range e.Problems {
		lines = append(lines, e.File+": "+p.String())
	}
	return strings.Join(lines, "\n")
}

// Opaque is implemented by types that decode a node themselves and check their
// own keys; the strict walk does not descend into them.
type Opaque interface {
	YAMLOpaque()
}

// Options tune Decode.
type Options struct {
	// Getenv, when set, expands ${NAME} and ${NAME:-default} in scalar
	// values. Unset names expand to "" (or the default).
	Getenv func(string) (string, bool)
	// OnExpand, when set, hears every value an expansion produced and the
	// text it replaced, so that the caller can keep such values (often
	// secrets) out of its own messages with ScrubExpanded.
	OnExpand func(value, ref string)
}

// ScrubExpanded replaces, in msg, every value an expansion produced with the
// reference it came from (${NAME}): a value read from the environment is
// often a secret and never belongs in an error message.
func ScrubExpanded(msg string, expanded map[string]string) string {
	for value, ref := range expanded {
		if len(value) < 3 {
			continue
		}
		if strings.Contains(msg, value) {
			msg = strings.ReplaceAll(msg, value, "[value of "+ref+"]")
		}
		// yaml.v3 shortens a long value in its errors to 7 bytes and "...".
		if short := value[:min(7, len(value))] + "..."; len(value) > 10 && strings.Contains(msg, short) {
			msg = strings.ReplaceAll(msg, short, "[value of "+ref+"]")
		}
	}
	return msg
}

// Decode parses data (named file in messages) into out, which must be a
// pointer to a struct. Unknown keys, type errors and ${ENV} problems are all
// reported together in an *Error.
func Decode(file string, data []byte, out any, opts Options) error {
	_, problems := DecodeNode(data, out, opts)
	if len(problems) > 0 {
		return &Error{File: file, Problems: problems}
	}
	return nil
}

// DecodeNode is Decode that keeps going: it fills out as far as it can and
// returns the document's root node (nil when data is not YAML) with every
// problem found, sorted by line.
func DecodeNode(data []byte, out any, opts Options) (*yaml.Node, []Problem) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		line, reason := syntaxProblem(err)
		return nil, []Problem{{Line: line, Reason: reason}}
	}
	if doc.Kind == 0 {
		return nil, []Problem{{Reason: "the file is empty"}}
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	if problems := checkAliases(root); len(problems) > 0 {
		// Every later walk (the strict one here, yaml.v3's decoder, the
		// caller's own) would follow the aliases: stop before them.
		return root, problems
	}
	var problems []Problem
	expanded := map[string]string{}
	if opts.Getenv != nil {
		problems = append(problems, expandNode(root, "", opts.Getenv, expanded)...)
		if opts.OnExpand != nil {
			for value, ref := range expanded {
				opts.OnExpand(value, ref)
			}
		}
	}
	defer func() {
		for i := range problems {
			problems[i].Reason = ScrubExpanded(problems[i].Reason, expanded)
		}
	}()
	problems = append(problems, Unknown(root, reflect.TypeOf(out), "")...)
	if err := root.Decode(out); err != nil {
		problems = append(problems, typeProblems(err)...)
	}
	sort.SliceStable(problems, func(i, j int) bool { return problems[i].Line < problems[j].Line })
	return root, problems
}

// MaxDepth is how deeply a document may nest mappings and lists, counting
// what its aliases bring in. A configuration or rule file needs a handful of
// levels; the bound keeps every recursive walk of the document shallow.
const MaxDepth = 100

// A document may expand through its aliases to this many nodes beyond its
// own, or to aliasFactor times its own size if that is more: enough to reuse
// a list many times, far below an alias bomb ("billion laughs"), whose ten
// levels of ten aliases would expand to ten billion nodes.
const (
	aliasBudget = 100_000
	aliasFactor = 10
)

// checkAliases refuses, before anything follows an alias, a document whose
// aliases form a cycle (an anchored node that holds an alias to itself, as
// in "a: &i {<<: *i}"), nest deeper than MaxDepth, or expand beyond the alias
// budget. It walks each node once, remembering the size and height of what
// it walked, so its own work is linear in the document's written size. It
// reports the first such problem, at the line of the alias (or node) that
// crossed the line.
func checkAliases(root *yaml.Node) []Problem {
	c := aliasCheck{shapes: map[*yaml.Node]nodeShape{}, open: map[*yaml.Node]bool{}}
	c.budget = max(aliasBudget, aliasFactor*countNodes(root, 0))
	c.walk(root, 1)
	if c.problem != nil {
		return []Problem{*c.problem}
	}
	return nil
}

// countNodes counts the nodes written in the document, without following
// aliases. The YAML parser bounds the written nesting (10,000 levels), which
// bounds this recursion.
func countNodes(n *yaml.Node, acc int) int {
	acc++
	for _, child := range n.Content {
		acc = countNodes(child, acc)
	}
	return acc
}

type nodeShape struct{ size, height int }

type aliasCheck struct {
	shapes  map[*yaml.Node]nodeShape // nodes walked to the end
	open    map[*yaml.Node]bool      // nodes being walked: the current one's ancestors
	aliased int                      // nodes brought in by aliases, once per use
	budget  int
	path    []pathStep
	problem *Problem
}

// pathStep is one step of the key path to the node being walked: a mapping
// key, or an index into a list.
type pathStep struct {
	key   string
	index int
}

func (c *aliasCheck) fail(line int, format string, args ...any) {
	if c.problem == nil {
		c.problem = &Problem{Line: line, Path: c.pathString(), Reason: fmt.Sprintf(format, args...)}
	}
}

func (c *aliasCheck) pathString() string {
	var b strings.Builder
	for _, s := range c.path {
		if s.key == "" {
			fmt.Fprintf(&b, "[%d]", s.index)
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('.')
		}
		b.WriteString(s.key)
	}
	return b.String()
}

// walk returns the size and height of n once its aliases are expanded, n
// being at the given depth. It stops at the first problem.
func (c *aliasCheck) walk(n *yaml.Node, depth int) nodeShape {
	if c.problem != nil {
		return nodeShape{}
	}
	if depth > MaxDepth {
		c.fail(n.Line, "nested deeper than %d levels", MaxDepth)
		return nodeShape{}
	}
	if n.Kind == yaml.AliasNode {
		target := n.Alias
		if target == nil {
			return nodeShape{size: 1, height: 1}
		}
		if c.open[target] {
			c.fail(n.Line, "alias *%s is inside the node it names (&%s, line %d): an alias cycle", n.Value, n.Value, target.Line)
			return nodeShape{}
		}
		s, done := c.shapes[target]
		if !done {
			s = c.walk(target, depth)
		}
		if depth-1+s.height > MaxDepth {
			c.fail(n.Line, "alias *%s makes the document nested deeper than %d levels", n.Value, MaxDepth)
		}
		c.aliased += s.size
		if c.aliased > c.budget {
			c.fail(n.Line, "aliases expand the document beyond %d nodes (at *%s): refused as an alias bomb", c.budget, n.Value)
		}
		return s
	}
	c.open[n] = true
	s := nodeShape{size: 1, height: 1}
	for i, child := range n.Content {
		switch {
		case n.Kind == yaml.MappingNode && i%2 == 1:
			c.path = append(c.path, pathStep{key: n.Content[i-1].Value})
		case n.Kind == yaml.SequenceNode:
			c.path = append(c.path, pathStep{index: i})
		default:
			c.path = append(c.path, pathStep{key: child.Value})
		}
		cs := c.walk(child, depth+1)
		c.path = c.path[:len(c.path)-1]
		s.size += cs.size
		s.height = max(s.height, cs.height+1)
		if c.problem != nil {
			break
		}
	}
	delete(c.open, n)
	c.shapes[n] = s
	return s
}

// syntaxProblem splits a yaml.v3 syntax error ("yaml: line 3: ...") into its
// line and the reason after it.
func syntaxProblem(err error) (int, string) {
	line := 0
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	if _, scanErr := fmt.Sscanf(msg, "line %d:", &line); scanErr == nil {
		msg = strings.TrimSpace(msg[strings.Index(msg, ":")+1:])
	}
	return line, msg
}

// typeProblems turns yaml.v3's decoding errors into problems.
func typeProblems(err error) []Problem {
	var te *yaml.TypeError
	if errors.As(err, &te) {
		out := make([]Problem, 0, len(te.Errors))
		for _, msg := range te.Errors {
			line := 0
			if _, scanErr := fmt.Sscanf(msg, "line %d:", &line); scanErr == nil {
				msg = strings.TrimSpace(msg[strings.Index(msg, ":")+1:])
			}
			out = append(out, Problem{Line: line, Reason: msg})
		}
		return out
	}
	return []Problem{{Reason: strings.TrimPrefix(err.Error(), "yaml: ")}}
}

// Unknown walks node against type t (following yaml struct tags) and reports
// every mapping key that t does not declare.
func Unknown(node *yaml.Node, t reflect.Type, path string) []Problem {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if node == nil {
		return nil
	}
	if node.Kind == yaml.AliasNode {
		return Unknown(node.Alias, t, path)
	}
	if reflect.PointerTo(t).Implements(opaqueType) || t.Implements(opaqueType) {
		return nil
	}
	var out []Problem
	switch t.Kind() {
	case reflect.Struct:
		if node.Kind != yaml.MappingNode {
			return nil // the decoder reports the type mismatch
		}
		fields := structFields(t)
		for i := 0; i+1 < len(node.Content); i += 2 {
			key, val := node.Content[i], node.Content[i+1]
			if isMerge(key) {
				out = append(out, unknownMerged(val, t, path)...)
				continue
			}
			ft, ok := fields[key.Value]
			if !ok {
				out = append(out, Problem{Line: key.Line, Path: join(path, key.Value), Reason: "unknown key" + suggest(key.Value, fields)})
				continue
			}
			out = append(out, Unknown(val, ft, join(path, key.Value))...)
		}
	case reflect.Map:
		if node.Kind != yaml.MappingNode {
			return nil
		}
		for i := 0; i+1 < len(node.Content); i += 2 {
			if isMerge(node.Content[i]) {
				out = append(out, unknownMerged(node.Content[i+1], t, path)...)
				continue
			}
			out = append(out, Unknown(node.Content[i+1], t.Elem(), join(path, node.Content[i].Value))...)
		}
	case reflect.Slice, reflect.Array:
		if node.Kind != yaml.SequenceNode {
			return nil
		}
		for i, item := range node.Content {
			out = append(out, Unknown(item, t.Elem(), fmt.Sprintf("%s[%d]", path, i))...)
		}
	}
	return out
}

var opaqueType = reflect.TypeOf((*Opaque)(nil)).Elem()

// isMerge reports whether key is YAML's merge key (<<), whose mapping (or
// list of mappings) yaml.v3 merges into the mapping that holds it.
func isMerge(key *yaml.Node) bool {
	return key.Kind == yaml.ScalarNode && key.Value == "<<" && (key.Tag == "" || key.Tag == "!!merge")
}

// unknownMerged checks what a merge key brings in as part of the mapping
// that holds it: its keys belong to type t at path.
func unknownMerged(val *yaml.Node, t reflect.Type, path string) []Problem {
	if val.Kind == yaml.SequenceNode {
		var out []Problem
		for _, item := range val.Content {
			out = append(out, Unknown(item, t, path)...)
		}
		return out
	}
	return Unknown(val, t, path)
}

func structFields(t reflect.Type) map[string]reflect.Type {
	fields := make(map[string]reflect.Type, t.NumField())
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		tag := f.Tag.Get("yaml")
		name, opts, _ := strings.Cut(tag, ",")
		if name == "-" {
			continue
		}
		if strings.Contains(opts, "inline") {
			for k, v := range structFields(f.Type) {
				fields[k] = v
			}
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		fields[name] = f.Type
	}
	return fields
}

// suggest names a declared key close to an unknown one.
func suggest(key string, fields map[string]reflect.Type) string {
	best, bestDist := "", 3
	for name := range fields {
		if d := distance(key, name); d < bestDist || (d == bestDist && name < best) {
			best, bestDist = name, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

// distance is the Levenshtein distance, enough for short keys.
func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// expandNode replaces ${NAME} and ${NAME:-default} in every scalar below
// node. A plain scalar that changed is re-resolved, so sdk_app_id:
// ${APP_ID} decodes as a number.
func expandNode(node *yaml.Node, path string, getenv func(string) (string, bool), expanded map[string]string) []Problem {
	var out []Problem
	switch node.Kind {
	case yaml.ScalarNode:
		if !strings.Contains(node.Value, "${") {
			return nil
		}
		v, err := Expand(node.Value, getenv)
		if err != nil {
			return []Problem{{Line: node.Line, Path: path, Reason: err.Error()}}
		}
		if v != "" {
			expanded[v] = node.Value
		}
		node.Value = v
		if node.Style == 0 || node.Style == yaml.FlowStyle {
			node.Tag = ""
			switch v {
			case "~", "null", "Null", "NULL":
				// A value that spells null is that text, not a null that
				// would empty a secret such as callback.token.
				node.Tag = "!!str"
			}
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(node.Content); i += 2 {
			out = append(out, expandNode(node.Content[i+1], join(path, node.Content[i].Value), getenv, expanded)...)
		}
	case yaml.SequenceNode:
		for i, item := range node.Content {
			out = append(out, expandNode(item, fmt.Sprintf("%s[%d]", path, i), getenv, expanded)...)
		}
	case yaml.DocumentNode:
		for _, item := range node.Content {
			out = append(out, expandNode(item, path, getenv, expanded)...)
		}
	}
	return out
}

// Expand replaces ${NAME} and ${NAME:-default} in s. "$$" is a literal "$".
func Expand(s string, getenv func(string) (string, bool)) (string, error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '$' || i+1 >= len(s) {
			b.WriteByte(c)
			continue
		}
		if s[i+1] == '$' {
			b.WriteByte('$')
			i++
			continue
		}
		if s[i+1] != '{' {
			b.WriteByte(c)
			continue
		}
		end := strings.IndexByte(s[i+2:], '}')
		if end < 0 {
			// The value is not quoted: it may be a secret.
			return "", errors.New("unterminated ${ (write $${ for a literal ${)")
		}
		ref := s[i+2 : i+2+end]
		name, def, hasDef := strings.Cut(ref, ":-")
		if !validEnvName(name) {
			return "", fmt.Errorf("${%s}: %q is not an environment variable name", ref, name)
		}
		val, ok := getenv(name)
		if (!ok || val == "") && hasDef {
			val = def
		}
		b.WriteString(val)
		i += 2 + end
	}
	return b.String(), nil
}

func validEnvName(name string) bool {
	if name == "" {
		return false
	}
	for i, r := range name {
		switch {
		case r == '_', r >= 'A' && r <= 'Z', r >= 'a' && r <= 'z':
		case r >= '0' && r <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}

// Errorf is the error an UnmarshalYAML method returns for node n, starting
// with n's line. It is a *yaml.TypeError: yaml.v3 collects those and goes on
// decoding the rest of the document, while any other error stops it there and
// leaves every later problem unreported.
func Errorf(n *yaml.Node, format string, args ...any) error {
	return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: ", n.Line) + fmt.Sprintf(format, args...)}}
}

// OSGetenv is os.LookupEnv, for Options.Getenv.
func OSGetenv(name string) (string, bool) { return os.LookupEnv(name) }
