package policy

import (
	"errors"
	"sync/atomic"

	"github.com/timguard/timguard/rules"
)

// RuleHolder holds the rule set in force. Reloads swap it atomically; readers
// never see a half-loaded set.
type RuleHolder struct {
	p atomic.Pointer[rules.Set]
}

// NewRuleHolder holds set.
func NewRuleHolder(set *rules.Set) *RuleHolder {
	h := &RuleHolder{}
	h.p.Store(set)
	return h
}

// Rules implements RuleSource.
func (h *RuleHolder) Rules() *rules.Set { return h.p.Load() }

// Swap puts set in force and returns the previous one.
func (h *RuleHolder) Swap(set *rules.Set) *rules.Set {
	if set == nil {
		panic(errors.New("policy: RuleHolder.Swap(nil)"))
	}
	return h.p.Swap(set)
}
