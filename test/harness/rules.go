package harness

import (
	"strings"

	"github.com/timguard/timguard/rules"
)

// LoadRules is the load generator's rule file: rules.example.yaml's rules
// without their kept tests, the schedules and the night-mode rule (which
// needs a schedule), so that a callback costs what it costs with the rules
// people start from: three counters, four lists, strikes, budgets, a shadow
// rule and a rewrite. The mix makes spam-words, repeat-offender, flood,
// link-spam, mask-slurs, trusted-fast-lane, banned-applicants,
// link-in-application and leave-notice match.
const LoadRules = `version: 1
lists:
  trusted: ["alice", "bob"]
  banned: ["mallory", "spambot01"]
  spam_words: ["free crypto", "t.me/", "airdrop"]
  slurs: ["idiot", "moron"]
strikes:
  decay: 24h
counters:
  - name: user_msgs_10s
    on: [message]
    key: group.id + "/" + user.id
    window: 10s
  - name: group_joins_1m
    on: [join_request, member_joined]
    key: group.id
    window: 1m
  - name: user_links_1h
    on: [message]
    key: group.id + "/" + user.id
    if: len(message.urls) > 0
    window: 1h
rules:
  - name: trusted-fast-lane
    on: join_request
    if: user.id in lists.trusted
    verdict: approve
    stop: true
  - name: banned-applicants
    on: join_request
    if: user.id in lists.banned
    verdict: reject
    reply: {code: 10110, text: "You cannot join this group."}
  - name: banned-invitees
    on: invite
    if: user.id in lists.banned
    verdict: refuse
  - name: link-in-application
    on: join_request
    if: apply.msg contains "http" || apply.msg contains "t.me/"
    verdict: hold
  - name: raid
    on: member_joined
    if: counters.group_joins_1m > 30
    actions: [{mute_group: 15m, announce: "The group can talk again."}]
    budget: {actions: 1, per: 15m}
  - name: spam-words
    on: message
    if: 'any(lists.spam_words, {lower(message.text) contains #})'
    verdict: block
    reply: {code: 10101, text: "Blocked words are not allowed here."}
    actions: [{strike: 1}]
  - name: repeat-offender
    on: message
    if: user.strikes >= 3
    verdict: block
    actions: [{kick: "Repeated violations"}]
  - name: flood
    on: message
    if: counters.user_msgs_10s > 5
    actions: [{mute: 'duration("10m") * (user.strikes + 1)'}, {strike: 1}]
    budget: {actions: 40, per: 1m}
  - name: link-spam
    on: message
    if: len(message.urls) > 0 && counters.user_links_1h > 3
    verdict: drop
  - name: at-all-by-members
    on: message
    if: message.at_all
    verdict: block
    reply: {code: 10102, text: "Only admins can mention everyone."}
  - name: mask-slurs
    on: message
    if: contains_any(message.text, lists.slurs)
    verdict: rewrite
    rewrite: {mask: lists.slurs}
  - name: images-from-newcomers
    on: message
    shadow: true
    if: '"TIMImageElem" in message.types && user.strikes > 0'
    verdict: block
  - name: leave-notice
    on: member_left
    if: exit.type == "Kicked"
    actions: [{warn: "A member was removed by the moderators."}]
`

// ResilienceRules is the resilience suite's rule file. Every rule that
// calls the REST API acts on a user the mix uses for that one trigger, so
// each decided action is one member entry in one REST call: mute-word and
// newcomers-listen-first mute (forbid_send_msg), kick-word removes
// (delete_group_member), leave-notice sends a notice to the removed member
// (send_group_system_notification). spam-words and flood need the store
// (strikes, counters) and act only through strikes and the verdict. Join
// requests are counted, so the store is needed to decide them, and
// store.fail_mode decides them when it is down.
const ResilienceRules = `version: 1
lists:
  spam_words: ["free crypto", "airdrop"]
counters:
  - name: user_msgs_10s
    on: [message]
    key: group.id + "/" + user.id
    window: 10s
  - name: group_joins_1m
    on: [join_request, member_joined]
    key: group.id
    window: 1m
rules:
  - name: spam-words
    on: message
    if: 'any(lists.spam_words, {lower(message.text) contains #})'
    verdict: block
    reply: {code: 10101, text: "Blocked words are not allowed here."}
    actions: [{strike: 1}]
  - name: flood
    on: message
    if: counters.user_msgs_10s > 5
    verdict: drop
    actions: [{strike: 1}]
  - name: mute-word
    on: message
    if: message.text contains "#mute"
    actions: [{mute: 10m}]
  - name: kick-word
    on: message
    if: message.text contains "#kick"
    verdict: block
    actions: [{kick: "resilience test"}]
  - name: newcomers-listen-first
    on: member_joined
    if: group.id startsWith "@TGS#wave"
    actions: [{mute: 5m}]
  - name: join-raid
    on: join_request
    if: counters.group_joins_1m > 100000
    verdict: reject
  - name: leave-notice
    on: member_left
    if: exit.type == "Kicked"
    actions: [{warn: "A member was removed by the moderators."}]
`

// ResilienceEffects is what ResilienceRules make the IM server do for a
// callback of the resilience mix (UniqueTriggers): one effect per member
// entry, whatever the store's state, since none of these rules reads it.
func ResilienceEffects(class Class, group string, users []string) []Effect {
	var out []Effect
	add := func(kind string) {
		for _, u := range users {
			out = append(out, Effect{Kind: kind, Group: group, User: u})
		}
	}
	switch class {
	case ClassMuteWord:
		add(string(rules.ActMute)) // mute-word
	case ClassKickWord:
		add(string(rules.ActKick)) // kick-word
	case ClassJoined:
		if strings.HasPrefix(group, "@TGS#wave") {
			add(string(rules.ActMute)) // newcomers-listen-first
		}
	case ClassKicked:
		add(string(rules.ActWarn)) // leave-notice
	}
	return out
}
