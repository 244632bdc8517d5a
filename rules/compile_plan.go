package rules

// This file works out, once per set, what each event kind needs (the plan)
// and boxes the lists expressions read.

import "time"

// plan works out, per kind, the rules, counters and budgets it needs.
func (c *compiler) plan(set *Set) {
	for _, k := range Kinds() {
		p := &Plan{Kind: k}
		use := map[string]bool{}
		for _, r := range set.Rules {
			if !containsKind(r.On, k) {
				continue
			}
			p.Rules = append(p.Rules, r)
			for _, name := range r.counters {
				use[name] = true
			}
			if r.Budget != nil {
				p.Budgeted = append(p.Budgeted, r)
			}
			if r.Mode != "" {
				p.UsesModes = true
			}
			if readsField(varURLs, ruleProgs(r)...) {
				p.ReadsURLs = true
			}
		}
		for _, ctr := range set.Counters {
			touch := containsKind(ctr.On, k)
			if touch || use[ctr.Name] {
				p.Counters = append(p.Counters, CounterUse{Counter: ctr, Touch: touch})
				if readsField(varURLs, ctr.key, ctr.cond) {
					p.ReadsURLs = true
				}
			}
		}
		if len(p.Rules) > 0 || len(p.Counters) > 0 {
			set.plans[k] = p
		}
	}
	c.planUsers(set)
}

// DefaultUserTTL is how long a user's activity in a group is kept after
// they were last seen there, unless users.forget_after says otherwise.
const DefaultUserTTL = 90 * 24 * time.Hour

// planUsers works out, per kind, what is read and recorded of the
// subjects' activity. When no rule reads user.first_seen or user.messages,
// nothing is. Otherwise every kind with a plan whose events show the user
// in the group (a message, a member joining) records a sighting, so that
// first_seen is right for the rules that read it; one kind counts
// messages, so that a message seen by both message callbacks counts once.
func (c *compiler) planUsers(set *Set) {
	tracked := false
	for _, r := range set.Rules {
		if readsField(varFirstSeen, ruleProgs(r)...) || readsField(varMessages, ruleProgs(r)...) {
			tracked = true
		}
	}
	if !tracked {
		return
	}
	counting := MessageSent
	if set.plans[Message] != nil {
		counting = Message
	}
	for k, p := range set.plans {
		for _, r := range p.Rules {
			if readsField(varFirstSeen, ruleProgs(r)...) || readsField(varMessages, ruleProgs(r)...) {
				p.Users.Read = true
			}
		}
		switch k {
		case Message, MessageSent, MemberJoined:
			p.Users.Seen = true
		}
		p.Users.Count = k == counting
	}
}

// boxLists boxes, once, what expressions read of the lists: the words,
// the set `in` looks in (for every list written as a sequence, and for
// others when an expression uses `in`) and the compiled list.
func (c *compiler) boxLists(set *Set) {
	set.boxed = make(map[string]any, 3*len(set.Lists))
	for name, items := range set.Lists {
		set.boxed[prefixLists+name] = items
		if d := c.listDefs[name]; d == nil || d.plain || c.env.sets[name] {
			members := make(map[string]struct{}, len(items))
			for _, it := range items {
				members[it] = struct{}{}
			}
			set.boxed[prefixLists+name+suffixSet] = members
		}
		set.boxed[prefixLists+name+suffixWords] = set.words[name] // nil unless its words are looked for
	}
	for _, r := range set.Rules {
		if r.Rewrite != nil && r.Rewrite.listName != "" {
			r.Rewrite.list = set.words[r.Rewrite.listName]
		}
		r.wordLists = wordListsOf(r.wordListNames, set.words)
	}
}
