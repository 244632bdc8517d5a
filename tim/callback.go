// Package tim speaks the Tencent Cloud IM wire protocol: callback payloads and
// the reply envelope, the callback signature, UserSig and the REST client.
//
// Field names follow Tencent's documentation exactly in the JSON tags; the Go
// names are idiomatic.
package tim

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
)

// Callback commands the IM server sends (the CallbackCommand query parameter
// and body field).
const (
	CmdBeforeApplyJoinGroup  = "Group.CallbackBeforeApplyJoinGroup"
	CmdBeforeInviteJoinGroup = "Group.CallbackBeforeInviteJoinGroup"
	CmdAfterNewMemberJoin    = "Group.CallbackAfterNewMemberJoin"
	CmdAfterMemberExit       = "Group.CallbackAfterMemberExit"
	CmdBeforeSendMsg         = "Group.CallbackBeforeSendMsg"
	CmdAfterSendMsg          = "Group.CallbackAfterSendMsg"
	CmdAfterGroupDestroyed   = "Group.CallbackAfterGroupDestroyed"

	CmdAfterMemberFieldChanged = "Group.CallbackAfterMemberFieldChanged"
	CmdAfterChangeGroupOwner   = "Group.CallbackAfterChangeGroupOwner"
	CmdRequestOverLimit        = "Alert.RequestOverLimit"
)

// Group types as the REST API and callbacks name them.
const (
	GroupPrivate    = "Private"    // Work
	GroupPublic     = "Public"     // Public
	GroupChatRoom   = "ChatRoom"   // Meeting
	GroupAVChatRoom = "AVChatRoom" // Live
	GroupCommunity  = "Community"  // Community
)

// NormalizeGroupType maps the SDK's names (Work, Meeting, Live) to the REST
// names so that both spellings behave the same. Unknown names are returned
// unchanged.
func NormalizeGroupType(t string) string {
	switch t {
	case "Work":
		return GroupPrivate
	case "Meeting":
		return GroupChatRoom
	case "Live":
		return GroupAVChatRoom
	}
	return t
}

// Message element types (MsgType).
const (
	ElemText     = "TIMTextElem"
	ElemFace     = "TIMFaceElem"
	ElemLocation = "TIMLocationElem"
	ElemCustom   = "TIMCustomElem"
	ElemImage    = "TIMImageElem"
	ElemSound    = "TIMSoundElem"
	ElemFile     = "TIMFileElem"
	ElemVideo    = "TIMVideoFileElem"
)

// Event is a decoded callback. Every concrete type is a pointer to one of the
// structs below.
type Event interface {
	// Header returns the fields common to all group callbacks.
	Header() *Common
}

// Common holds the fields every group callback carries.
type Common struct {
	CallbackCommand string    `json:"CallbackCommand"`
	GroupID         string    `json:"GroupId"`
	Type            string    `json:"Type"`
	EventTime       EventTime `json:"EventTime"`
	TopicID         string    `json:"TopicId,omitempty"`
}

// Header implements Event.
func (c *Common) Header() *Common { return c }

// Member is one entry of a member list.
type Member struct {
	Account string `json:"Member_Account"`
}

// BeforeApplyJoinGroup is Group.CallbackBeforeApplyJoinGroup.
type BeforeApplyJoinGroup struct {
	Common
	Requestor string `json:"Requestor_Account"`
	ApplyMsg  string `json:"ApplyMsg,omitempty"`
}

// BeforeInviteJoinGroup is Group.CallbackBeforeInviteJoinGroup.
type BeforeInviteJoinGroup struct {
	Common
	Operator           string   `json:"Operator_Account"`
	DestinationMembers []Member `json:"DestinationMembers"`
}

// AfterNewMemberJoin is Group.CallbackAfterNewMemberJoin.
type AfterNewMemberJoin struct {
	Common
	JoinType      string   `json:"JoinType"`
	Operator      string   `json:"Operator_Account"`
	NewMemberList []Member `json:"NewMemberList"`
}

// AfterMemberExit is Group.CallbackAfterMemberExit.
type AfterMemberExit struct {
	Common
	ExitType       string   `json:"ExitType"`
	Operator       string   `json:"Operator_Account"`
	ExitMemberList []Member `json:"ExitMemberList"`
}

// BeforeSendMsg is Group.CallbackBeforeSendMsg.
type BeforeSendMsg struct {
	Common
	From            string    `json:"From_Account"`
	Operator        string    `json:"Operator_Account,omitempty"`
	Random          uint32    `json:"Random"`
	MsgID           string    `json:"MsgId,omitempty"`
	OnlineOnlyFlag  int       `json:"OnlineOnlyFlag"`
	MsgBody         []MsgElem `json:"MsgBody"`
	CloudCustomData string    `json:"CloudCustomData,omitempty"`
	// GroupAtInfo is documented for AfterSendMsg; some deployments send it
	// with BeforeSendMsg too, so it is read when present.
	GroupAtInfo []GroupAt `json:"GroupAtInfo,omitempty"`
}

// AfterSendMsg is Group.CallbackAfterSendMsg.
type AfterSendMsg struct {
	BeforeSendMsg
	MsgSeq  uint64 `json:"MsgSeq"`
	MsgTime int64  `json:"MsgTime"`
}

// GroupAt is one entry of GroupAtInfo.
type GroupAt struct {
	AtAllFlag int    `json:"GroupAtAllFlag"`
	Account   string `json:"GroupAt_Account"`
}

// AfterGroupDestroyed is Group.CallbackAfterGroupDestroyed.
type AfterGroupDestroyed struct {
	Common
	Owner      string   `json:"Owner_Account"`
	Name       string   `json:"Name"`
	MemberList []Member `json:"MemberList,omitempty"`
	Operator   string   `json:"Operator_Account,omitempty"`
}

// AfterMemberFieldChanged is Group.CallbackAfterMemberFieldChanged: a
// member's profile in the group changed
// (https://www.tencentcloud.com/document/product/1047/60393). Role
// ("Admin" or "Member") and NameCard carry the changed values; a field that
// did not change may be absent.
type AfterMemberFieldChanged struct {
	Common
	Operator string `json:"Operator_Account"`
	Member   string `json:"Member_Account"`
	Role     string `json:"Role,omitempty"`
	NameCard string `json:"NameCard,omitempty"`
}

// RequestOverLimit is Alert.RequestOverLimit: the app went past a REST limit.
// Request is the rate the app reached (calls per second) and Limit the
// command's limit ("API request QPS rate" and "API request QPS threshold":
// https://www.tencentcloud.com/document/product/1047/60256).
type RequestOverLimit struct {
	Common
	ServiceName string `json:"ServiceName"`
	Command     string `json:"Command"`
	Request     int64  `json:"Request"`
	Limit       int64  `json:"Limit"`
}

// OtherCallback is any well-formed callback timguard does not evaluate. It
// is answered OK and recorded.
type OtherCallback struct {
	Common
}

// EventTime is milliseconds since the epoch. Tencent sends it both as a JSON
// number and as a string; both are accepted.
type EventTime int64

// UnmarshalJSON accepts 1669872112000, "1669872112000" and null.
func (t *EventTime) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) == 0 || string(b) == "null" {
		return nil
	}
	if b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return fmt.Errorf("EventTime: %w", err)
		}
		if s == "" {
			*t = 0
			return nil
		}
		b = []byte(s)
	}
	n, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil {
		// A float such as 1.669872112e12 is still a valid JSON number.
		f, ferr := strconv.ParseFloat(string(b), 64)
		if ferr != nil || f < 0 || f > 1<<62 {
			return fmt.Errorf("EventTime: %q is not milliseconds since the epoch", b)
		}
		n = int64(f)
	}
	*t = EventTime(n)
	return nil
}

// MarshalJSON writes the number form.
func (t EventTime) MarshalJSON() ([]byte, error) {
	return strconv.AppendInt(nil, int64(t), 10), nil
}

// Identity names an "after" event whatever the bytes that carried it: the
// IM server may deliver one event twice (retry on timeout), serialised
// differently (key order, spacing, EventTime as a string). It is built from
// the command, the group, the topic, the event's time and what tells the
// event apart: a message's sender, Random, MsgSeq and MsgId; the operator,
// join or exit type and the members (in any order) of a join or an exit.
// ok is false for "before" callbacks, which are never delivered twice, and
// for an event without EventTime (or, for a message, without MsgSeq or
// Random) that would be too thinly named: the caller then names it by its
// bytes.
func Identity(ev Event) (id []byte, ok bool) {
	return AppendIdentity(nil, ev)
}

// AppendIdentity appends Identity(ev) to dst, or returns nil and false as
// Identity does: a caller hashing the identity at once may give a buffer of
// its stack.
func AppendIdentity(dst []byte, ev Event) (id []byte, ok bool) {
	h := ev.Header()
	if h.EventTime == 0 {
		return nil, false
	}
	b := identityField(dst, h.CallbackCommand)
	b = identityField(b, h.GroupID)
	b = identityField(b, h.TopicID)
	b = strconv.AppendInt(b, int64(h.EventTime), 10)
	switch e := ev.(type) {
	case *AfterSendMsg:
		if e.MsgSeq == 0 && e.Random == 0 {
			return nil, false
		}
		b = identityField(b, e.From)
		b = strconv.AppendUint(append(b, '|'), uint64(e.Random), 10)
		b = strconv.AppendUint(append(b, '|'), e.MsgSeq, 10)
		b = identityField(b, e.MsgID)
		return b, true
	case *AfterNewMemberJoin:
		b = identityField(identityField(b, e.JoinType), e.Operator)
		return identityMembers(b, e.NewMemberList), true
	case *AfterMemberExit:
		b = identityField(identityField(b, e.ExitType), e.Operator)
		return identityMembers(b, e.ExitMemberList), true
	case *AfterGroupDestroyed:
		return identityField(identityField(b, e.Owner), e.Operator), true
	}
	return nil, false
}

// identityField appends s with its length, so that no two lists of fields
// give the same bytes.
func identityField(b []byte, s string) []byte {
	b = append(b, '|')
	b = strconv.AppendInt(b, int64(len(s)), 10)
	b = append(b, ':')
	return append(b, s...)
}

func identityMembers(b []byte, ms []Member) []byte {
	accounts := make([]string, len(ms))
	for i, m := range ms {
		accounts[i] = m.Account
	}
	slices.Sort(accounts)
	for _, a := range accounts {
		b = identityField(b, a)
	}
	return b
}

// MsgElem is one element of MsgBody.
type MsgElem struct {
	MsgType    string     `json:"MsgType"`
	MsgContent MsgContent `json:"MsgContent"`
}

// MsgContent keeps the element's content exactly as received, so that a
// rewritten message passes untouched elements on byte for byte, and exposes
// the string fields the rules read. Fields of other types are not decoded:
// a custom element with an unusual shape must not make a callback fail.
type MsgContent struct {
	Text string // TIMTextElem
	Data string // TIMCustomElem, TIMFaceElem
	Desc string // TIMCustomElem, TIMLocationElem
	Ext  string // TIMCustomElem

	raw json.RawMessage
}

// TextContent builds the content of a new text element.
func TextContent(text string) MsgContent { return MsgContent{Text: text} }

// UnmarshalJSON implements json.Unmarshaler. A field that is not a string
// reads as "" (encoding/json fills the others and reports only the type
// error, which is not one here).
func (c *MsgContent) UnmarshalJSON(b []byte) error {
	var fields struct {
		Text, Data, Desc, Ext string
	}
	if err := json.Unmarshal(b, &fields); err != nil {
		var typeErr *json.UnmarshalTypeError
		if !errors.As(err, &typeErr) {
			return fmt.Errorf("MsgContent: %w", err)
		}
		fields.Text, fields.Data, fields.Desc, fields.Ext = stringsOnly(b, fields.Text, fields.Data, fields.Desc, fields.Ext)
	}
	*c = MsgContent{
		Text: fields.Text,
		Data: fields.Data,
		Desc: fields.Desc,
		Ext:  fields.Ext,
		raw:  append(json.RawMessage(nil), b...),
	}
	return nil
}

// stringsOnly re-reads the four fields when one of them had another type:
// encoding/json may have stopped at the mistyped one, so each is taken from
// the raw object on its own.
func stringsOnly(b []byte, text, data, desc, ext string) (string, string, string, string) {
	var raw struct {
		Text, Data, Desc, Ext json.RawMessage
	}
	if json.Unmarshal(b, &raw) != nil {
		return text, data, desc, ext
	}
	return stringField(raw.Text), stringField(raw.Data), stringField(raw.Desc), stringField(raw.Ext)
}

// MarshalJSON writes the received content unchanged, or the string fields of
// content built in code.
func (c MsgContent) MarshalJSON() ([]byte, error) {
	if c.raw != nil {
		return c.raw, nil
	}
	type plain struct {
		Text string `json:"Text,omitempty"`
		Data string `json:"Data,omitempty"`
		Desc string `json:"Desc,omitempty"`
		Ext  string `json:"Ext,omitempty"`
	}
	return json.Marshal(plain{c.Text, c.Data, c.Desc, c.Ext})
}

func stringField(b json.RawMessage) string {
	if len(b) == 0 || b[0] != '"' {
		return ""
	}
	var s string
	if json.Unmarshal(b, &s) != nil {
		return ""
	}
	return s
}

// DecodeError says why a callback body was refused.
type DecodeError struct {
	Command string
	Reason  string
	Err     error
}

func (e *DecodeError) Error() string {
	if e.Command == "" {
		return "callback: " + e.Reason
	}
	return e.Command + ": " + e.Reason
}

func (e *DecodeError) Unwrap() error { return e.Err }

// DecodeCallback decodes a callback body. command is the CallbackCommand query
// parameter; when it is empty the body's own CallbackCommand is used. When both
// are present they must agree. Unknown commands decode to *OtherCallback as
// long as the body is a JSON object.
//
// Messages (BeforeSendMsg and AfterSendMsg) are read by a decoder of their
// own that gives the same event as encoding/json, or leaves the body to it
// when the body is unusual in any way (decodeMessage); so are join
// requests, joins and exits (decodeMemberEvent). Every other body, and every
// refusal, comes from encoding/json.
func DecodeCallback(command string, body []byte) (Event, error) {
	body = bytes.TrimSpace(body)
	if len(body) == 0 || body[0] != '{' {
		return nil, &DecodeError{Command: command, Reason: "body is not a JSON object"}
	}
	switch command {
	case CmdBeforeSendMsg, CmdAfterSendMsg:
		if ev, ok := decodeMessage(command, body); ok {
			return ev, nil
		}
	case CmdBeforeApplyJoinGroup, CmdAfterNewMemberJoin, CmdAfterMemberExit:
		if ev, ok := decodeMemberEvent(command, body); ok {
			return ev, nil
		}
	}
	return decodeStd(command, body)
}

// decodeStd decodes a trimmed body that starts with '{' with encoding/json.
func decodeStd(command string, body []byte) (Event, error) {
	if command == "" {
		var peek struct {
			CallbackCommand string `json:"CallbackCommand"`
		}
		if err := json.Unmarshal(body, &peek); err != nil {
			return nil, &DecodeError{Reason: "malformed JSON: " + jsonReason(err), Err: err}
		}
		command = peek.CallbackCommand
		if command == "" {
			return nil, &DecodeError{Reason: "CallbackCommand is missing from both the query and the body"}
		}
	}
	ev := newEvent(command)
	if err := json.Unmarshal(body, ev); err != nil {
		return nil, &DecodeError{Command: command, Reason: "malformed JSON: " + jsonReason(err), Err: err}
	}
	h := ev.Header()
	if h.CallbackCommand != "" && h.CallbackCommand != command {
		return nil, &DecodeError{Command: command, Reason: fmt.Sprintf("body says CallbackCommand %q but the query says %q", h.CallbackCommand, command)}
	}
	h.CallbackCommand = command
	h.Type = NormalizeGroupType(h.Type)
	if err := validate(ev); err != nil {
		return nil, &DecodeError{Command: command, Reason: err.Error()}
	}
	return ev, nil
}

func newEvent(command string) Event {
	switch command {
	case CmdBeforeApplyJoinGroup:
		return new(BeforeApplyJoinGroup)
	case CmdBeforeInviteJoinGroup:
		return new(BeforeInviteJoinGroup)
	case CmdAfterNewMemberJoin:
		return new(AfterNewMemberJoin)
	case CmdAfterMemberExit:
		return new(AfterMemberExit)
	case CmdBeforeSendMsg:
		return new(BeforeSendMsg)
	case CmdAfterSendMsg:
		return new(AfterSendMsg)
	case CmdAfterGroupDestroyed:
		return new(AfterGroupDestroyed)
	case CmdAfterMemberFieldChanged:
		return new(AfterMemberFieldChanged)
	case CmdRequestOverLimit:
		return new(RequestOverLimit)
	}
	return new(OtherCallback)
}

var errNoGroup = errors.New("GroupId is missing")

// validate checks the fields timguard cannot decide without.
func validate(ev Event) error {
	switch e := ev.(type) {
	case *BeforeApplyJoinGroup:
		if e.GroupID == "" {
			return errNoGroup
		}
		if e.Requestor == "" {
			return errors.New("Requestor_Account is missing")
		}
	case *BeforeInviteJoinGroup:
		if e.GroupID == "" {
			return errNoGroup
		}
		if len(e.DestinationMembers) == 0 {
			return errors.New("DestinationMembers is empty")
		}
	case *AfterNewMemberJoin:
		if e.GroupID == "" {
			return errNoGroup
		}
	case *AfterMemberExit:
		if e.GroupID == "" {
			return errNoGroup
		}
	case *BeforeSendMsg:
		return validateMsg(e)
	case *AfterSendMsg:
		return validateMsg(&e.BeforeSendMsg)
	case *AfterGroupDestroyed:
		if e.GroupID == "" {
			return errNoGroup
		}
	}
	return nil
}

func validateMsg(e *BeforeSendMsg) error {
	if e.GroupID == "" {
		return errNoGroup
	}
	if e.From == "" {
		return errors.New("From_Account is missing")
	}
	for i, el := range e.MsgBody {
		if el.MsgType == "" {
			return fmt.Errorf("MsgBody[%d].MsgType is missing", i)
		}
	}
	return nil
}

// jsonReason turns a decoding error into a short reason that names the
// offending field or offset.
func jsonReason(err error) string {
	var typeErr *json.UnmarshalTypeError
	if errors.As(err, &typeErr) {
		field := typeErr.Field
		if field == "" {
			field = "(top level)"
		}
		return fmt.Sprintf("field %s: %s is not a %s", field, typeErr.Value, typeErr.Type)
	}
	var syntaxErr *json.SyntaxError
	if errors.As(err, &syntaxErr) {
		return fmt.Sprintf("%s at offset %d", syntaxErr.Error(), syntaxErr.Offset)
	}
	return err.Error()
}

// Texts returns the text of every TIMTextElem in order.
func Texts(body []MsgElem) []string {
	var out []string
	for _, el := range body {
		if el.MsgType == ElemText {
			out = append(out, el.MsgContent.Text)
		}
	}
	return out
}
