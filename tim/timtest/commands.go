package timtest

import (
	"bytes"
	"encoding/json"
	"maps"
	"math"
	"slices"
	"strconv"
	"time"

	"github.com/timguard/timguard/tim"
)

// execFunc carries out one command; it runs with groups.mu held.
type execFunc func(gs *groups, f fields, now time.Time) (map[string]any, *apiError)

func commandFunc(command string) (execFunc, bool) {
	switch command {
	case tim.CommandForbidSendMsg:
		return forbidSendMsg, true
	case tim.CommandGetGroupMutedAccount:
		return getGroupMutedAccount, true
	case tim.CommandDeleteGroupMember:
		return deleteGroupMember, true
	case tim.CommandAddGroupMember:
		return addGroupMember, true
	case tim.CommandGetGroupMemberInfo:
		return getGroupMemberInfo, true
	case tim.CommandGetGroupInfo:
		return getGroupInfo, true
	case tim.CommandModifyGroupBaseInfo:
		return modifyGroupBaseInfo, true
	case tim.CommandSendGroupMsg:
		return sendGroupMsg, true
	case tim.CommandSendGroupSystemNotification:
		return sendGroupSystemNotification, true
	case tim.CommandModifyGroupMemberInfo:
		return modifyGroupMemberInfo, true
	case tim.CommandBanGroupMember:
		return banGroupMember, true
	case tim.CommandUnbanGroupMember:
		return unbanGroupMember, true
	}
	return nil, false
}

// validGroupID accepts what a group id may look like: 1 to 48 printable
// ASCII characters without spaces.
func validGroupID(id string) bool {
	if id == "" || len(id) > 48 {
		return false
	}
	for i := 0; i < len(id); i++ {
		if id[i] <= ' ' || id[i] > '~' {
			return false
		}
	}
	return true
}

// find returns the group: 10015 for an id that is malformed or was never
// created, 10010 for a group that was dismissed.
func (gs *groups) find(id string) (*group, *apiError) {
	if !validGroupID(id) {
		return nil, &apiError{tim.CodeBadGroupID, "group id " + strconv.Quote(id) + " is invalid"}
	}
	if g, ok := gs.byID[id]; ok {
		return g, nil
	}
	if gs.dismissed[id] {
		return nil, &apiError{tim.CodeGroupNotFound, "group " + id + " does not exist or was dismissed"}
	}
	return nil, &apiError{tim.CodeBadGroupID, "no group with id " + id}
}

// group finds the group id names, as find does; handlers call it after
// their field reads, so that a bad field is reported before a missing group.
func (r *reader) group(gs *groups, id string) *group {
	if r.err != nil {
		return nil
	}
	g, err := gs.find(id)
	r.err = err
	return g
}

func notSupported(g *group, what string) *apiError {
	return &apiError{tim.CodeNoPermission, what + " is not supported in " + g.typ + " groups"}
}

func muteUntil(seconds uint64, now time.Time) int64 {
	if seconds == uint64(tim.MuteForever) {
		return foreverUnix
	}
	return now.Unix() + int64(seconds)
}

// forbidSendMsg follows https://intl.cloud.tencent.com/document/product/1047/34951:
// "Private groups (i.e., work groups in the new version) do not support
// muting members"; AVChatRoom and Community groups do; at most 500 accounts.
func forbidSendMsg(gs *groups, f fields, now time.Time) (map[string]any, *apiError) {
	r := f.reader()
	id := r.str("GroupId", true)
	accounts := r.strs("Members_Account", true, tim.MaxForbidMembers)
	secs, _ := r.uint("MuteTime", true, math.MaxUint32)
	topic := r.str("TopicId", false)
	g := r.group(gs, id)
	if r.err != nil {
		return nil, r.err
	}
	if g.typ == tim.GroupPrivate {
		return nil, notSupported(g, "muting")
	}
	if topic != "" && g.typ != tim.GroupCommunity {
		return nil, badParam("TopicId is only valid in Community groups")
	}
	for _, acc := range accounts {
		k := muteKey{topic: topic, account: acc}
		if secs == 0 {
			delete(g.muted, k)
			continue
		}
		g.muted[k] = muteUntil(secs, now)
	}
	return nil, nil
}

func getGroupMutedAccount(gs *groups, f fields, now time.Time) (map[string]any, *apiError) {
	r := f.reader()
	id := r.str("GroupId", true)
	topic := r.str("TopicId", false)
	g := r.group(gs, id)
	if r.err != nil {
		return nil, r.err
	}
	type entry struct {
		Account    string `json:"Member_Account"`
		MutedUntil int64  `json:"MutedUntil"`
	}
	list := []entry{}
	for k, until := range g.muted {
		if k.topic == topic && activeUntil(until, now.Unix()) {
			list = append(list, entry{k.account, until})
		}
	}
	slices.SortFunc(list, func(a, b entry) int { return cmpString(a.Account, b.Account) })
	return map[string]any{"GroupId": g.id, "MutedAccountList": list}, nil
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// deleteGroupMember follows https://intl.cloud.tencent.com/document/product/1047/34949:
// "If you attempt to delete members of an audio-video group, error 10004
// will be returned."
func deleteGroupMember(gs *groups, f fields, _ time.Time) (map[string]any, *apiError) {
	r := f.reader()
	id := r.str("GroupId", true)
	accounts := r.strs("MemberToDel_Account", true, tim.MaxDeleteMembers)
	r.flag("Silence")
	r.str("Reason", false)
	g := r.group(gs, id)
	if r.err != nil {
		return nil, r.err
	}
	if g.typ == tim.GroupAVChatRoom {
		return nil, badParam("delete_group_member is not supported in AVChatRoom groups; use ban_group_member")
	}
	for _, acc := range accounts {
		if g.owner != "" && acc == g.owner {
			return nil, badParam("the owner %s cannot be removed", acc)
		}
	}
	for _, acc := range accounts {
		delete(g.members, acc)
	}
	return nil, nil
}

func addGroupMember(gs *groups, f fields, now time.Time) (map[string]any, *apiError) {
	r := f.reader()
	id := r.str("GroupId", true)
	accounts := r.members("MemberList", true, tim.MaxAddMembers)
	r.flag("Silence")
	g := r.group(gs, id)
	if r.err != nil {
		return nil, r.err
	}
	if g.typ == tim.GroupAVChatRoom {
		return nil, notSupported(g, "add_group_member")
	}
	fresh := map[string]bool{}
	for _, acc := range accounts {
		if _, ok := g.members[acc]; !ok {
			fresh[acc] = true
		}
	}
	if g.maxMembers > 0 && len(g.members)+len(fresh) > g.maxMembers {
		return nil, &apiError{tim.CodeGroupFull, "the group is full"}
	}
	type result struct {
		Account string `json:"Member_Account"`
		Result  int    `json:"Result"`
	}
	results := make([]result, 0, len(accounts))
	for _, acc := range accounts {
		if _, ok := g.members[acc]; ok {
			results = append(results, result{acc, tim.AddResultAlreadyMember})
			continue
		}
		g.members[acc] = &member{role: tim.RoleMember, joined: now.Unix()}
		results = append(results, result{acc, tim.AddResultAdded})
	}
	return map[string]any{"MemberList": results}, nil
}

func roleRank(role string) int {
	switch role {
	case tim.RoleOwner:
		return 0
	case tim.RoleAdmin:
		return 1
	}
	return 2
}

// maxCommunityPage is the largest Limit of get_group_member_info in a
// Community group ("Limit ... Maximum value: 100" for pulling with Next).
const maxCommunityPage = 100

// getGroupMemberInfo follows
// https://intl.cloud.tencent.com/document/product/1047/34948: not available
// in AVChatRoom groups; Community groups page with Next, which is required
// ("For the first call, "" must be passed in") and replaces Offset ("A
// community group does not support the Offset field").
func getGroupMemberInfo(gs *groups, f fields, now time.Time) (map[string]any, *apiError) {
	r := f.reader()
	id := r.str("GroupId", true)
	limit, hasLimit := r.uint("Limit", false, 6000)
	offset, hasOffset := r.uint("Offset", false, math.MaxInt32)
	_, hasNext := f["Next"]
	next := r.str("Next", false)
	roles := r.strs("MemberRoleFilter", false, 0)
	for _, role := range roles {
		if role != tim.RoleOwner && role != tim.RoleAdmin && role != tim.RoleMember {
			r.fail(badParam("MemberRoleFilter value %q is not Owner, Admin or Member", role))
			break
		}
	}
	infoFilter := r.strs("MemberInfoFilter", false, 0)
	for _, name := range infoFilter {
		if !slices.Contains(memberInfoFields, name) {
			r.fail(badParam("MemberInfoFilter value %q is not a member field", name))
			break
		}
	}
	g := r.group(gs, id)
	if r.err != nil {
		return nil, r.err
	}
	switch {
	case g.typ == tim.GroupAVChatRoom:
		return nil, &apiError{tim.CodeNoPermission, "get_group_member_info is not supported in AVChatRoom groups: they store no member information"}
	case g.typ == tim.GroupCommunity && !hasNext:
		return nil, badParam("Next is required in Community groups; send \"\" for the first page")
	case g.typ == tim.GroupCommunity && hasOffset && offset > 0:
		return nil, badParam("Community groups page with Next, not Offset")
	case g.typ == tim.GroupCommunity && limit > maxCommunityPage:
		return nil, badParam("Limit %d is above %d, the most a Community group answers at once", limit, maxCommunityPage)
	case g.typ != tim.GroupCommunity && hasNext:
		return nil, badParam("Next is only for Community groups; page with Limit and Offset")
	}
	if g.typ == tim.GroupCommunity {
		offset = 0
		if next != "" {
			n, perr := strconv.ParseUint(next, 10, 32)
			if perr != nil {
				return nil, badParam("Next %q is not a value this server returned", next)
			}
			offset = n
		}
		if !hasLimit || limit == 0 {
			hasLimit, limit = true, maxCommunityPage
		}
	}
	accounts := make([]string, 0, len(g.members))
	for acc, m := range g.members {
		if len(roles) == 0 || slices.Contains(roles, m.role) {
			accounts = append(accounts, acc)
		}
	}
	slices.SortFunc(accounts, func(a, b string) int {
		ma, mb := g.members[a], g.members[b]
		if d := roleRank(ma.role) - roleRank(mb.role); d != 0 {
			return d
		}
		if ma.joined != mb.joined {
			if ma.joined < mb.joined {
				return -1
			}
			return 1
		}
		return cmpString(a, b)
	})
	start := min(int(offset), len(accounts))
	end := len(accounts)
	if hasLimit && limit > 0 {
		end = min(start+int(limit), len(accounts))
	}
	list := make([]map[string]any, 0, end-start)
	for _, acc := range accounts[start:end] {
		list = append(list, g.memberEntry(acc, infoFilter, now))
	}
	resp := map[string]any{"MemberNum": len(g.members), "MemberList": list}
	if g.typ == tim.GroupCommunity {
		resp["Next"] = ""
		if end < len(accounts) {
			resp["Next"] = strconv.Itoa(end)
		}
	}
	return resp, nil
}

// memberInfoFields are the member fields MemberInfoFilter may name
// (group member profile, https://intl.cloud.tencent.com/document/product/1047/33529).
var memberInfoFields = []string{"Member_Account", "Role", "JoinTime", "MsgSeq", "MsgFlag", "LastSendMsgTime", "MuteUntil", "ShutUpUntil", "NameCard"}

// baseInfoFields are the base fields GroupBaseInfoFilter may name (group
// basic information, https://intl.cloud.tencent.com/document/product/1047/33529,
// and MuteAllMember, which get_group_info answers beside them).
var baseInfoFields = []string{"Type", "Name", "Introduction", "Notification", "FaceUrl", "Owner_Account", "CreateTime",
	"InfoSeq", "LastInfoTime", "LastMsgTime", "NextMsgSeq", "MemberNum", "MaxMemberNum", "ApplyJoinOption", "MuteAllMember"}

// memberEntry is one member as get_group_member_info and get_group_info
// answer it: every field, or Member_Account and the fields named.
func (g *group) memberEntry(acc string, filter []string, now time.Time) map[string]any {
	m := g.members[acc]
	var mutedUntil int64
	if until, ok := g.muted[muteKey{account: acc}]; ok && activeUntil(until, now.Unix()) {
		mutedUntil = until
	}
	all := map[string]any{
		"Member_Account":  acc,
		"Role":            m.role,
		"JoinTime":        m.joined,
		"MsgSeq":          0,
		"MsgFlag":         "AcceptAndNotify",
		"LastSendMsgTime": m.lastSent,
		"MuteUntil":       mutedUntil,
		"NameCard":        m.nameCard,
	}
	if len(filter) == 0 {
		return all
	}
	out := map[string]any{"Member_Account": acc}
	for _, name := range filter {
		switch name {
		case "ShutUpUntil":
			out[name] = mutedUntil
		case "Account":
		default:
			if v, ok := all[name]; ok {
				out[name] = v
			}
		}
	}
	return out
}

// getGroupInfo follows https://intl.cloud.tencent.com/document/product/1047/34961:
// without a ResponseFilter it answers "all the basic group information,
// group member information, and custom information"; "If filters are set,
// only the fields specified by filters are pulled". An answer over 1 MB is
// refused with 10018 (encodeOK). AVChatRoom groups store no member list.
func getGroupInfo(gs *groups, f fields, now time.Time) (map[string]any, *apiError) {
	r := f.reader()
	ids := r.strs("GroupIdList", true, tim.MaxGroupInfoIDs)
	filtered := f.has("ResponseFilter")
	var baseFilter, memberFilter []string
	if filtered {
		var rf fields
		if json.Unmarshal(f["ResponseFilter"], &rf) != nil {
			r.fail(wrongType("ResponseFilter", "an object"))
		} else {
			fr := rf.reader()
			baseFilter = fr.strs("GroupBaseInfoFilter", false, 0)
			memberFilter = fr.strs("MemberInfoFilter", false, 0)
			fr.strs("AppDefinedDataFilter_Group", false, 0)
			fr.strs("AppDefinedDataFilter_GroupMember", false, 0)
			r.fail(fr.err)
		}
		for _, name := range baseFilter {
			if !slices.Contains(baseInfoFields, name) {
				r.fail(badParam("GroupBaseInfoFilter value %q is not a base info field", name))
				break
			}
		}
		for _, name := range memberFilter {
			if name != "Account" && !slices.Contains(memberInfoFields, name) {
				r.fail(badParam("MemberInfoFilter value %q is not a member field", name))
				break
			}
		}
	}
	if r.err != nil {
		return nil, r.err
	}
	infos := make([]map[string]any, 0, len(ids))
	for _, id := range ids {
		g, ferr := gs.find(id)
		if ferr != nil {
			infos = append(infos, map[string]any{"GroupId": id, "ErrorCode": ferr.code, "ErrorInfo": ferr.info})
			continue
		}
		muteAll := tim.MuteAllOff
		if g.muteAll {
			muteAll = tim.MuteAllOn
		}
		base := map[string]any{
			"Type":            g.typ,
			"Name":            g.name,
			"Introduction":    g.intro,
			"Notification":    g.notice,
			"FaceUrl":         g.faceURL,
			"Owner_Account":   g.owner,
			"CreateTime":      g.created,
			"InfoSeq":         g.infoTime,
			"LastInfoTime":    g.infoTime,
			"LastMsgTime":     g.lastMsgTime,
			"NextMsgSeq":      g.nextMsgSeq + 1,
			"MemberNum":       len(g.members),
			"MaxMemberNum":    g.maxMembers,
			"ApplyJoinOption": g.applyJoin,
			"MuteAllMember":   muteAll,
		}
		info := map[string]any{"GroupId": g.id, "ErrorCode": 0, "ErrorInfo": ""}
		switch {
		case !filtered:
			maps.Copy(info, base)
		default:
			for _, name := range baseFilter {
				info[name] = base[name]
			}
		}
		if (!filtered || len(memberFilter) > 0) && g.typ != tim.GroupAVChatRoom {
			list := make([]map[string]any, 0, len(g.members))
			for _, acc := range slices.Sorted(maps.Keys(g.members)) {
				list = append(list, g.memberEntry(acc, memberFilter, now))
			}
			info["MemberList"] = list
		}
		infos = append(infos, info)
	}
	return map[string]any{"GroupInfo": infos}, nil
}

func modifyGroupBaseInfo(gs *groups, f fields, now time.Time) (map[string]any, *apiError) {
	r := f.reader()
	id := r.str("GroupId", true)
	strFields := map[string]*string{}
	for _, key := range []string{"Name", "Introduction", "Notification", "FaceUrl", "ApplyJoinOption", "MuteAllMember"} {
		if f.has(key) {
			v := r.str(key, false)
			strFields[key] = &v
		}
	}
	if v, ok := strFields["ApplyJoinOption"]; ok {
		switch *v {
		case tim.JoinFreeAccess, tim.JoinNeedPermission, tim.JoinDisableApply:
		default:
			r.fail(badParam("ApplyJoinOption %q is not FreeAccess, NeedPermission or DisableApply", *v))
		}
	}
	if v, ok := strFields["MuteAllMember"]; ok && *v != tim.MuteAllOn && *v != tim.MuteAllOff {
		r.fail(badParam("MuteAllMember %q is not On or Off", *v))
	}
	g := r.group(gs, id)
	if r.err != nil {
		return nil, r.err
	}
	if _, ok := strFields["MuteAllMember"]; ok && g.typ == tim.GroupPrivate {
		return nil, notSupported(g, "muting")
	}
	set := func(key string, dst *string) {
		if v, ok := strFields[key]; ok {
			*dst = *v
		}
	}
	set("Name", &g.name)
	set("Introduction", &g.intro)
	set("Notification", &g.notice)
	set("FaceUrl", &g.faceURL)
	set("ApplyJoinOption", &g.applyJoin)
	if v, ok := strFields["MuteAllMember"]; ok {
		g.muteAll = *v == tim.MuteAllOn
	}
	g.infoTime = now.Unix()
	return nil, nil
}

// duplicateWindow is how long send_group_msg remembers a message's Random
// and content to drop a repeat.
const duplicateWindow = 5 * time.Minute

func sendGroupMsg(gs *groups, f fields, now time.Time) (map[string]any, *apiError) {
	r := f.reader()
	id := r.str("GroupId", true)
	random, _ := r.uint("Random", true, math.MaxUint32)
	from := r.str("From_Account", false)
	forbid := r.strs("ForbidCallbackControl", false, 0)
	for _, v := range forbid {
		if v != tim.ForbidBeforeSendMsgCallback && v != tim.ForbidAfterSendMsgCallback {
			r.fail(badParam("ForbidCallbackControl value %q is unknown", v))
			break
		}
	}
	r.flag("OnlineOnlyFlag")
	r.str("CloudCustomData", false)
	r.str("TopicId", false)
	body := r.msgBody()
	atAccounts, atAll := r.groupAtInfo()
	g := r.group(gs, id)
	if r.err != nil {
		return nil, r.err
	}
	if atAll && g.typ == tim.GroupAVChatRoom {
		// "Audio-video groups (AVChatroom) don't support the @all feature."
		return nil, badParam("AVChatRoom groups do not support @all (GroupAtAllFlag 1)")
	}
	for i := len(g.msgs) - 1; i >= 0 && now.Sub(g.msgs[i].Time) < duplicateWindow; i-- {
		m := g.msgs[i]
		if m.Random == uint32(random) && m.From == from && bytes.Equal(m.Body, body) {
			return map[string]any{"MsgTime": m.Time.Unix(), "MsgSeq": m.Seq}, nil
		}
	}
	g.nextMsgSeq++
	g.lastMsgTime = now.Unix()
	if m, ok := g.members[from]; ok {
		m.lastSent = now.Unix()
	}
	g.msgs = append(g.msgs, Message{
		Seq: uint64(g.nextMsgSeq), Time: now, From: from, Random: uint32(random),
		Body: body, ForbidCallbackControl: forbid, AtAccounts: atAccounts, AtAll: atAll,
	})
	return map[string]any{"MsgTime": now.Unix(), "MsgSeq": g.nextMsgSeq}, nil
}

// groupAtInfo reads GroupAtInfo: [{GroupAtAllFlag: 0 or 1,
// GroupAt_Account: required when the flag is 0}].
func (r *reader) groupAtInfo() (accounts []string, all bool) {
	if r.err != nil || !r.f.has("GroupAtInfo") {
		return nil, false
	}
	var list []fields
	if json.Unmarshal(r.f["GroupAtInfo"], &list) != nil {
		r.fail(wrongType("GroupAtInfo", "an array of objects"))
		return nil, false
	}
	for i, at := range list {
		flag, _, err := at.uint("GroupAtAllFlag", true, 1)
		if err == nil && flag == 0 {
			var acc string
			acc, err = at.str("GroupAt_Account", true)
			accounts = append(accounts, acc)
		}
		if err != nil {
			err.info = "GroupAtInfo[" + strconv.Itoa(i) + "]." + err.info
			r.fail(err)
			return nil, false
		}
		all = all || flag == 1
	}
	return accounts, all
}

// msgBody reads MsgBody like the reader's other methods read their fields.
func (r *reader) msgBody() json.RawMessage {
	if r.err != nil {
		return nil
	}
	body, err := r.f.msgBody()
	r.err = err
	return body
}

// msgBody checks MsgBody and returns it compacted.
func (f fields) msgBody() (json.RawMessage, *apiError) {
	if !f.has("MsgBody") {
		return nil, missing("MsgBody")
	}
	var elems []fields
	if json.Unmarshal(f["MsgBody"], &elems) != nil {
		return nil, wrongType("MsgBody", "an array of objects")
	}
	if len(elems) == 0 {
		return nil, badParam("MsgBody is empty")
	}
	for i, el := range elems {
		typ, err := el.str("MsgType", true)
		if err != nil {
			err.info = "MsgBody[" + strconv.Itoa(i) + "]." + err.info
			return nil, err
		}
		if !el.has("MsgContent") {
			return nil, badParam("MsgBody[%d].MsgContent is missing", i)
		}
		var content fields
		if json.Unmarshal(el["MsgContent"], &content) != nil {
			return nil, wrongType("MsgBody["+strconv.Itoa(i)+"].MsgContent", "an object")
		}
		if typ == tim.ElemText {
			if !content.has("Text") {
				return nil, badParam("MsgBody[%d].MsgContent.Text is missing", i)
			}
			if _, err := content.str("Text", false); err != nil {
				return nil, err
			}
		}
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, f["MsgBody"]); err != nil {
		return nil, wrongType("MsgBody", "valid JSON")
	}
	return buf.Bytes(), nil
}

// maxNotifyMembers bounds ToMembers_Account ("Up to 500 recipient UserIDs
// are supported").
const maxNotifyMembers = 500

// sendGroupSystemNotification follows
// https://intl.cloud.tencent.com/document/product/1047/34958: "AVChatRoom:
// Yes. But only to all group members".
func sendGroupSystemNotification(gs *groups, f fields, now time.Time) (map[string]any, *apiError) {
	r := f.reader()
	id := r.str("GroupId", true)
	to := r.strs("ToMembers_Account", false, maxNotifyMembers)
	content := r.str("Content", true)
	r.str("TopicId", false)
	g := r.group(gs, id)
	if r.err != nil {
		return nil, r.err
	}
	if len(to) > 0 && g.typ == tim.GroupAVChatRoom {
		return nil, &apiError{tim.CodeNoPermission, "ToMembers_Account is not supported in AVChatRoom groups: they take system notifications to all members only"}
	}
	g.notices = append(g.notices, Notification{Time: now, To: to, Content: content})
	return nil, nil
}

func modifyGroupMemberInfo(gs *groups, f fields, now time.Time) (map[string]any, *apiError) {
	r := f.reader()
	id := r.str("GroupId", true)
	acc := r.str("Member_Account", true)
	role := r.str("Role", false)
	switch role {
	case "", tim.RoleAdmin, tim.RoleMember:
	case tim.RoleOwner:
		r.fail(badParam("Role cannot be set to Owner; use change_group_owner"))
	default:
		r.fail(badParam("Role %q is not Admin or Member", role))
	}
	secs, hasMute := r.uint("MuteTime", false, math.MaxUint32)
	hasCard := f.has("NameCard")
	card := r.str("NameCard", false)
	g := r.group(gs, id)
	if r.err != nil {
		return nil, r.err
	}
	if g.typ == tim.GroupPrivate && (role != "" || hasMute) {
		return nil, notSupported(g, "changing roles or mutes")
	}
	m, isMember := g.members[acc]
	if !isMember && (g.typ != tim.GroupAVChatRoom || role != "" || hasCard) {
		return nil, &apiError{tim.CodeNoPermission, acc + " is not a member of " + g.id}
	}
	if role != "" && m.role == tim.RoleOwner {
		return nil, badParam("the owner's role cannot be changed; use change_group_owner")
	}
	if hasMute {
		k := muteKey{account: acc}
		if secs == 0 {
			delete(g.muted, k)
		} else {
			g.muted[k] = muteUntil(secs, now)
		}
	}
	if role != "" {
		m.role = role
	}
	if hasCard {
		m.nameCard = card
	}
	return nil, nil
}

// maxBanDescriptionBytes bounds ban_group_member's Description ("Ban
// information, which can be up to 1,000 bytes in length").
const maxBanDescriptionBytes = 1000

// banAccounts reads Members_Account of ban_group_member and
// unban_group_member: more than 20 accounts is 10005 ("The number of
// members to be banned exceeds the upper limit of 20 members per request").
func (r *reader) banAccounts() []string {
	list := r.strs("Members_Account", true, 0)
	if len(list) > tim.MaxBanMembers {
		r.fail(&apiError{tim.CodeTooManyAccounts, "Members_Account has " + strconv.Itoa(len(list)) + " accounts, at most 20 per request"})
	}
	return list
}

// liveBanAllowed checks what ban_group_member and unban_group_member need
// besides an AVChatRoom group: "you need to purchase the Ultimate edition,
// go to the console ... and enable Audio-video group member banning";
// otherwise 10007, "the switch is not enabled in the console".
func liveBanAllowed(gs *groups, g *group, command string) *apiError {
	if g.typ != tim.GroupAVChatRoom {
		return notSupported(g, command)
	}
	if !gs.liveBan {
		return &apiError{tim.CodeNoPermission, command + ": Audio-video group member banning is not enabled (Ultimate edition and the console switch under Group configuration > Group feature configuration)"}
	}
	return nil
}

// banGroupMember follows https://intl.cloud.tencent.com/document/product/1047/50296.
func banGroupMember(gs *groups, f fields, now time.Time) (map[string]any, *apiError) {
	r := f.reader()
	id := r.str("GroupId", true)
	accounts := r.banAccounts()
	secs, _ := r.uint("Duration", true, math.MaxUint32)
	if secs == 0 {
		r.fail(badParam("Duration must be at least 1 second"))
	}
	if desc := r.str("Description", false); len(desc) > maxBanDescriptionBytes {
		r.fail(badParam("Description is %d bytes, at most %d", len(desc), maxBanDescriptionBytes))
	}
	g := r.group(gs, id)
	if r.err != nil {
		return nil, r.err
	}
	if err := liveBanAllowed(gs, g, tim.CommandBanGroupMember); err != nil {
		return nil, err
	}
	for _, acc := range accounts {
		g.banned[acc] = now.Unix() + int64(secs)
		delete(g.members, acc)
	}
	return nil, nil
}

// unbanGroupMember follows https://intl.cloud.tencent.com/document/product/1047/50297.
func unbanGroupMember(gs *groups, f fields, _ time.Time) (map[string]any, *apiError) {
	r := f.reader()
	id := r.str("GroupId", true)
	accounts := r.banAccounts()
	g := r.group(gs, id)
	if r.err != nil {
		return nil, r.err
	}
	if err := liveBanAllowed(gs, g, tim.CommandUnbanGroupMember); err != nil {
		return nil, err
	}
	for _, acc := range accounts {
		delete(g.banned, acc)
	}
	return nil, nil
}
