package actions

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"time"
	"unicode/utf8"

	"github.com/timguard/timguard/audit"
	"github.com/timguard/timguard/rules"
	"github.com/timguard/timguard/store"
	"github.com/timguard/timguard/tim"
)

// op is the REST operation an action becomes.
type op int

const (
	opNone      op = iota
	opMute         // forbid_send_msg with MuteTime > 0
	opUnmute       // forbid_send_msg with MuteTime 0
	opDelete       // delete_group_member
	opBan          // ban_group_member
	opUnban        // unban_group_member
	opAdd          // add_group_member
	opNotify       // send_group_system_notification
	opMention      // send_group_msg mentioning one member (AVChatRoom warnings)
	opMuteAll      // modify_group_base_info MuteAllMember On
	opUnmuteAll    // modify_group_base_info MuteAllMember Off
)

// command is the REST command op sends.
func (o op) command() string {
	switch o {
	case opMute, opUnmute:
		return tim.CommandForbidSendMsg
	case opDelete:
		return tim.CommandDeleteGroupMember
	case opBan:
		return tim.CommandBanGroupMember
	case opUnban:
		return tim.CommandUnbanGroupMember
	case opAdd:
		return tim.CommandAddGroupMember
	case opNotify:
		return tim.CommandSendGroupSystemNotification
	case opMention:
		return tim.CommandSendGroupMsg
	case opMuteAll, opUnmuteAll:
		return tim.CommandModifyGroupBaseInfo
	}
	return ""
}

// limit is the most members one call of op may name; 0 means the calls
// merge whatever their number.
func (o op) limit() int {
	switch o {
	case opMute, opUnmute:
		return tim.MaxForbidMembers
	case opDelete:
		return tim.MaxDeleteMembers
	case opBan, opUnban:
		return tim.MaxBanMembers
	case opAdd:
		return tim.MaxAddMembers
	case opNotify:
		return tim.MaxNotifyMembers
	case opMention:
		return 1
	}
	return 0
}

// targets reports whether op acts against a member, so that owners, admins
// and the App admin are exempt from it unless the rule names their role.
func (o op) targets() bool { return o == opMute || o == opDelete || o == opBan }

// job is one claimed action and what the executor made of it.
type job struct {
	c       store.Claimed
	claimed time.Time     // when the lease started (renewals move it)
	took    time.Duration // how long its REST call took, when it made one

	op       op
	typ      string // the group's type (REST name), "" when unknown
	seconds  int64  // mute or ban duration
	text     string // reason, description or notice sent with the call
	all      bool   // a notice to every member
	announce string // notice to send when a mute or ban ends, or after a group unmute
	// forgotten is set once the store answered that it has no trace of
	// the action (store.ErrActionUnknown).
	forgotten bool
}

// runGroup carries out one group's jobs: immediate outcomes, group type,
// exemptions, then the batched calls in order.
func (e *Executor) runGroup(stop, work context.Context, group string, jobs []*job) {
	if stop.Err() != nil {
		e.release(jobs)
		return
	}
	switch {
	case e.dryRun.Load():
		each(jobs, func(j *job) { e.finishWithoutCall(work, j, audit.ResultDryRun, "") })
		return
	case e.cfg.Client == nil:
		each(jobs, func(j *job) { e.finishWithoutCall(work, j, audit.ResultSkipped, RESTOffReason) })
		return
	}
	var live []*job
	for _, j := range jobs {
		if err := validate(j.c.Action); err != nil {
			e.dead(work, j, "", "invalid action: "+err.Error())
			continue
		}
		live = append(live, j)
	}
	live = e.checkEnds(work, group, live)
	if len(live) == 0 {
		return
	}

	var info *tim.GroupInfo
	if slices.ContainsFunc(live, needsInfo) {
		gi, err := e.groupInfo(work, group)
		if err != nil {
			blocked := slices.DeleteFunc(slices.Clone(live), func(j *job) bool { return !needsInfo(j) })
			e.fail(work, blocked, tim.CommandGetGroupInfo, err, false)
			live = slices.DeleteFunc(live, needsInfo)
		} else {
			info = &gi
		}
	}
	live = e.decideAll(work, live, info)
	live = slices.DeleteFunc(live, func(j *job) bool {
		if why := mentionTooLate(j, e.cfg.Now()); why != "" {
			e.dead(work, j, tim.CommandSendGroupMsg, why)
			return true
		}
		return false
	})
	live = e.exempt(work, group, live)
	live = e.keepLongerMutes(work, group, live)
	for _, c := range plan(group, live) {
		if stop.Err() != nil {
			e.release(c.jobs)
			continue
		}
		e.runCall(work, c)
	}
}

// validate refuses actions that can never be carried out.
func validate(a store.Action) error {
	if a.Group == "" {
		return errors.New("no group")
	}
	switch rules.ActionKind(a.Kind) {
	case rules.ActMute, rules.ActBan:
		if a.User == "" {
			return fmt.Errorf("%s needs a user", a.Kind)
		}
		if a.Seconds <= 0 {
			return fmt.Errorf("%s needs a duration", a.Kind)
		}
	case rules.ActUnmute, rules.ActKick, rules.ActUnban, rules.ActAdmit:
		if a.User == "" {
			return fmt.Errorf("%s needs a user", a.Kind)
		}
	case rules.ActMuteGroup:
		if a.Seconds <= 0 {
			return fmt.Errorf("%s needs a duration", a.Kind)
		}
	case rules.ActWarn:
		if a.Text == "" {
			return errors.New("warn needs a text")
		}
	case rules.ActUnmuteGroup:
	default:
		return fmt.Errorf("unknown kind %q", a.Kind)
	}
	return nil
}

// needsInfo reports whether j needs get_group_info: its group type is not
// known from the callback, or it is an admission, which depends on the
// group's ApplyJoinOption. A notice to every member is the same call in
// every group type.
func needsInfo(j *job) bool {
	switch {
	case j.c.Kind == string(rules.ActAdmit):
		return true
	case j.c.Kind == string(rules.ActWarn) && j.c.User == "":
		return false
	}
	return j.c.GroupType == ""
}

// decideAll turns each job into an operation the group type allows and
// skips the others, auditing why.
func (e *Executor) decideAll(work context.Context, jobs []*job, info *tim.GroupInfo) []*job {
	out := jobs[:0]
	for _, j := range jobs {
		if reason := e.decide(j, info); reason != "" {
			e.finishWithoutCall(work, j, audit.ResultSkipped, reason)
			continue
		}
		out = append(out, j)
	}
	return out
}

// decide sets j's operation, or returns why the action is skipped.
func (e *Executor) decide(j *job, info *tim.GroupInfo) string {
	a := j.c.Action
	typ := tim.NormalizeGroupType(a.GroupType)
	if typ == "" && info != nil {
		typ = tim.NormalizeGroupType(info.Type)
	}
	j.typ = typ
	switch rules.ActionKind(a.Kind) {
	case rules.ActMute, rules.ActUnmute:
		if typ == tim.GroupPrivate {
			return "Private (Work) groups do not allow muting members"
		}
		j.op, j.seconds, j.announce = opMute, a.Seconds, a.Text
		if a.Kind == string(rules.ActUnmute) {
			j.op, j.seconds, j.announce = opUnmute, 0, ""
		}
	case rules.ActMuteGroup:
		if typ == tim.GroupPrivate {
			return "Private (Work) groups do not allow muting the group"
		}
		j.op, j.seconds, j.announce = opMuteAll, a.Seconds, a.Text
	case rules.ActUnmuteGroup:
		if typ == tim.GroupPrivate {
			return "Private (Work) groups do not allow muting the group"
		}
		j.op, j.announce = opUnmuteAll, a.Text
	case rules.ActKick:
		if typ == tim.GroupAVChatRoom {
			// Members of live groups cannot be removed
			// (delete_group_member answers 10004); a ban removes them and
			// keeps them out for its duration. The reason becomes the ban's
			// Description, at most 1,000 bytes.
			j.op, j.seconds, j.text = opBan, a.Seconds, truncateBytes(a.Text, tim.MaxBanDescriptionBytes)
			if j.seconds <= 0 {
				j.seconds = e.cfg.KickBanSeconds
			}
			return ""
		}
		j.op, j.text = opDelete, a.Text
	case rules.ActBan, rules.ActUnban:
		if typ != tim.GroupAVChatRoom {
			return fmt.Sprintf("%s only exists in AVChatRoom (live) groups; this group is %s", a.Kind, typ)
		}
		j.op, j.seconds, j.announce = opBan, a.Seconds, a.Text
		if a.Kind == string(rules.ActUnban) {
			j.op, j.seconds, j.announce = opUnban, 0, ""
		}
	case rules.ActWarn:
		j.op, j.text, j.all = opNotify, a.Text, a.User == ""
		if typ == tim.GroupAVChatRoom && a.User != "" {
			// A live group takes system notifications to all members only.
			if e.cfg.LiveWarn == LiveWarnSkip {
				return "AVChatRoom (live) groups take system notifications to all members only, and executor.live_group_warn is skip"
			}
			j.op = opMention
		}
	case rules.ActAdmit:
		if typ == tim.GroupAVChatRoom {
			return "AVChatRoom groups admit anyone; there is no application to approve"
		}
		opt := ""
		if info != nil {
			opt = info.ApplyJoinOption
		}
		switch opt {
		case tim.JoinNeedPermission:
			j.op = opAdd
		case tim.JoinDisableApply:
			return "the group takes no applications (ApplyJoinOption DisableApply)"
		default:
			return fmt.Sprintf("the group admits applicants itself (ApplyJoinOption %s)", opt)
		}
	}
	return ""
}

// exempt skips jobs that act against the App admin, the group's owner or an
// admin when the rule does not name that role. The group's roles are looked
// up only when some job needs them.
func (e *Executor) exempt(work context.Context, group string, jobs []*job) []*job {
	var users []string
	seen := map[string]bool{}
	for _, j := range jobs {
		if e.needsRoles(j) && !seen[j.c.User] {
			seen[j.c.User] = true
			users = append(users, j.c.User)
		}
	}
	var roles map[string]string
	var rolesErr error
	// The lookup the role filler makes: get_group_info for a live group or
	// one of unknown type, get_group_member_info otherwise.
	lookup := tim.CommandGetGroupMemberInfo
	if len(users) > 0 {
		typ := ""
		for _, j := range jobs {
			if j.typ != "" {
				typ = j.typ
				break
			}
		}
		if typ == "" || typ == tim.GroupAVChatRoom {
			lookup = tim.CommandGetGroupInfo
		}
		roles, rolesErr = e.cfg.Roles.GroupRoles(work, group, typ, users)
		if rolesErr != nil {
			rolesErr = fmt.Errorf("look up the owner and admins of %s: %w", group, rolesErr)
		}
	}
	out := jobs[:0]
	var failed []*job
	for _, j := range jobs {
		a := j.c.Action
		switch {
		case !j.op.targets() || a.User == "":
		case a.User == e.cfg.AppAdmin && e.cfg.AppAdmin != "" && !hasRole(a, string(rules.RoleAppAdmin)):
			e.finishWithoutCall(work, j, audit.ResultSkipped, "exempt: "+string(rules.RoleAppAdmin))
			continue
		case !e.needsRoles(j):
		case rolesErr != nil:
			failed = append(failed, j)
			continue
		default:
			if role := roles[a.User]; (role == store.RoleOwner || role == store.RoleAdmin) && !hasRole(a, role) {
				e.finishWithoutCall(work, j, audit.ResultSkipped, "exempt: "+role)
				continue
			}
		}
		out = append(out, j)
	}
	if len(failed) > 0 {
		e.fail(work, failed, lookup, rolesErr, false)
	}
	return out
}

// needsRoles reports whether j acts against a member whose role decides
// whether the rule may act on them.
func (e *Executor) needsRoles(j *job) bool {
	a := j.c.Action
	if !j.op.targets() || a.User == "" || (a.User == e.cfg.AppAdmin && e.cfg.AppAdmin != "") {
		return false
	}
	return !hasRole(a, store.RoleOwner) || !hasRole(a, store.RoleAdmin)
}

// call is one REST call carrying one or more jobs.
type call struct {
	op      op
	group   string
	seconds int64
	text    string
	all     bool
	jobs    []*job
	names   []string // the members named, once each, in job order
	seen    map[string]bool
}

func (c *call) add(j *job) {
	c.jobs = append(c.jobs, j)
	if u := j.c.User; u != "" && !c.seen[u] {
		c.seen[u] = true
		c.names = append(c.names, u)
	}
}

// fits reports whether j can join the call without passing its limit.
func (c *call) fits(j *job) bool {
	lim := j.op.limit()
	return lim == 0 || c.seen[j.c.User] || len(c.names) < lim
}

type callKey struct {
	op      op
	seconds int64
	text    string
	all     bool
}

// key says which jobs can share a call: the same operation with the same
// parameters. A mute's announcement is not a parameter of the call.
func (j *job) key() callKey {
	switch j.op {
	case opMute, opBan:
		return callKey{op: j.op, seconds: j.seconds, text: j.text}
	case opDelete:
		return callKey{op: j.op, text: j.text}
	case opNotify:
		return callKey{op: j.op, text: j.text, all: j.all}
	case opMention:
		return callKey{op: j.op, text: j.text}
	}
	return callKey{op: j.op}
}

// plan batches jobs into calls in the order their first job came. A job
// whose previous batch was refused as a whole goes alone.
func plan(group string, jobs []*job) []*call {
	var calls []*call
	open := map[callKey]*call{}
	for _, j := range jobs {
		k := j.key()
		c := open[k]
		if isSolo(j.c) || c == nil || !c.fits(j) {
			c = &call{op: j.op, group: group, seconds: k.seconds, text: k.text, all: k.all, seen: map[string]bool{}}
			calls = append(calls, c)
			if !isSolo(j.c) {
				open[k] = c
			}
		}
		c.add(j)
	}
	return calls
}

// runCall renews the leases if needed, sends the call and settles each job.
func (e *Executor) runCall(work context.Context, c *call) {
	c.jobs = e.renew(work, c.jobs)
	if len(c.jobs) == 0 {
		return
	}
	start := time.Now()
	perUser, err := e.send(work, c)
	took := time.Since(start)
	for _, j := range c.jobs {
		j.took = took
	}
	if err != nil {
		e.fail(work, c.jobs, c.op.command(), fmt.Errorf("%s in %s: %w", c.op.command(), c.group, err), true)
		return
	}
	each(c.jobs, func(j *job) {
		if uerr := perUser[j.c.User]; uerr != nil {
			e.dead(work, j, c.op.command(), uerr.Error())
			return
		}
		e.done(work, j, c.op.command())
	})
}

// send makes the call. For add_group_member it also returns the members the
// server did not add.
func (e *Executor) send(ctx context.Context, c *call) (map[string]error, error) {
	cl := e.cfg.Client
	users := c.names
	switch c.op {
	case opMute:
		return nil, cl.ForbidSendMsg(ctx, tim.ForbidSendMsgRequest{GroupID: c.group, Members: users, MuteTime: clampSeconds(c.seconds)})
	case opUnmute:
		return nil, cl.ForbidSendMsg(ctx, tim.ForbidSendMsgRequest{GroupID: c.group, Members: users, MuteTime: 0})
	case opDelete:
		return nil, cl.DeleteGroupMember(ctx, tim.DeleteGroupMemberRequest{GroupID: c.group, Members: users, Reason: c.text})
	case opBan:
		return nil, cl.BanGroupMember(ctx, c.group, users, max(clampSeconds(c.seconds), 1), c.text)
	case opUnban:
		return nil, cl.UnbanGroupMember(ctx, c.group, users)
	case opAdd:
		results, err := cl.AddGroupMember(ctx, tim.AddGroupMemberRequest{GroupID: c.group, Members: users})
		if err != nil {
			return nil, err
		}
		failed := map[string]error{}
		for _, r := range results {
			if r.Result == tim.AddResultFailed {
				failed[r.Account] = fmt.Errorf("add_group_member in %s: the IM server did not add %s (Result 0)", c.group, r.Account)
			}
		}
		return failed, nil
	case opNotify:
		var to []string
		if !c.all {
			to = users
		}
		return nil, cl.SendGroupSystemNotification(ctx, c.group, to, c.text)
	case opMention:
		_, err := cl.SendGroupMsg(ctx, mentionRequest(c))
		return nil, err
	case opMuteAll:
		return nil, cl.ModifyGroupBaseInfo(ctx, tim.ModifyGroupBaseInfoRequest{GroupID: c.group, MuteAllMember: tim.MuteAllOn})
	case opUnmuteAll:
		return nil, cl.ModifyGroupBaseInfo(ctx, tim.ModifyGroupBaseInfoRequest{GroupID: c.group, MuteAllMember: tim.MuteAllOff})
	}
	return nil, fmt.Errorf("no operation for %v", c.op)
}

// mentionRequest is the send_group_msg of a warning to one member of a live
// group: "@member text", with GroupAtInfo naming the member. Random is
// derived from the action's ID, so that a retry of a call whose answer was
// lost is dropped by the IM server as a repeat (same Random and content
// within 5 minutes: https://intl.cloud.tencent.com/document/product/1047/34959).
func mentionRequest(c *call) tim.SendGroupMsgRequest {
	user := c.names[0]
	return tim.SendGroupMsgRequest{
		GroupID:     c.group,
		Random:      actionRandom(c.jobs[0].c.ID),
		MsgBody:     []tim.MsgElem{{MsgType: tim.ElemText, MsgContent: tim.TextContent("@" + user + " " + c.text)}},
		GroupAtInfo: []tim.GroupAt{{Account: user}},
	}
}

// actionRandom is a message Random that stays the same for every attempt
// of one action: the FNV-1a hash of its ID, never 0 (which the client would
// replace by a random number).
func actionRandom(id string) uint32 {
	h := fnv.New32a()
	_, _ = h.Write([]byte(id))
	return max(h.Sum32(), 1)
}

// truncateBytes shortens s to at most n bytes without splitting a UTF-8
// character.
func truncateBytes(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// renew extends the leases of jobs claimed more than half a lease ago, and
// drops the jobs whose lease another worker has taken over.
func (e *Executor) renew(ctx context.Context, jobs []*job) []*job {
	out := jobs[:0]
	for _, j := range jobs {
		if e.renewOne(ctx, j) {
			e.log.Warn("lease lost before the call; another worker has the action", "action", j.c.ID)
			continue
		}
		out = append(out, j)
	}
	return out
}

// renewOne extends j's lease when more than half of it has passed, so that
// a slow batch (many calls, or many results to record) keeps its actions.
// It reports whether the lease was lost to another worker.
func (e *Executor) renewOne(ctx context.Context, j *job) (lost bool) {
	now := e.cfg.Now()
	if now.Sub(j.claimed) < e.cfg.Lease/2 {
		return false
	}
	err := e.cfg.Store.Extend(ctx, j.c, now, e.cfg.Lease)
	switch {
	case errors.Is(err, store.ErrLeaseLost):
		return true
	case errors.Is(err, store.ErrActionUnknown):
		// Nobody else can have it: this worker's copy is the only one
		// left. It carries the action out and audits it as usual.
		if !j.forgotten {
			j.forgotten = true
			e.log.Warn("the store forgot a claimed action (Redis lost its data); carrying it out from the copy held",
				"action", j.c.ID, "kind", j.c.Kind, "group", j.c.Group)
		}
	case err != nil:
		e.log.Warn("renew lease", "action", j.c.ID, "err", err)
	default:
		j.claimed = now
	}
	return false
}
