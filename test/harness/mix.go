package harness

import (
	"fmt"
	"strconv"
	"time"

	"github.com/timguard/timguard/tim"
)

// Class is what a generated callback is meant to exercise.
type Class uint8

// Classes of generated callbacks.
const (
	// ClassMessage is an ordinary BeforeSendMsg from one of Mix.Users users;
	// some carry a link, a slur (rewritten) or an image.
	ClassMessage Class = iota
	// ClassSpam is a BeforeSendMsg with a spam word: blocked with a strike.
	// Spammers send a few each, so the third strike kicks (LoadRules);
	// with Mix.UniqueTriggers every spam message has a sender of its own.
	ClassSpam
	// ClassFlood is one of a burst of BeforeSendMsg from one flooder in one
	// group (a new flooder every FloodBlock requests): past five in ten
	// seconds the flood rule acts.
	ClassFlood
	// ClassMuteWord is a BeforeSendMsg containing "#mute" from a sender of
	// its own: ResilienceRules mute them, one mute per sender.
	ClassMuteWord
	// ClassKickWord is a BeforeSendMsg containing "#kick" from a sender of
	// its own: ResilienceRules block it and remove the sender.
	ClassKickWord
	// ClassMessageSent is an AfterSendMsg.
	ClassMessageSent
	// ClassJoinRequest is a BeforeApplyJoinGroup.
	ClassJoinRequest
	// ClassJoined is an AfterNewMemberJoin of one to three new members.
	ClassJoined
	// ClassQuit is an AfterMemberExit of a member who left.
	ClassQuit
	// ClassKicked is an AfterMemberExit of a member who was removed: the
	// leave-notice rule warns.
	ClassKicked
	numClasses
)

var classNames = [numClasses]string{
	"message", "spam", "flood", "mute_word", "kick_word", "message_sent", "join_request", "joined", "quit", "kicked",
}

func (c Class) String() string {
	if c < numClasses {
		return classNames[c]
	}
	return "class" + strconv.Itoa(int(c))
}

// Shares are the parts of each class, per 10,000 callbacks.
type Shares [numClasses]int

// LoadShares is the load generator's mix: 85% BeforeSendMsg (of which 1.5%
// spam and 3.5% flood bursts), 5% AfterSendMsg, 5% joins (applications and
// joins) and 5% exits.
func LoadShares() Shares {
	var s Shares
	s[ClassMessage] = 8000
	s[ClassSpam] = 150
	s[ClassFlood] = 350
	s[ClassMessageSent] = 500
	s[ClassJoinRequest] = 250
	s[ClassJoined] = 250
	s[ClassQuit] = 350
	s[ClassKicked] = 150
	return s
}

// ResilienceShares is the resilience suite's mix: the same kinds, with
// triggers whose effects are each one REST member entry (a mute, a
// removal, a notice to one member), so that the audit log and the fake IM
// server's record can be compared effect by effect.
func ResilienceShares() Shares {
	var s Shares
	s[ClassMessage] = 7600
	s[ClassSpam] = 150
	s[ClassFlood] = 250
	s[ClassMuteWord] = 400
	s[ClassKickWord] = 100
	s[ClassMessageSent] = 500
	s[ClassJoinRequest] = 250
	s[ClassJoined] = 250
	s[ClassQuit] = 250
	s[ClassKicked] = 250
	return s
}

// FloodBlock is how many consecutive requests share one flooder: with the
// load mix's 3.5% of floods, about seven messages within a fraction of a
// second, of which the sixth and the seventh are past the flood rule's
// limit.
const FloodBlock = 200

// spamBlock is how many consecutive requests share one spammer (LoadRules:
// with 1.5% of spam, a spammer sends about three spam messages and is
// removed at the third strike).
const spamBlock = 200

// Mix generates callbacks. Request(i) depends only on the fields and i, so
// that every run with the same Mix sends the same callbacks (apart from
// EventTime) and the caller knows what each should cause.
type Mix struct {
	// Seed varies the draws; runs with different seeds send different
	// events.
	Seed uint64
	// Groups is how many groups the events are spread over; the first
	// WaveGroups of them are "@TGS#wave..." groups (ResilienceRules mute
	// newcomers there), the others "@TGS#g....".
	Groups, WaveGroups int
	// Users is how many ordinary senders there are.
	Users int
	// Shares of each class.
	Shares Shares
	// UniqueTriggers gives every spam message and every removal its own user
	// (the resilience mix), instead of spammers who send several and
	// ordinary members being removed.
	UniqueTriggers bool

	cum [numClasses]int
}

// NewLoadMix is the load generator's mix over groups and users.
func NewLoadMix(seed uint64, groups, users int) *Mix {
	return (&Mix{Seed: seed, Groups: groups, Users: users, Shares: LoadShares()}).init()
}

// NewResilienceMix is the resilience suite's mix.
func NewResilienceMix(seed uint64, groups int) *Mix {
	return (&Mix{Seed: seed, Groups: groups, WaveGroups: max(1, groups/4), Users: 2000, Shares: ResilienceShares(), UniqueTriggers: true}).init()
}

func (m *Mix) init() *Mix {
	total := 0
	for c, s := range m.Shares {
		total += s
		m.cum[c] = total
	}
	if total != 10000 {
		panic(fmt.Sprintf("harness: mix shares add up to %d, want 10000", total))
	}
	if m.Groups < 1 || m.Users < 1 || m.WaveGroups > m.Groups {
		panic("harness: a mix needs groups and users")
	}
	return m
}

// GroupID is the id of group n (0 <= n < Groups).
func (m *Mix) GroupID(n int) string {
	if n < m.WaveGroups {
		return fmt.Sprintf("@TGS#wave%03d", n)
	}
	return fmt.Sprintf("@TGS#g%04d", n)
}

// GroupIDs lists every group the mix uses.
func (m *Mix) GroupIDs() []string {
	out := make([]string, m.Groups)
	for i := range out {
		out[i] = m.GroupID(i)
	}
	return out
}

// Request is one generated callback.
type Request struct {
	Index   int
	Class   Class
	Command string
	Group   string
	// Users are the subjects: the sender, the applicant, the members.
	Users []string
	Body  []byte
}

// splitmix64 is a fast, well-mixed hash of x.
func splitmix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// draw returns the k-th pseudo-random number of request i.
func (m *Mix) draw(i int, k uint64) uint64 {
	return splitmix64(m.Seed*0x632be59bd9b4e019 ^ uint64(i)*0x9e3779b97f4a7c15 ^ k*0xd1b54a32d192ed03)
}

// ClassOf is the class of request i.
func (m *Mix) ClassOf(i int) Class {
	r := int(m.draw(i, 0) % 10000)
	for c := range numClasses {
		if r < m.cum[c] {
			return c
		}
	}
	return ClassMessage
}

func (m *Mix) group(h uint64) string { return m.GroupID(int(h % uint64(m.Groups))) }

func (m *Mix) user(h uint64) string { return "u" + strconv.FormatUint(h%uint64(m.Users), 10) }

var plainTexts = []string{
	"good morning everyone",
	"see you at the meeting later",
	"has anyone tried the new release?",
	"thanks, that helped a lot",
	"lunch at noon, who is in",
	"I will send the notes tonight",
	"the build is green again",
	"happy birthday!!",
}

// Request returns callback i with EventTime now.
func (m *Mix) Request(i int, now time.Time) Request {
	c := m.ClassOf(i)
	h1, h2, h3 := m.draw(i, 1), m.draw(i, 2), m.draw(i, 3)
	r := Request{Index: i, Class: c, Group: m.group(h1)}
	idx := strconv.Itoa(i)
	seed := strconv.FormatUint(m.Seed, 10)
	text := plainTexts[h3%uint64(len(plainTexts))]
	elem := "TIMTextElem"
	switch c {
	case ClassMessage:
		r.Users = []string{m.user(h2)}
		switch h3 % 200 {
		case 0, 1, 2, 3, 4, 5, 6, 7, 8, 9: // 5% carry a link
			text = "look at https://example.com/p/" + idx
		case 10, 11: // 1% a slur the mask-slurs rule rewrites
			text = "you idiot, " + text
		case 12: // 0.5% an image
			elem = "TIMImageElem"
		}
	case ClassSpam:
		text = "FREE CRYPTO airdrop now"
		if m.UniqueTriggers {
			r.Users = []string{"spam" + seed + "-" + idx}
		} else {
			block := uint64(i / spamBlock)
			r.Users = []string{"spam" + seed + "-" + strconv.FormatUint(block, 10)}
			r.Group = m.group(splitmix64(block ^ m.Seed))
		}
	case ClassFlood:
		block := uint64(i / FloodBlock)
		r.Users = []string{"flood" + seed + "-" + strconv.FormatUint(block, 10)}
		r.Group = m.group(splitmix64(block ^ m.Seed ^ 0xf100d))
	case ClassMuteWord:
		r.Users = []string{"mute" + seed + "-" + idx}
		text = "please #mute me " + idx
	case ClassKickWord:
		r.Users = []string{"kick" + seed + "-" + idx}
		text = "please #kick me " + idx
	case ClassMessageSent:
		r.Users = []string{m.user(h2)}
	case ClassJoinRequest:
		switch {
		case m.UniqueTriggers:
			r.Users = []string{"apply" + seed + "-" + idx}
		case h2%25 == 0:
			r.Users = []string{"alice"} // trusted: approved and admitted
		case h2%25 == 1:
			r.Users = []string{"mallory"} // banned: rejected
		default:
			r.Users = []string{m.user(h2)}
		}
		text = "Hi, I would like to join"
		if !m.UniqueTriggers && h2%25 == 2 {
			text = "join my channel t.me/x" + idx // held for the admins
		}
	case ClassJoined:
		n := 1 + int(h2%3)
		for k := range n {
			r.Users = append(r.Users, "new"+seed+"-"+idx+"-"+strconv.Itoa(k))
		}
	case ClassQuit:
		r.Users = []string{m.user(h2)}
	case ClassKicked:
		if m.UniqueTriggers {
			r.Users = []string{"gone" + seed + "-" + idx}
		} else {
			r.Users = []string{m.user(h2)}
		}
	}
	r.Command, r.Body = m.body(c, r, i, seed, text, elem, now)
	return r
}

// body encodes the callback body. The strings are the generator's own and
// need no JSON escaping.
func (m *Mix) body(c Class, r Request, i int, seed, text, elem string, now time.Time) (string, []byte) {
	b := make([]byte, 0, 384)
	str := func(key, v string) {
		b = append(b, '"')
		b = append(b, key...)
		b = append(b, `":"`...)
		b = append(b, v...)
		b = append(b, `",`...)
	}
	num := func(key string, v int64) {
		b = append(b, '"')
		b = append(b, key...)
		b = append(b, `":`...)
		b = strconv.AppendInt(b, v, 10)
		b = append(b, ',')
	}
	members := func(key string) {
		b = append(b, '"')
		b = append(b, key...)
		b = append(b, `":[`...)
		for k, u := range r.Users {
			if k > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"Member_Account":"`...)
			b = append(b, u...)
			b = append(b, `"}`...)
		}
		b = append(b, "],"...)
	}
	var command string
	switch c {
	case ClassMessageSent:
		command = tim.CmdAfterSendMsg
	case ClassJoinRequest:
		command = tim.CmdBeforeApplyJoinGroup
	case ClassJoined:
		command = tim.CmdAfterNewMemberJoin
	case ClassQuit, ClassKicked:
		command = tim.CmdAfterMemberExit
	default:
		command = tim.CmdBeforeSendMsg
	}
	b = append(b, '{')
	str("CallbackCommand", command)
	str("GroupId", r.Group)
	str("Type", "Public")
	switch command {
	case tim.CmdBeforeSendMsg, tim.CmdAfterSendMsg:
		str("From_Account", r.Users[0])
		str("Operator_Account", r.Users[0])
		num("Random", int64(i))
		str("MsgId", "lg"+seed+"-"+strconv.Itoa(i))
		num("OnlineOnlyFlag", 0)
		if command == tim.CmdAfterSendMsg {
			num("MsgSeq", int64(i))
			num("MsgTime", now.Unix())
		}
		b = append(b, `"MsgBody":[{"MsgType":"`...)
		b = append(b, elem...)
		if elem == "TIMImageElem" {
			b = append(b, `","MsgContent":{"UUID":"img`...)
			b = strconv.AppendInt(b, int64(i), 10)
			b = append(b, `"}}],`...)
		} else {
			b = append(b, `","MsgContent":{"Text":"`...)
			b = append(b, text...)
			b = append(b, `"}}],`...)
		}
	case tim.CmdBeforeApplyJoinGroup:
		str("Requestor_Account", r.Users[0])
		str("ApplyMsg", text)
	case tim.CmdAfterNewMemberJoin:
		str("JoinType", "Apply")
		str("Operator_Account", r.Users[0])
		members("NewMemberList")
	case tim.CmdAfterMemberExit:
		if c == ClassKicked {
			str("ExitType", "Kicked")
			str("Operator_Account", "administrator")
		} else {
			str("ExitType", "Quit")
			str("Operator_Account", r.Users[0])
		}
		members("ExitMemberList")
	}
	b = append(b, `"EventTime":`...)
	b = strconv.AppendInt(b, now.UnixMilli(), 10)
	b = append(b, '}')
	return command, b
}
