package rules

import (
	"github.com/expr-lang/expr/ast"
)

// reads is a set of event variables, one bit each: those something can read
// of a Set's environment. Fill sets only those; the others are never set in
// the Set's Envs, so a reader findReaders missed would see nil (a condition
// quietly false, or a type error).
type reads uint32

const (
	readEvent reads = 1 << iota
	readNow
	readGroupID
	readGroupType
	readUserID
	readUserRole
	readUserStrikes
	readFirstSeen
	readMessages
	readGroupTopic
	readOperatorID
	readText
	readTextLower
	readTypes
	readURLs
	readMentions
	readAtAll
	readApplyMsg
	readJoinType
	readExitType
	readAll = readExitType<<1 - 1
)

// readBits gives each event variable (the keys of fieldProto) its bit.
var readBits = map[string]reads{
	varEvent:       readEvent,
	varNow:         readNow,
	varGroupID:     readGroupID,
	varGroupType:   readGroupType,
	varUserID:      readUserID,
	varUserRole:    readUserRole,
	varUserStrikes: readUserStrikes,
	varFirstSeen:   readFirstSeen,
	varMessages:    readMessages,
	varGroupTopic:  readGroupTopic,
	varOperatorID:  readOperatorID,
	varText:        readText,
	varTextLower:   readTextLower,
	varTypes:       readTypes,
	varURLs:        readURLs,
	varMentions:    readMentions,
	varAtAll:       readAtAll,
	varApplyMsg:    readApplyMsg,
	varJoinType:    readJoinType,
	varExitType:    readExitType,
}

// findReaders finds what can read a set's environment: every program of the
// set (rules' conditions, action durations and rewrites, counters' keys and
// conditions, schedules' actions) and, outside the programs, the words a
// rule found ({words} and the audit record, Rule.MatchedWords), which read
// message.text and apply.msg. Counter keys joined without the VM read the
// fields their expression names, so the key program covers them. It sets
// s.reads and s.readCounters.
func (s *Set) findReaders() {
	v := &identVisitor{names: map[string]bool{}}
	walk := func(p *program) {
		if p == nil {
			return
		}
		// What the patcher saw the expression read, before expr's
		// optimizer moved parts of it where ast.Walk does not look ...
		for name := range p.use.fields {
			v.names[name] = true
		}
		for name := range p.use.counters {
			v.names[prefixCounters+name] = true
		}
		// ... and the names of the program as it runs, with those the
		// patcher added (lower(message.text) reads message.text#lower).
		if p.prog != nil {
			node := p.prog.Node()
			ast.Walk(&node, v)
		}
	}
	for _, c := range s.Counters {
		walk(c.key)
		walk(c.cond)
	}
	var r reads
	for _, rule := range s.Rules {
		for _, p := range ruleProgs(rule) {
			walk(p)
		}
		if len(rule.wordListNames) > 0 || len(rule.wordLists) > 0 {
			r |= readText | readApplyMsg
		}
	}
	for _, sc := range s.Schedules {
		for _, a := range sc.Actions {
			if a.duration != nil {
				walk(a.duration.prog)
			}
		}
	}
	if v.env {
		// $env reads the environment by any name.
		s.reads = readAll
		s.readCounters = s.Counters
		return
	}
	for name := range v.names {
		r |= readBits[name]
	}
	s.reads = r
	s.readCounters = nil
	for _, c := range s.Counters {
		if v.names[prefixCounters+c.Name] {
			s.readCounters = append(s.readCounters, c)
		}
	}
}

// identVisitor collects the identifiers of a checked expression: the
// environment's keys it loads (and names of functions and closure
// variables, which match no key).
type identVisitor struct {
	names map[string]bool
	// env: the expression uses $env, which reads any key.
	env bool
}

func (v *identVisitor) Visit(node *ast.Node) {
	// The optimizer folds map(filter(xs, p), q) into filter(xs, p) with q
	// in Map, which ast.Walk does not visit.
	if b, ok := (*node).(*ast.BuiltinNode); ok && b.Map != nil {
		ast.Walk(&b.Map, v)
	}
	if id, ok := (*node).(*ast.IdentifierNode); ok {
		if id.Value == "$env" {
			v.env = true
		}
		v.names[id.Value] = true
	}
}
