package tim

// decodeMemberEvent decodes the body of a Group.CallbackBeforeApplyJoinGroup,
// Group.CallbackAfterNewMemberJoin or Group.CallbackAfterMemberExit (the
// callbacks most traffic is after messages) as decodeMessage does a
// message: in one pass, into exactly the event decodeStd gives, or ok =
// false for the caller to decode with encoding/json. It gives up where
// decodeMessage does, and on a member list or member that is not an array
// or object (null included).
func decodeMemberEvent(command string, body []byte) (ev Event, ok bool) {
	var c *Common
	// strs are the event's string fields besides Common's; list its member
	// list, if it has one.
	var strs [2]struct {
		name string
		dst  *string
	}
	var list struct {
		name string
		dst  *[]Member
	}
	switch command {
	case CmdBeforeApplyJoinGroup:
		e := new(BeforeApplyJoinGroup)
		ev, c = e, &e.Common
		strs[0].name, strs[0].dst = "Requestor_Account", &e.Requestor
		strs[1].name, strs[1].dst = "ApplyMsg", &e.ApplyMsg
	case CmdAfterNewMemberJoin:
		e := new(AfterNewMemberJoin)
		ev, c = e, &e.Common
		strs[0].name, strs[0].dst = "JoinType", &e.JoinType
		strs[1].name, strs[1].dst = "Operator_Account", &e.Operator
		list.name, list.dst = "NewMemberList", &e.NewMemberList
	case CmdAfterMemberExit:
		e := new(AfterMemberExit)
		ev, c = e, &e.Common
		strs[0].name, strs[0].dst = "ExitType", &e.ExitType
		strs[1].name, strs[1].dst = "Operator_Account", &e.Operator
		list.name, list.dst = "ExitMemberList", &e.ExitMemberList
	default:
		return nil, false
	}
	d := msgDecoder{b: body}
	if !d.consume('{') {
		return nil, false
	}
	// seen has a bit per field: Common's five, then strs, then list.
	var seen uint8
	for n := 0; ; n++ {
		key, done, ok := d.member(n)
		if !ok {
			return nil, false
		}
		if done {
			break
		}
		var bit uint8
		k := string(key)
		switch f := commonFieldOf(k); {
		case f != fieldUnknown:
			bit = 1 << f
			ok = d.common(f, c, command)
		case k == strs[0].name:
			bit = 32
			ok = d.strInto(strs[0].dst)
		case k == strs[1].name:
			bit = 64
			ok = d.strInto(strs[1].dst)
		case list.dst != nil && k == list.name:
			bit = 128
			*list.dst, ok = d.members()
		default:
			if folds(key, "CallbackCommand", "GroupId", "Type", "EventTime", "TopicId", strs[0].name, strs[1].name) ||
				list.dst != nil && folds(key, list.name) || !d.skip(0) {
				return nil, false
			}
			continue
		}
		if !ok || seen&bit != 0 {
			return nil, false
		}
		seen |= bit
	}
	d.ws()
	if d.i != len(d.b) {
		return nil, false
	}
	c.CallbackCommand = command
	if validate(ev) != nil {
		return nil, false
	}
	return ev, true
}

// members reads a member list: an array of {Member_Account} objects.
func (d *msgDecoder) members() ([]Member, bool) {
	out := []Member{}
	var m Member
	seen := false
	ok := d.objects(func(key []byte) bool {
		if string(key) == "Member_Account" {
			ok := !seen && d.strInto(&m.Account)
			seen = true
			return ok
		}
		return !folds(key, "Member_Account") && d.skip(1)
	}, func() {
		out = append(out, m)
		m, seen = Member{}, false
	})
	return out, ok
}
