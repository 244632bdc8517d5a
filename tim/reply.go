package tim

import "encoding/json"

// Reply codes of "before" callbacks (tencent-im.md, section 1).
const (
	// CodeAllow lets the action continue.
	CodeAllow = 0
	// CodeRefuse refuses; the sender or applicant sees 10016.
	CodeRefuse = 1
	// CodeDrop drops a message silently; the sender sees success.
	CodeDrop = 2
	// CustomCodeMin and CustomCodeMax bound the codes that refuse and show
	// the reply's ErrorCode and ErrorInfo to the user.
	CustomCodeMin = 10100
	CustomCodeMax = 10200
)

// IsCustomCode reports whether code refuses with a message shown to the user.
func IsCustomCode(code int) bool { return code >= CustomCodeMin && code <= CustomCodeMax }

// Reply is the envelope timguard answers every callback with.
type Reply struct {
	ActionStatus string `json:"ActionStatus"`
	ErrorInfo    string `json:"ErrorInfo"`
	ErrorCode    int    `json:"ErrorCode"`
	// RefusedMembers refuses just these invitees of a
	// BeforeInviteJoinGroup answered with code 0.
	RefusedMembers []string `json:"RefusedMembers_Account,omitempty"`
	// MsgBody replaces the message of a BeforeSendMsg answered with code 0.
	MsgBody []MsgElem `json:"MsgBody,omitempty"`
	// CloudCustomData replaces the message's custom data when set.
	CloudCustomData *string `json:"CloudCustomData,omitempty"`
}

// OK is the reply that lets everything through.
func OK() Reply { return Reply{ActionStatus: "OK"} }

// okBody is OK() encoded once; most callbacks are answered with it.
var okBody = []byte(`{"ActionStatus":"OK","ErrorInfo":"","ErrorCode":0}`)

// IsPlainOK reports whether r encodes as the plain OK envelope.
func (r *Reply) IsPlainOK() bool {
	return r.ActionStatus == "OK" && r.ErrorInfo == "" && r.ErrorCode == 0 &&
		len(r.RefusedMembers) == 0 && len(r.MsgBody) == 0 && r.CloudCustomData == nil
}

// Encode returns the reply as JSON. The plain OK envelope is not re-encoded:
// the slice returned for it is shared and must not be modified.
func (r *Reply) Encode() ([]byte, error) {
	if r.IsPlainOK() {
		return okBody, nil
	}
	if r.ActionStatus == "" {
		r.ActionStatus = "OK"
	}
	return json.Marshal(r)
}
