package tim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"
)

// ServiceGroup is the REST service of group commands.
const ServiceGroup = "group_open_http_svc"

// Commands of ServiceGroup.
const (
	CommandForbidSendMsg               = "forbid_send_msg"
	CommandGetGroupMutedAccount        = "get_group_muted_account"
	CommandDeleteGroupMember           = "delete_group_member"
	CommandAddGroupMember              = "add_group_member"
	CommandGetGroupMemberInfo          = "get_group_member_info"
	CommandGetGroupInfo                = "get_group_info"
	CommandModifyGroupBaseInfo         = "modify_group_base_info"
	CommandSendGroupMsg                = "send_group_msg"
	CommandSendGroupSystemNotification = "send_group_system_notification"
	CommandModifyGroupMemberInfo       = "modify_group_member_info"
	CommandBanGroupMember              = "ban_group_member"
	CommandUnbanGroupMember            = "unban_group_member"
)

// ForbidCallbackControl values of send_group_msg.
const (
	ForbidBeforeSendMsgCallback = "ForbidBeforeSendMsgCallback"
	ForbidAfterSendMsgCallback  = "ForbidAfterSendMsgCallback"
)

// Documented per-request limits. MaxAddMembers follows the newest
// documentation (20); older pages allowed more, so the client stays on the
// safe side.
const (
	MaxForbidMembers = 500
	MaxDeleteMembers = 100
	MaxAddMembers    = 20
	MaxBanMembers    = 20
	MaxGroupInfoIDs  = 50
	// MaxNotifyMembers bounds ToMembers_Account of
	// send_group_system_notification ("Up to 500 recipient UserIDs").
	MaxNotifyMembers = 500
	// MaxBanDescriptionBytes bounds ban_group_member's Description ("up to
	// 1,000 bytes in length").
	MaxBanDescriptionBytes = 1000
	// MaxMemberPage bounds get_group_member_info's Limit; a Community
	// group, which pages with Next, takes at most MaxCommunityMemberPage.
	MaxMemberPage          = 6000
	MaxCommunityMemberPage = 100
)

// GroupInfoFields are the base fields GetGroupInfo asks for: all timguard
// reads. Without a ResponseFilter, get_group_info also answers each group's
// member list, which in a large group passes the IM server's 1 MB answer
// limit (10018).
var GroupInfoFields = []string{"Type", "Owner_Account", "ApplyJoinOption", "MuteAllMember"}

// MuteForever is the MuteTime that mutes without expiry. A MuteTime of 0
// unmutes.
const MuteForever uint32 = math.MaxUint32

// Member roles.
const (
	RoleOwner  = "Owner"
	RoleAdmin  = "Admin"
	RoleMember = "Member"
)

// ApplyJoinOption values.
const (
	JoinFreeAccess     = "FreeAccess"
	JoinNeedPermission = "NeedPermission"
	JoinDisableApply   = "DisableApply"
)

// MuteAllMember values.
const (
	MuteAllOn  = "On"
	MuteAllOff = "Off"
)

// Results of one add_group_member entry.
const (
	AddResultFailed        = 0
	AddResultAdded         = 1
	AddResultAlreadyMember = 2
	AddResultAwaiting      = 3
)

func checkGroupID(command, id string) error {
	if id == "" {
		return &RequestError{Command: command, Field: "GroupId", Reason: "is empty"}
	}
	return nil
}

func checkAccounts(command, field string, accounts []string, limit int) error {
	if len(accounts) == 0 {
		return &RequestError{Command: command, Field: field, Reason: "is empty"}
	}
	if limit > 0 && len(accounts) > limit {
		return &RequestError{Command: command, Field: field, Reason: fmt.Sprintf("%d accounts, at most %d per request", len(accounts), limit)}
	}
	for i, a := range accounts {
		if a == "" {
			return &RequestError{Command: command, Field: fmt.Sprintf("%s[%d]", field, i), Reason: "is empty"}
		}
	}
	return nil
}

// ForbidSendMsgRequest mutes (MuteTime > 0) or unmutes (MuteTime 0) members.
type ForbidSendMsgRequest struct {
	GroupID string   `json:"GroupId"`
	Members []string `json:"Members_Account"`
	// MuteTime is in seconds: 0 unmutes, MuteForever mutes without expiry.
	MuteTime uint32 `json:"MuteTime"`
	TopicID  string `json:"TopicId,omitempty"`
}

// ForbidSendMsg mutes or unmutes up to MaxForbidMembers members. It is not
// available in Private (Work) groups.
func (c *Client) ForbidSendMsg(ctx context.Context, req ForbidSendMsgRequest) error {
	if err := checkGroupID(CommandForbidSendMsg, req.GroupID); err != nil {
		return err
	}
	if err := checkAccounts(CommandForbidSendMsg, "Members_Account", req.Members, MaxForbidMembers); err != nil {
		return err
	}
	return c.Call(ctx, ServiceGroup, CommandForbidSendMsg, req, nil)
}

// MutedAccount is one entry of get_group_muted_account.
type MutedAccount struct {
	Account string `json:"Member_Account"`
	// MutedUntil is Unix seconds; 4294967295 means without expiry.
	MutedUntil int64 `json:"MutedUntil"`
}

// Until returns MutedUntil as a time.
func (m MutedAccount) Until() time.Time { return time.Unix(m.MutedUntil, 0) }

// GetGroupMutedAccount lists the muted members of a group (or of a topic
// when topicID is set).
func (c *Client) GetGroupMutedAccount(ctx context.Context, groupID, topicID string) ([]MutedAccount, error) {
	if err := checkGroupID(CommandGetGroupMutedAccount, groupID); err != nil {
		return nil, err
	}
	req := struct {
		GroupID string `json:"GroupId"`
		TopicID string `json:"TopicId,omitempty"`
	}{groupID, topicID}
	var resp struct {
		List []MutedAccount `json:"MutedAccountList"`
	}
	if err := c.Call(ctx, ServiceGroup, CommandGetGroupMutedAccount, req, &resp); err != nil {
		return nil, err
	}
	return resp.List, nil
}

// DeleteGroupMemberRequest removes members. Removing a non-member succeeds.
type DeleteGroupMemberRequest struct {
	GroupID string
	Members []string
	// Silence removes without notifying the group.
	Silence bool
	Reason  string
}

// MarshalJSON encodes Silence as 0 or 1, as the API expects.
func (r DeleteGroupMemberRequest) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		GroupID string   `json:"GroupId"`
		Members []string `json:"MemberToDel_Account"`
		Silence int      `json:"Silence,omitempty"`
		Reason  string   `json:"Reason,omitempty"`
	}{r.GroupID, r.Members, boolInt(r.Silence), r.Reason})
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// DeleteGroupMember removes up to MaxDeleteMembers members. AVChatRoom
// groups do not support it (10004); use BanGroupMember there.
func (c *Client) DeleteGroupMember(ctx context.Context, req DeleteGroupMemberRequest) error {
	if err := checkGroupID(CommandDeleteGroupMember, req.GroupID); err != nil {
		return err
	}
	if err := checkAccounts(CommandDeleteGroupMember, "MemberToDel_Account", req.Members, MaxDeleteMembers); err != nil {
		return err
	}
	return c.Call(ctx, ServiceGroup, CommandDeleteGroupMember, req, nil)
}

// AddGroupMemberRequest adds members.
type AddGroupMemberRequest struct {
	GroupID string
	Members []string
	// Silence adds without notifying the group.
	Silence bool
}

// MarshalJSON encodes the members as MemberList[{Member_Account}] and
// Silence as 0 or 1.
func (r AddGroupMemberRequest) MarshalJSON() ([]byte, error) {
	list := make([]Member, len(r.Members))
	for i, m := range r.Members {
		list[i] = Member{Account: m}
	}
	return json.Marshal(struct {
		GroupID    string   `json:"GroupId"`
		Silence    int      `json:"Silence,omitempty"`
		MemberList []Member `json:"MemberList"`
	}{r.GroupID, boolInt(r.Silence), list})
}

// AddMemberResult is the outcome for one account of add_group_member.
type AddMemberResult struct {
	Account string `json:"Member_Account"`
	// Result is AddResultFailed, AddResultAdded, AddResultAlreadyMember or
	// AddResultAwaiting.
	Result int `json:"Result"`
}

// AddGroupMember adds up to MaxAddMembers members and returns the result for
// each. AVChatRoom groups answer 10007.
func (c *Client) AddGroupMember(ctx context.Context, req AddGroupMemberRequest) ([]AddMemberResult, error) {
	if err := checkGroupID(CommandAddGroupMember, req.GroupID); err != nil {
		return nil, err
	}
	if err := checkAccounts(CommandAddGroupMember, "MemberList", req.Members, MaxAddMembers); err != nil {
		return nil, err
	}
	var resp struct {
		MemberList []AddMemberResult `json:"MemberList"`
	}
	if err := c.Call(ctx, ServiceGroup, CommandAddGroupMember, req, &resp); err != nil {
		return nil, err
	}
	return resp.MemberList, nil
}

// GetGroupMemberInfoRequest pages through a group's members. Community
// groups page with Next; the others with Limit and Offset. AVChatRoom
// (live) groups store no members: the command is not available there.
//
// Source: get_group_member_info,
// https://intl.cloud.tencent.com/document/product/1047/34948: "AVChatRoom:
// No"; "Community: Yes. Getting group member profiles by using the Next field";
// Next "is required for a community group ... For the first call, "" must
// be passed in"; "A community group does not support the Offset field".
type GetGroupMemberInfoRequest struct {
	GroupID string
	// Community says the group is a Community group: Next is sent even when
	// empty (the first page), and Offset is not sent.
	Community bool
	// Limit is the page size; 0 asks for every member (at most
	// MaxCommunityMemberPage in a Community group).
	Limit  int
	Offset int
	// Next continues a Community group's listing: "" for the first page,
	// then the Next of the previous answer.
	Next string
	// RoleFilter keeps only these roles (RoleOwner, RoleAdmin, RoleMember).
	RoleFilter []string
	// InfoFilter names the member fields to return; empty returns all.
	InfoFilter []string
}

// MarshalJSON writes Next (even empty) for a Community group and Offset
// for the others.
func (r GetGroupMemberInfoRequest) MarshalJSON() ([]byte, error) {
	type filters struct {
		RoleFilter []string `json:"MemberRoleFilter,omitempty"`
		InfoFilter []string `json:"MemberInfoFilter,omitempty"`
	}
	if r.Community {
		return json.Marshal(struct {
			GroupID string `json:"GroupId"`
			Limit   int    `json:"Limit,omitempty"`
			Next    string `json:"Next"`
			filters
		}{r.GroupID, r.Limit, r.Next, filters{r.RoleFilter, r.InfoFilter}})
	}
	return json.Marshal(struct {
		GroupID string `json:"GroupId"`
		Limit   int    `json:"Limit,omitempty"`
		Offset  int    `json:"Offset,omitempty"`
		filters
	}{r.GroupID, r.Limit, r.Offset, filters{r.RoleFilter, r.InfoFilter}})
}

// MemberInfo is one member of get_group_member_info.
type MemberInfo struct {
	Account         string `json:"Member_Account"`
	Role            string `json:"Role"`
	JoinTime        int64  `json:"JoinTime"`
	MsgSeq          uint64 `json:"MsgSeq,omitempty"`
	MsgFlag         string `json:"MsgFlag,omitempty"`
	LastSendMsgTime int64  `json:"LastSendMsgTime"`
	// MuteUntil is Unix seconds; 0 when the member is not muted.
	MuteUntil int64  `json:"MuteUntil"`
	NameCard  string `json:"NameCard,omitempty"`
}

// UnmarshalJSON also reads ShutUpUntil, the field's name in older answers.
func (m *MemberInfo) UnmarshalJSON(b []byte) error {
	type plain MemberInfo
	var v struct {
		plain
		MuteUntil   *int64 `json:"MuteUntil"`
		ShutUpUntil *int64 `json:"ShutUpUntil"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*m = MemberInfo(v.plain)
	switch {
	case v.MuteUntil != nil:
		m.MuteUntil = *v.MuteUntil
	case v.ShutUpUntil != nil:
		m.MuteUntil = *v.ShutUpUntil
	}
	return nil
}

// GroupMembers is a page of get_group_member_info.
type GroupMembers struct {
	// MemberNum is the group's member count, not the page's.
	MemberNum int          `json:"MemberNum"`
	Members   []MemberInfo `json:"MemberList"`
	// Next continues a Community group's listing; empty at the end.
	Next string `json:"Next,omitempty"`
}

// GetGroupMemberInfo returns one page of members.
func (c *Client) GetGroupMemberInfo(ctx context.Context, req GetGroupMemberInfoRequest) (GroupMembers, error) {
	if err := checkGroupID(CommandGetGroupMemberInfo, req.GroupID); err != nil {
		return GroupMembers{}, err
	}
	for i, r := range req.RoleFilter {
		if r != RoleOwner && r != RoleAdmin && r != RoleMember {
			return GroupMembers{}, &RequestError{Command: CommandGetGroupMemberInfo, Field: fmt.Sprintf("MemberRoleFilter[%d]", i), Reason: fmt.Sprintf("%q is not Owner, Admin or Member", r)}
		}
	}
	switch {
	case req.Limit < 0 || req.Offset < 0:
		return GroupMembers{}, &RequestError{Command: CommandGetGroupMemberInfo, Field: "Limit/Offset", Reason: "is negative"}
	case req.Limit > MaxMemberPage:
		return GroupMembers{}, &RequestError{Command: CommandGetGroupMemberInfo, Field: "Limit", Reason: fmt.Sprintf("%d is above %d", req.Limit, MaxMemberPage)}
	case req.Community && req.Offset > 0:
		return GroupMembers{}, &RequestError{Command: CommandGetGroupMemberInfo, Field: "Offset", Reason: "Community groups page with Next, not Offset"}
	case req.Community && req.Limit > MaxCommunityMemberPage:
		return GroupMembers{}, &RequestError{Command: CommandGetGroupMemberInfo, Field: "Limit", Reason: fmt.Sprintf("%d is above %d, the most a Community group pages", req.Limit, MaxCommunityMemberPage)}
	case !req.Community && req.Next != "":
		return GroupMembers{}, &RequestError{Command: CommandGetGroupMemberInfo, Field: "Next", Reason: "only Community groups page with Next"}
	}
	var resp GroupMembers
	if err := c.Call(ctx, ServiceGroup, CommandGetGroupMemberInfo, req, &resp); err != nil {
		return GroupMembers{}, err
	}
	return resp, nil
}

// GroupInfo is one group of get_group_info. ErrorCode is the result for this
// group alone; see Err. GetGroupInfo asks only for GroupInfoFields; the
// other fields stay empty unless a caller asks for them through Call.
type GroupInfo struct {
	GroupID         string `json:"GroupId"`
	ErrorCode       int    `json:"ErrorCode"`
	ErrorInfo       string `json:"ErrorInfo"`
	Type            string `json:"Type"`
	Name            string `json:"Name"`
	Introduction    string `json:"Introduction,omitempty"`
	Notification    string `json:"Notification,omitempty"`
	FaceURL         string `json:"FaceUrl,omitempty"`
	Owner           string `json:"Owner_Account"`
	CreateTime      int64  `json:"CreateTime"`
	LastInfoTime    int64  `json:"LastInfoTime,omitempty"`
	LastMsgTime     int64  `json:"LastMsgTime,omitempty"`
	NextMsgSeq      uint64 `json:"NextMsgSeq,omitempty"`
	MemberNum       int    `json:"MemberNum"`
	MaxMemberNum    int    `json:"MaxMemberNum"`
	ApplyJoinOption string `json:"ApplyJoinOption"`
	MuteAllMember   string `json:"MuteAllMember"`
}

// Err returns the group's own error as an *APIError, or nil.
func (g GroupInfo) Err() error {
	if g.ErrorCode == 0 {
		return nil
	}
	return &APIError{Service: ServiceGroup, Command: CommandGetGroupInfo, Code: g.ErrorCode, Info: g.ErrorInfo, HTTPStatus: 200}
}

// GetGroupInfo returns the type, owner, join option and group-wide mute
// (GroupInfoFields) of up to MaxGroupInfoIDs groups, in the order the server
// answers. A group that does not exist is an entry whose Err is not nil, not
// a failure of the call. It works in every group type; in an AVChatRoom
// group it is where the owner comes from.
//
// Source: get_group_info,
// https://intl.cloud.tencent.com/document/product/1047/34961: the basic
// request returns "all the basic group information, group member
// information, and custom information"; "If filters are set, only the
// fields specified by filters are pulled"; 10018: "The response packet
// length exceeds the maximum packet length of 1 MB".
func (c *Client) GetGroupInfo(ctx context.Context, groupIDs []string) ([]GroupInfo, error) {
	if err := checkAccounts(CommandGetGroupInfo, "GroupIdList", groupIDs, MaxGroupInfoIDs); err != nil {
		return nil, err
	}
	type responseFilter struct {
		Base []string `json:"GroupBaseInfoFilter"`
	}
	req := struct {
		IDs    []string       `json:"GroupIdList"`
		Filter responseFilter `json:"ResponseFilter"`
	}{groupIDs, responseFilter{GroupInfoFields}}
	var resp struct {
		Groups []GroupInfo `json:"GroupInfo"`
	}
	if err := c.Call(ctx, ServiceGroup, CommandGetGroupInfo, req, &resp); err != nil {
		// The documentation calls the top-level code meaningless when the
		// answer lists groups: each entry carries its own.
		var apiErr *APIError
		if errors.As(err, &apiErr) && apiErr.HTTPStatus == 200 && len(resp.Groups) > 0 {
			return resp.Groups, nil
		}
		return nil, err
	}
	return resp.Groups, nil
}

// ModifyGroupBaseInfoRequest changes a group's base info. Nil and empty
// fields are left unchanged.
type ModifyGroupBaseInfoRequest struct {
	GroupID      string  `json:"GroupId"`
	Name         *string `json:"Name,omitempty"`
	Introduction *string `json:"Introduction,omitempty"`
	Notification *string `json:"Notification,omitempty"`
	FaceURL      *string `json:"FaceUrl,omitempty"`
	// ApplyJoinOption is JoinFreeAccess, JoinNeedPermission or
	// JoinDisableApply.
	ApplyJoinOption string `json:"ApplyJoinOption,omitempty"`
	// MuteAllMember is MuteAllOn or MuteAllOff. A group-wide mute has no
	// expiry of its own.
	MuteAllMember string `json:"MuteAllMember,omitempty"`
}

// ModifyGroupBaseInfo changes a group's base info.
func (c *Client) ModifyGroupBaseInfo(ctx context.Context, req ModifyGroupBaseInfoRequest) error {
	const cmd = CommandModifyGroupBaseInfo
	if err := checkGroupID(cmd, req.GroupID); err != nil {
		return err
	}
	switch req.MuteAllMember {
	case "", MuteAllOn, MuteAllOff:
	default:
		return &RequestError{Command: cmd, Field: "MuteAllMember", Reason: fmt.Sprintf("%q is not On or Off", req.MuteAllMember)}
	}
	switch req.ApplyJoinOption {
	case "", JoinFreeAccess, JoinNeedPermission, JoinDisableApply:
	default:
		return &RequestError{Command: cmd, Field: "ApplyJoinOption", Reason: fmt.Sprintf("%q is not FreeAccess, NeedPermission or DisableApply", req.ApplyJoinOption)}
	}
	if req.Name == nil && req.Introduction == nil && req.Notification == nil && req.FaceURL == nil &&
		req.ApplyJoinOption == "" && req.MuteAllMember == "" {
		return &RequestError{Command: cmd, Field: "Name/Introduction/Notification/FaceUrl/ApplyJoinOption/MuteAllMember", Reason: "nothing to change"}
	}
	return c.Call(ctx, ServiceGroup, cmd, req, nil)
}

// SendGroupMsgRequest sends a message to a group.
type SendGroupMsgRequest struct {
	GroupID string `json:"GroupId"`
	// From sends as this member; empty sends as the App admin.
	From string `json:"From_Account,omitempty"`
	// Random deduplicates: the server drops a message with the same content
	// and Random within 5 minutes. Derive it from the action's identity so
	// that a retried send is not delivered twice. Zero picks a random one.
	Random  uint32    `json:"Random"`
	MsgBody []MsgElem `json:"MsgBody"`
	// ForbidCallbackControl stops callbacks for this message. When nil the
	// client sets ForbidBeforeSendMsgCallback and ForbidAfterSendMsgCallback
	// so that the bot's own messages do not come back to it; a non-nil
	// empty slice allows every callback.
	ForbidCallbackControl []string `json:"ForbidCallbackControl,omitempty"`
	// GroupAtInfo lists the members the text @-mentions, in the order of
	// the mentions in the text. AVChatRoom groups do not support @all.
	GroupAtInfo     []GroupAt `json:"GroupAtInfo,omitempty"`
	OnlineOnlyFlag  int       `json:"OnlineOnlyFlag,omitempty"`
	CloudCustomData string    `json:"CloudCustomData,omitempty"`
	TopicID         string    `json:"TopicId,omitempty"`
}

// SendGroupMsgResult is the answer of send_group_msg.
type SendGroupMsgResult struct {
	MsgSeq  uint64 `json:"MsgSeq"`
	MsgTime int64  `json:"MsgTime"`
}

// SendGroupMsg sends a message to a group. It is the one way to address a
// member of an AVChatRoom group, where notices go to all members only. A
// message sent again with the same Random and content within 5 minutes is
// dropped by the server as a repeat, which makes a retry safe.
//
// Source: send_group_msg,
// https://intl.cloud.tencent.com/document/product/1047/34959: "AVChatRoom:
// Yes"; Random: "If the content and random numbers of two messages within
// five minutes are the same, the later message will be discarded as a
// repeated message"; "Audio-video groups (AVChatroom) don't support the
// @all feature"; To_Account is not available in AVChatRoom groups.
func (c *Client) SendGroupMsg(ctx context.Context, req SendGroupMsgRequest) (SendGroupMsgResult, error) {
	const cmd = CommandSendGroupMsg
	if err := checkGroupID(cmd, req.GroupID); err != nil {
		return SendGroupMsgResult{}, err
	}
	if len(req.MsgBody) == 0 {
		return SendGroupMsgResult{}, &RequestError{Command: cmd, Field: "MsgBody", Reason: "is empty"}
	}
	for i, el := range req.MsgBody {
		if el.MsgType == "" {
			return SendGroupMsgResult{}, &RequestError{Command: cmd, Field: fmt.Sprintf("MsgBody[%d].MsgType", i), Reason: "is empty"}
		}
	}
	for i, at := range req.GroupAtInfo {
		if at.AtAllFlag == 0 && at.Account == "" {
			return SendGroupMsgResult{}, &RequestError{Command: cmd, Field: fmt.Sprintf("GroupAtInfo[%d].GroupAt_Account", i), Reason: "is empty"}
		}
	}
	if req.ForbidCallbackControl == nil {
		req.ForbidCallbackControl = []string{ForbidBeforeSendMsgCallback, ForbidAfterSendMsgCallback}
	}
	if req.Random == 0 {
		req.Random = c.rand()
	}
	var resp SendGroupMsgResult
	if err := c.Call(ctx, ServiceGroup, cmd, req, &resp); err != nil {
		return SendGroupMsgResult{}, err
	}
	return resp, nil
}

// SendGroupSystemNotification sends a system notice to the members in to
// (at most MaxNotifyMembers), or to every member when to is empty. An
// AVChatRoom group takes notices to all members only. The command has no
// Random: the server cannot recognise a notice sent twice.
//
// Source: send_group_system_notification,
// https://intl.cloud.tencent.com/document/product/1047/34958: "AVChatRoom:
// Yes. But only to all group members"; ToMembers_Account: "Up to 500
// recipient UserIDs are supported".
func (c *Client) SendGroupSystemNotification(ctx context.Context, groupID string, to []string, content string) error {
	const cmd = CommandSendGroupSystemNotification
	if err := checkGroupID(cmd, groupID); err != nil {
		return err
	}
	if content == "" {
		return &RequestError{Command: cmd, Field: "Content", Reason: "is empty"}
	}
	if len(to) > 0 {
		if err := checkAccounts(cmd, "ToMembers_Account", to, MaxNotifyMembers); err != nil {
			return err
		}
	}
	req := struct {
		GroupID string   `json:"GroupId"`
		To      []string `json:"ToMembers_Account,omitempty"`
		Content string   `json:"Content"`
	}{groupID, to, content}
	return c.Call(ctx, ServiceGroup, cmd, req, nil)
}

// ModifyGroupMemberInfoRequest changes one member. Nil and empty fields are
// left unchanged.
type ModifyGroupMemberInfoRequest struct {
	GroupID string `json:"GroupId"`
	Member  string `json:"Member_Account"`
	// Role is RoleAdmin or RoleMember.
	Role string `json:"Role,omitempty"`
	// MuteTime is in seconds: 0 unmutes, MuteForever mutes without expiry.
	MuteTime *uint32 `json:"MuteTime,omitempty"`
	NameCard *string `json:"NameCard,omitempty"`
}

// ModifyGroupMemberInfo changes one member's role, mute or name card.
func (c *Client) ModifyGroupMemberInfo(ctx context.Context, req ModifyGroupMemberInfoRequest) error {
	const cmd = CommandModifyGroupMemberInfo
	if err := checkGroupID(cmd, req.GroupID); err != nil {
		return err
	}
	if req.Member == "" {
		return &RequestError{Command: cmd, Field: "Member_Account", Reason: "is empty"}
	}
	if req.Role != "" && req.Role != RoleAdmin && req.Role != RoleMember {
		return &RequestError{Command: cmd, Field: "Role", Reason: fmt.Sprintf("%q is not Admin or Member", req.Role)}
	}
	if req.Role == "" && req.MuteTime == nil && req.NameCard == nil {
		return &RequestError{Command: cmd, Field: "Role/MuteTime/NameCard", Reason: "nothing to change"}
	}
	return c.Call(ctx, ServiceGroup, cmd, req, nil)
}

// BanGroupMember bans up to MaxBanMembers members of an AVChatRoom group for
// seconds (at least 1); they are removed and cannot rejoin until the ban
// ends. description is at most MaxBanDescriptionBytes. The command needs the
// Ultimate edition and "Audio-video group member banning" switched on in the
// IM console; without them the server answers 10007.
//
// Source: ban_group_member,
// https://intl.cloud.tencent.com/document/product/1047/50296: AVChatRoom
// only; "you need to purchase the Ultimate edition, go to the console,
// choose Group configuration > Group feature configuration, and enable
// Audio-video group member banning"; 10007 "the switch is not enabled in
// the console"; Description "can be up to 1,000 bytes in length".
func (c *Client) BanGroupMember(ctx context.Context, groupID string, members []string, seconds uint32, description string) error {
	const cmd = CommandBanGroupMember
	if err := checkGroupID(cmd, groupID); err != nil {
		return err
	}
	if err := checkAccounts(cmd, "Members_Account", members, MaxBanMembers); err != nil {
		return err
	}
	if seconds == 0 {
		return &RequestError{Command: cmd, Field: "Duration", Reason: "is 0; use UnbanGroupMember to lift a ban"}
	}
	if len(description) > MaxBanDescriptionBytes {
		return &RequestError{Command: cmd, Field: "Description", Reason: fmt.Sprintf("%d bytes, at most %d", len(description), MaxBanDescriptionBytes)}
	}
	req := struct {
		GroupID     string   `json:"GroupId"`
		Members     []string `json:"Members_Account"`
		Duration    uint32   `json:"Duration"`
		Description string   `json:"Description,omitempty"`
	}{groupID, members, seconds, description}
	return c.Call(ctx, ServiceGroup, cmd, req, nil)
}

// UnbanGroupMember lifts the ban of up to MaxBanMembers members of an
// AVChatRoom group.
func (c *Client) UnbanGroupMember(ctx context.Context, groupID string, members []string) error {
	const cmd = CommandUnbanGroupMember
	if err := checkGroupID(cmd, groupID); err != nil {
		return err
	}
	if err := checkAccounts(cmd, "Members_Account", members, MaxBanMembers); err != nil {
		return err
	}
	req := struct {
		GroupID string   `json:"GroupId"`
		Members []string `json:"Members_Account"`
	}{groupID, members}
	return c.Call(ctx, ServiceGroup, cmd, req, nil)
}
