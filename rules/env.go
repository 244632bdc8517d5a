package rules

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"

	"github.com/timguard/timguard/rules/wordlist"
)

// Input is everything an expression can read about one subject of one
// event. Policy fills it; Set.Env turns it into the environment programs run
// against.
type Input struct {
	Kind        Kind
	GroupID     string
	GroupType   string
	UserID      string
	UserRole    Role
	UserStrikes int
	// UserFirstSeen is when timguard first saw the user in the group
	// (user.first_seen); UserMessages how many of their messages it counted
	// there (user.messages). Both come from the store.
	UserFirstSeen time.Time
	UserMessages  int
	// TopicID is the Community topic of the event (group.topic), "" when
	// the event is not in a topic.
	TopicID    string
	OperatorID string
	Text       string   // all text elements joined by "\n"
	Types      []string // MsgType of every element, in order
	URLs       []string
	Mentions   []string
	AtAll      bool
	ApplyMsg   string
	JoinType   string // Apply or Invited (member_joined)
	ExitType   string // Kicked or Quit (member_left)
	// Counters holds counters.NAME by the counter's index in the Set; a
	// counter the event did not read is 0.
	Counters []int
	Now      time.Time
}

// The expression environment is a flat map: "user.id" and friends are single
// keys, so reading one is a plain map lookup with no reflection and no
// allocation. A compile-time patch turns the member expressions people write
// (user.id, counters.flood) into those keys, and rejects unknown names.
const (
	varEvent        = "event"
	varNow          = "now"
	varGroupID      = "group.id"
	varGroupType    = "group.type"
	varUserID       = "user.id"
	varUserRole     = "user.role"
	varUserStrikes  = "user.strikes"
	varFirstSeen    = "user.first_seen"
	varMessages     = "user.messages"
	varGroupTopic   = "group.topic"
	varOperatorID   = "operator.id"
	varText         = "message.text"
	varTextLower    = "message.text#lower" // lower(message.text), computed once per event
	varTypes        = "message.types"
	varURLs         = "message.urls"
	varMentions     = "message.mentions"
	varAtAll        = "message.at_all"
	varApplyMsg     = "apply.msg"
	varJoinType     = "join.type"
	varExitType     = "exit.type"
	prefixCounters  = "counters."
	prefixLists     = "lists."
	suffixSet       = "#set"   // lists.NAME#set: the list as a set, for `in`
	suffixWords     = "#words" // lists.NAME#words: the list compiled for finding its words
	varWords        = "#words" // the environment's *wordEnv, given to the word functions
	namespaceFields = "group user operator message apply join exit"
)

// fieldProto gives each event variable its type for the checker.
var fieldProto = map[string]any{
	varEvent:       "",
	varNow:         time.Time{},
	varGroupID:     "",
	varGroupType:   "",
	varUserID:      "",
	varUserRole:    "",
	varUserStrikes: 0,
	varFirstSeen:   time.Time{},
	varMessages:    0,
	varGroupTopic:  "",
	varOperatorID:  "",
	varText:        "",
	varTextLower:   "",
	varTypes:       []string{},
	varURLs:        []string{},
	varMentions:    []string{},
	varAtAll:       false,
	varApplyMsg:    "",
	varJoinType:    "",
	varExitType:    "",
}

// Variables lists the names an expression may use, for documentation and
// error messages.
func Variables() []string {
	var out []string
	for k := range fieldProto {
		if !strings.Contains(k, "#") {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return append(out, "counters.NAME", "lists.NAME")
}

// compileEnv is the checker's view of the environment for one rule file.
type compileEnv struct {
	proto    map[string]any
	counters map[string]int // name -> index
	lists    map[string][]string
	// words names the lists whose words an expression looks for
	// (contains_any, matched_words, mask): those are compiled into an
	// automaton. sets names the lists used with `in`.
	words, sets map[string]bool
	// wordArrays: an expression looks for the words of a list built while
	// it runs, which needs the default normalization.
	wordArrays bool
}

func newCompileEnv(counters []*Counter, lists map[string][]string) *compileEnv {
	e := &compileEnv{
		proto:    make(map[string]any, len(fieldProto)+len(counters)+3*len(lists)+1),
		counters: make(map[string]int, len(counters)),
		lists:    make(map[string][]string, len(lists)),
		words:    map[string]bool{},
		sets:     map[string]bool{},
	}
	for k, v := range fieldProto {
		e.proto[k] = v
	}
	e.proto[varWords] = (*wordEnv)(nil)
	for i, c := range counters {
		e.counters[c.Name] = i
		e.proto[prefixCounters+c.Name] = 0
	}
	for name, items := range lists {
		e.lists[name] = items
		e.proto[prefixLists+name] = []string{}
		e.proto[prefixLists+name+suffixSet] = map[string]struct{}{}
		e.proto[prefixLists+name+suffixWords] = (*wordlist.List)(nil)
	}
	return e
}

// usage is what one expression reads, found while patching.
type usage struct {
	counters map[string]bool
	fields   map[string]bool
	// words names the lists whose words the expression looks for.
	words map[string]bool
}

// patcher rewrites member access on the known namespaces into flat names and
// records what the expression reads and every unknown name.
type patcher struct {
	env    *compileEnv
	use    usage
	errors []string
	// bare holds namespace identifiers not (yet) seen under a member
	// access; those left at the end are used on their own.
	bare map[*ast.IdentifierNode]bool
}

// leftovers reports namespaces used on their own, such as `user == "x"`.
func (p *patcher) leftovers() {
	for id := range p.bare {
		p.errors = append(p.errors, fmt.Sprintf("%s is not a value on its own; use %s", id.Value, namespaceHint(id.Value)))
	}
}

func (p *patcher) Visit(node *ast.Node) {
	switch n := (*node).(type) {
	case *ast.MemberNode:
		id, ok := n.Node.(*ast.IdentifierNode)
		if !ok || n.Method {
			return
		}
		if !isNamespace(id.Value) {
			return
		}
		delete(p.bare, id)
		prop, ok := n.Property.(*ast.StringNode)
		if !ok {
			p.errors = append(p.errors, fmt.Sprintf("%s[...] needs a constant name", id.Value))
			return
		}
		if name, ok := p.resolve(id.Value, prop.Value); ok {
			ast.Patch(node, &ast.IdentifierNode{Value: name})
		}
	case *ast.IdentifierNode:
		if isNamespace(n.Value) {
			p.bare[n] = true
		}
	case *ast.BuiltinNode:
		// lower(message.text) is read from a copy lowered once per event.
		if n.Name == "lower" && len(n.Arguments) == 1 {
			if id, ok := n.Arguments[0].(*ast.IdentifierNode); ok && id.Value == varText {
				ast.Patch(node, &ast.IdentifierNode{Value: varTextLower})
			}
		}
	case *ast.BinaryNode:
		// x in lists.NAME is a set lookup, not a scan of the list.
		if n.Operator == "in" {
			if name, ok := p.plainList(n.Right); ok {
				n.Right = &ast.IdentifierNode{Value: prefixLists + name + suffixSet}
				p.env.sets[name] = true
			}
		}
	case *ast.CallNode:
		p.wordCall(n)
	}
	// any(lists.NAME, {lower(message.text) contains #}) is contains_any,
	// through the list's automaton, when every word of the list is already
	// lower case (otherwise the closure can never match an upper-case word
	// and the meaning would change). It also finds the words the list's
	// normalization finds (full-width, hidden, look-alike letters).
	if b, ok := (*node).(*ast.BuiltinNode); ok && b.Name == "any" && len(b.Arguments) == 2 {
		name, isList := p.plainList(b.Arguments[0])
		if isList && p.lowerList(name) && isLowerTextContainsPointer(b.Arguments[1]) {
			call := &ast.CallNode{
				Callee:    &ast.IdentifierNode{Value: "contains_any"},
				Arguments: []ast.Node{&ast.IdentifierNode{Value: varText}, b.Arguments[0]},
			}
			p.wordCall(call)
			ast.Patch(node, call)
		}
	}
}

// wordFuncs are the functions that look for the words of a list, and how
// they are called.
var wordFuncs = map[string]string{
	"contains_any":  "a text and a list: contains_any(message.text, lists.NAME)",
	"matched_words": "a text and a list: matched_words(message.text, lists.NAME)",
	"mask":          `a text, a list and optionally a mask character: mask(message.text, lists.NAME, "#")`,
}

func isIdent(n ast.Node, name string) bool {
	id, ok := n.(*ast.IdentifierNode)
	return ok && id.Value == name
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// wordCall rewrites a call of a word function: contains_any(TEXT,
// lists.NAME) reads the list compiled into an automaton, and every word
// function gets the environment's scratch space as its last argument, so
// that a text is normalized once per event, not once per call.
func (p *patcher) wordCall(n *ast.CallNode) {
	id, ok := n.Callee.(*ast.IdentifierNode)
	if !ok || wordFuncs[id.Value] == "" || len(n.Arguments) < 2 {
		return
	}
	if last, ok := n.Arguments[len(n.Arguments)-1].(*ast.IdentifierNode); ok && last.Value == varWords {
		return // already rewritten
	}
	if most := 2 + btoi(id.Value == "mask"); len(n.Arguments) > most {
		p.errors = append(p.errors, fmt.Sprintf("%s takes %s", id.Value, wordFuncs[id.Value]))
		return
	}
	if name, ok := p.plainList(n.Arguments[1]); ok {
		n.Arguments[1] = &ast.IdentifierNode{Value: prefixLists + name + suffixWords}
		p.env.words[name] = true
		p.use.words[name] = true
	} else if m, ok := n.Arguments[1].(*ast.MemberNode); ok && isIdent(m.Node, "lists") {
		return // an unknown list, already reported
	} else if id.Value == "contains_any" {
		p.env.wordArrays = true
	} else {
		p.errors = append(p.errors, fmt.Sprintf("%s: the second argument must name a list, e.g. %s(message.text, lists.spam_words)", id.Value, id.Value))
		return
	}
	n.Arguments = append(n.Arguments, &ast.IdentifierNode{Value: varWords})
}

// plainList reports whether n is lists.NAME (already flattened) and which.
func (p *patcher) plainList(n ast.Node) (string, bool) {
	id, ok := n.(*ast.IdentifierNode)
	if !ok || !strings.HasPrefix(id.Value, prefixLists) || strings.Contains(id.Value, "#") {
		return "", false
	}
	name := strings.TrimPrefix(id.Value, prefixLists)
	_, known := p.env.lists[name]
	return name, known
}

// lowerList reports whether every word of the list is lower case and not
// empty: contains_any skips empty words, while `text contains ""` holds.
func (p *patcher) lowerList(name string) bool {
	for _, w := range p.env.lists[name] {
		if w == "" || strings.ToLower(w) != w {
			return false
		}
	}
	return true
}

// isLowerTextContainsPointer matches the closure {lower(message.text) contains #}.
func isLowerTextContainsPointer(n ast.Node) bool {
	c, ok := n.(*ast.PredicateNode)
	if !ok {
		return false
	}
	bin, ok := c.Node.(*ast.BinaryNode)
	if !ok || bin.Operator != "contains" {
		return false
	}
	left, ok := bin.Left.(*ast.IdentifierNode)
	if !ok || left.Value != varTextLower {
		return false
	}
	ptr, ok := bin.Right.(*ast.PointerNode)
	return ok && ptr.Name == ""
}

func (p *patcher) resolve(ns, prop string) (string, bool) {
	switch ns {
	case "counters":
		if _, ok := p.env.counters[prop]; !ok {
			p.errors = append(p.errors, fmt.Sprintf("counters.%s is not declared under counters:%s", prop, known(p.env.counters)))
			return "", false
		}
		p.use.counters[prop] = true
		return prefixCounters + prop, true
	case "lists":
		if _, ok := p.env.lists[prop]; !ok {
			p.errors = append(p.errors, fmt.Sprintf("lists.%s is not declared under lists:%s", prop, known(p.env.lists)))
			return "", false
		}
		return prefixLists + prop, true
	}
	if !isNamespace(ns) {
		return "", false // a closure variable or a method: not ours
	}
	name := ns + "." + prop
	if _, ok := fieldProto[name]; !ok || strings.Contains(prop, "#") {
		p.errors = append(p.errors, fmt.Sprintf("%s is not a field; %s has %s", name, ns, namespaceHint(ns)))
		return "", false
	}
	p.use.fields[name] = true
	return name, true
}

func isNamespace(name string) bool {
	switch name {
	case "counters", "lists":
		return true
	}
	return strings.Contains(" "+namespaceFields+" ", " "+name+" ")
}

func namespaceHint(ns string) string {
	switch ns {
	case "counters":
		return "counters.NAME"
	case "lists":
		return "lists.NAME"
	}
	var fields []string
	for k := range fieldProto {
		if strings.HasPrefix(k, ns+".") && !strings.Contains(k, "#") {
			fields = append(fields, k)
		}
	}
	sort.Strings(fields)
	return strings.Join(fields, ", ")
}

func known[T any](names map[string]T) string {
	if len(names) == 0 {
		return " none are"
	}
	return " known: " + strings.Join(sortedKeys(names), ", ")
}

func sortedKeys[T any](m map[string]T) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// maxNodes bounds the size of one expression.
const maxNodes = 2000

// compileExpr compiles src against env. It returns what the expression reads
// and a list of reasons when it does not compile.
func (e *compileEnv) compile(src string, opts ...expr.Option) (*program, []string) {
	p := &patcher{env: e, use: usage{counters: map[string]bool{}, fields: map[string]bool{}, words: map[string]bool{}}, bare: map[*ast.IdentifierNode]bool{}}
	all := append([]expr.Option{
		expr.Env(e.proto),
		expr.Patch(p),
		expr.MaxNodes(maxNodes),
		containsAnyFunc, matchedWordsFunc, maskFunc,
	}, opts...)
	prog, err := expr.Compile(src, all...)
	p.leftovers()
	if len(p.errors) > 0 {
		return nil, dedupe(p.errors)
	}
	if err != nil {
		return nil, []string{exprReason(err)}
	}
	if problems := literalProblems(src); len(problems) > 0 {
		return nil, problems
	}
	return &program{src: src, prog: prog, use: p.use}, nil
}

func dedupe(in []string) []string {
	seen := make(map[string]bool, len(in))
	out := in[:0]
	for _, s := range in {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

// exprReason shortens expr's multi-line error (with a caret under the
// column) to one line that keeps the position.
func exprReason(err error) string {
	msg := err.Error()
	first, _, _ := strings.Cut(msg, "\n")
	first = strings.TrimSpace(first)
	first = strings.ReplaceAll(first, varTextLower, "lower(message.text)")
	first = strings.ReplaceAll(first, suffixSet, "")
	first = strings.ReplaceAll(first, suffixWords, "")
	first = strings.ReplaceAll(first, ", *rules.wordEnv", "")
	first = strings.ReplaceAll(first, "*wordlist.List", "list")
	return first
}

// wordEnv is what the word functions need besides their arguments: the
// scratch space holding the texts normalized for this event, and the
// default normalization for word lists built while a rule runs. Each Env
// has one.
type wordEnv struct {
	scratch wordlist.Scratch
	norm    *wordlist.Normalizer // nil when no rule needs it
	// matched keeps the words each list found in the event's text, for
	// the rules that match after the first (Rule.MatchedWords); it is
	// emptied whenever the text changes.
	matched []listWords
}

// listWords is the words one list found in the event's text.
type listWords struct {
	list  *wordlist.List
	words []string
}

var errNoWordEnv = errors.New("the word functions need their environment")

// containsAnyFunc is contains_any(text, words): whether text contains any of
// words, as the list's normalization reads them (for a list built while
// the rule runs, the default normalization).
var containsAnyFunc = expr.Function("contains_any", func(params ...any) (any, error) {
	text, _ := params[0].(string)
	we, _ := params[len(params)-1].(*wordEnv)
	if we == nil {
		return nil, errNoWordEnv
	}
	switch ws := params[1].(type) {
	case *wordlist.List:
		return ws != nil && ws.Contains(&we.scratch, text), nil
	case []string:
		return we.norm != nil && wordlist.ContainsAny(we.norm, &we.scratch, text, ws), nil
	case []any:
		words := make([]string, 0, len(ws))
		for _, w := range ws {
			if s, ok := w.(string); ok {
				words = append(words, s)
			}
		}
		return we.norm != nil && wordlist.ContainsAny(we.norm, &we.scratch, text, words), nil
	}
	return false, nil
},
	new(func(string, *wordlist.List, *wordEnv) bool),
	new(func(string, []string, *wordEnv) bool),
	new(func(string, []any, *wordEnv) bool),
)

// matchedWordsFunc is matched_words(text, lists.NAME): the words of the
// list found in text, as written in the list, each once.
var matchedWordsFunc = expr.Function("matched_words", func(params ...any) (any, error) {
	text, _ := params[0].(string)
	l, _ := params[1].(*wordlist.List)
	we, _ := params[2].(*wordEnv)
	if we == nil {
		return nil, errNoWordEnv
	}
	if l == nil {
		return []string{}, nil
	}
	words := l.Matched(&we.scratch, text)
	if words == nil {
		words = []string{}
	}
	return words, nil
}, new(func(string, *wordlist.List, *wordEnv) []string))

// maskFunc is mask(text, lists.NAME[, with]): text with every character of
// every word of the list found replaced by with (default *).
var maskFunc = expr.Function("mask", func(params ...any) (any, error) {
	text, _ := params[0].(string)
	l, _ := params[1].(*wordlist.List)
	we, _ := params[len(params)-1].(*wordEnv)
	if we == nil {
		return nil, errNoWordEnv
	}
	with := "*"
	if len(params) == 4 {
		with, _ = params[2].(string)
	}
	if l == nil {
		return text, nil
	}
	return l.Mask(&we.scratch, text, with), nil
},
	new(func(string, *wordlist.List, *wordEnv) string),
	new(func(string, *wordlist.List, string, *wordEnv) string),
)
