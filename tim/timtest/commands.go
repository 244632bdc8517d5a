package timtest

import (
	"bytes"
	"encoding/json"
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

func getGroupMemberInfo(gs *groups, f fields, now time.Time) (map[string]any, *apiError) {
	r := f.reader()
	id := r.str("GroupId", true)
	limit, hasLimit := r.uint("Limit", false, 6000)
	offset, _ := r.uint("Offset", false, math.MaxInt32)
	next := r.str("Next", false)
	roles := r.strs("MemberRoleFilter", false, 0)
	for _, role := range roles {
		if role != tim.RoleOwner && role != tim.RoleAdmin && role != tim.RoleMember {
			r.fail(badParam("MemberRoleFilter value %q is not Owner, Admin or Member", role))
			break
		}
	}
	r.strs("MemberInfoFilter", false, 0)
	g := r.group(gs, id)
	if r.err != nil {
		return nil, r.err
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
		m := g.members[acc]
		var mutedUntil int64
		if until, ok := g.muted[muteKey{account: acc}]; ok && activeUntil(until, now.Unix()) {
			mutedUntil = until
		}
		list = append(list, map[string]any{
			"Member_Account":  acc,
			"Role":            m.role,
			"JoinTime":        m.joined,
			"MsgSeq":          0,
			"MsgFlag":         "AcceptAndNotify",
			"LastSendMsgTime": m.lastSent,
			"MuteUntil":       mutedUntil,
			"NameCard":        m.nameCard,
		})
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

func getGroupInfo(gs *groups, f fields, _ time.Time) (map[string]any, *apiError) {
	r := f.reader()
	ids := r.strs("GroupIdList", true, tim.MaxGroupInfoIDs)
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
		infos = append(infos, map[string]any{
			"GroupId":         g.id,
			"ErrorCode":       0,
			"ErrorInfo":       "",
			"Type":            g.typ,
			"Name":            g.name,
			"Introduction":    g.intro,
			"Notification":    g.notice,
			"FaceUrl":         g.faceURL,
			"Owner_Account":   g.owner,
			"CreateTime":      g.created,
			"LastInfoTime":    g.infoTime,
			"LastMsgTime":     g.lastMsgTime,
			"NextMsgSeq":      g.nextMsgSeq + 1,
			"MemberNum":       len(g.members),
			"MaxMemberNum":    g.maxMembers,
			"ApplyJoinOption": g.applyJoin,
			"MuteAllMember":   muteAll,
		})
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
	g := r.group(gs, id)
	if r.err != nil {
		return nil, r.err
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
		Body: body, ForbidCallbackControl: forbid,
	})
	return map[string]any{"MsgTime": now.Unix(), "MsgSeq": g.nextMsgSeq}, nil
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

func sendGroupSystemNotification(gs *groups, f fields, now time.Time) (map[string]any, *apiError) {
	r := f.reader()
	id := r.str("GroupId", true)
	to := r.strs("ToMembers_Account", false, 0)
	content := r.str("Content", true)
	g := r.group(gs, id)
	if r.err != nil {
		return nil, r.err
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

func banGroupMember(gs *groups, f fields, now time.Time) (map[string]any, *apiError) {
	r := f.reader()
	id := r.str("GroupId", true)
	accounts := r.strs("Members_Account", true, tim.MaxBanMembers)
	secs, _ := r.uint("Duration", true, math.MaxUint32)
	if secs == 0 {
		r.fail(badParam("Duration must be at least 1 second"))
	}
	r.str("Description", false)
	g := r.group(gs, id)
	if r.err != nil {
		return nil, r.err
	}
	if g.typ != tim.GroupAVChatRoom {
		return nil, notSupported(g, "ban_group_member")
	}
	for _, acc := range accounts {
		g.banned[acc] = now.Unix() + int64(secs)
		delete(g.members, acc)
	}
	return nil, nil
}

func unbanGroupMember(gs *groups, f fields, _ time.Time) (map[string]any, *apiError) {
	r := f.reader()
	id := r.str("GroupId", true)
	accounts := r.strs("Members_Account", true, tim.MaxBanMembers)
	g := r.group(gs, id)
	if r.err != nil {
		return nil, r.err
	}
	if g.typ != tim.GroupAVChatRoom {
		return nil, notSupported(g, "unban_group_member")
	}
	for _, acc := range accounts {
		delete(g.banned, acc)
	}
	return nil, nil
}
