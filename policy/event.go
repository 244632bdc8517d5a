// Package policy turns a callback into a decision: it reads what the rules
// need from the store in one round trip, evaluates the compiled rules (pure,
// in memory), merges their verdicts into the reply, and commits strikes and
// actions. Rule evaluation itself does no I/O.
package policy

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"time"

	"github.com/timguard/timguard/rules"
	"github.com/timguard/timguard/tim"
)

// Event is a decoded callback ready for evaluation.
type Event struct {
	// ID identifies the callback: a hash of its command and body, so a
	// callback delivered twice has the same ID.
	ID       string
	Kind     rules.Kind // "" for callbacks rules do not evaluate
	Command  string
	Callback tim.Event
	// Base holds the fields every subject shares.
	Base rules.Input
	// Subjects are the users the rules are evaluated for, one decision
	// each: the sender, the applicant, each invitee or member. Group-wide
	// events have one subject "".
	Subjects []string
	// Body is the callback body, when known (for message rewrites).
	Body []tim.MsgElem
	// Raw is the callback body as it arrived. The caller may reuse its
	// bytes once the callback is answered: copy them to keep them.
	Raw []byte
	// Platform is the OptPlatform query parameter (RESTAPI, iOS, ...).
	Platform string
	Received time.Time

	urlsFound bool
	// subject and types hold Subjects and Base.Types of a message from
	// one sender with one element, the most common callback, so that they
	// take no allocation of their own (the slices are full: an append
	// copies them).
	subject [1]string
	types   [1]string
}

// EventID hashes a callback's command and body (or, for an "after"
// callback, what names the event: tim.Identity).
func EventID(command string, body []byte) string {
	h := sha256.New()
	h.Write([]byte(command))
	h.Write([]byte{0})
	h.Write(body)
	var sum [sha256.Size]byte
	return hex.EncodeToString(h.Sum(sum[:0])[:12])
}

// NewEvent prepares a decoded callback. body is the raw callback body (for
// the event ID); now is when it arrived.
func NewEvent(cb tim.Event, body []byte, now time.Time) *Event {
	h := cb.Header()
	// An "after" callback delivered twice, even in other bytes, keeps its
	// ID: the dedupe mark and the IDs of its actions follow from it.
	named := body
	// Identities are a few dozen bytes: built on the stack.
	var idBuf [256]byte
	if id, ok := tim.AppendIdentity(idBuf[:0], cb); ok {
		named = id
	}
	ev := &Event{
		ID:       EventID(h.CallbackCommand, named),
		Command:  h.CallbackCommand,
		Callback: cb,
		Raw:      body,
		Received: now,
	}
	ev.Kind, _ = rules.KindOf(h.CallbackCommand)
	ev.Base = rules.Input{Kind: ev.Kind, GroupID: h.GroupID, GroupType: h.Type, TopicID: h.TopicID, Now: now}
	switch e := cb.(type) {
	case *tim.BeforeApplyJoinGroup:
		ev.Subjects = []string{e.Requestor}
		ev.Base.OperatorID = e.Requestor
		ev.Base.ApplyMsg = e.ApplyMsg
	case *tim.BeforeInviteJoinGroup:
		ev.Subjects = accounts(e.DestinationMembers)
		ev.Base.OperatorID = e.Operator
	case *tim.BeforeSendMsg:
		ev.fillMessage(e)
	case *tim.AfterSendMsg:
		ev.fillMessage(&e.BeforeSendMsg)
	case *tim.AfterNewMemberJoin:
		ev.Subjects = accounts(e.NewMemberList)
		ev.Base.OperatorID = e.Operator
		ev.Base.JoinType = e.JoinType
	case *tim.AfterMemberExit:
		ev.Subjects = accounts(e.ExitMemberList)
		ev.Base.OperatorID = e.Operator
		ev.Base.ExitType = e.ExitType
	case *tim.AfterGroupDestroyed:
		ev.Subjects = []string{""}
		ev.Base.OperatorID = e.Operator
	}
	return ev
}

func (ev *Event) fillMessage(e *tim.BeforeSendMsg) {
	ev.subject[0] = e.From
	ev.Subjects = ev.subject[:]
	ev.Base.OperatorID = e.Operator
	if ev.Base.OperatorID == "" {
		ev.Base.OperatorID = e.From
	}
	ev.Body = e.MsgBody
	ev.Base.Text = joinTexts(e.MsgBody)
	if len(e.MsgBody) <= len(ev.types) {
		ev.Base.Types = ev.types[:len(e.MsgBody):len(e.MsgBody)]
	} else {
		ev.Base.Types = make([]string, len(e.MsgBody))
	}
	for i, el := range e.MsgBody {
		ev.Base.Types[i] = el.MsgType
	}
	for _, at := range e.GroupAtInfo {
		if at.AtAllFlag == 1 {
			ev.Base.AtAll = true
			continue
		}
		if at.Account != "" {
			ev.Base.Mentions = append(ev.Base.Mentions, at.Account)
		}
	}
}

// joinTexts is strings.Join(tim.Texts(body), "\n") without the slice of
// texts, and without copying the text of a message of one text element.
func joinTexts(body []tim.MsgElem) string {
	n, size, one := 0, 0, ""
	for _, el := range body {
		if el.MsgType == tim.ElemText {
			n++
			size += len(el.MsgContent.Text)
			one = el.MsgContent.Text
		}
	}
	if n <= 1 {
		return one
	}
	var b strings.Builder
	b.Grow(size + n - 1)
	first := true
	for _, el := range body {
		if el.MsgType == tim.ElemText {
			if !first {
				b.WriteByte('\n')
			}
			first = false
			b.WriteString(el.MsgContent.Text)
		}
	}
	return b.String()
}

// prepare works out what only some rule sets read: the links in the text,
// when an expression of the plan reads message.urls.
func (ev *Event) prepare(plan *rules.Plan) {
	if plan.ReadsURLs && !ev.urlsFound {
		ev.Base.URLs = FindURLs(ev.Base.Text)
		ev.urlsFound = true
	}
}

// Group returns the event's group.
func (ev *Event) Group() string { return ev.Base.GroupID }

func accounts(ms []tim.Member) []string {
	out := make([]string, 0, len(ms))
	for _, m := range ms {
		if m.Account != "" {
			out = append(out, m.Account)
		}
	}
	return out
}
