// Package rules reads the rule file community managers write, validates it
// and compiles every expression once, against a typed environment, into a
// Set. Evaluation order and verdict merging belong to policy; this package
// gives policy compiled programs and the environment to run them in.
package rules

import (
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/vm"

	"github.com/timguard/timguard/rules/wordlist"
	"github.com/timguard/timguard/tim"
)

// Set is a compiled rule file. It is immutable and safe for concurrent use.
type Set struct {
	File    string
	Version string // the first 12 hex digits of the file's SHA-256
	Lists   map[string][]string
	// Counters are the sliding windows the file declares.
	Counters []*Counter
	// Rules in file order.
	Rules     []*Rule
	Schedules []*Schedule
	// StrikeDecay is how long a strike counts (strikes.decay).
	StrikeDecay time.Duration
	// UserTTL is how long a user's activity in a group (user.first_seen,
	// user.messages) is kept after they were last seen there
	// (users.forget_after).
	UserTTL time.Duration

	plans  map[Kind]*Plan
	byName map[string]*Rule
	boxed  map[string]any // lists.NAME, lists.NAME#set and lists.NAME#words, boxed once
	envs   sync.Pool
	// words holds the lists whose words expressions look for.
	words       map[string]*wordlist.List
	defaultNorm *wordlist.Normalizer
	listFiles   []string
	// reads are the event variables something can read of the environment
	// and readCounters the counters (findReaders): Fill sets only those.
	reads        reads
	readCounters []*Counter
}

// Plan is what evaluating one event kind needs, worked out at load time.
type Plan struct {
	Kind  Kind
	Rules []*Rule
	// Counters to touch (the counter is `on` this kind) or only read (a
	// rule of this kind reads it).
	Counters []CounterUse
	// Budgeted lists the rules with a budget.
	Budgeted []*Rule
	// UsesModes is true when a rule of this kind depends on a mode.
	UsesModes bool
	// ReadsURLs is true when an expression of this kind reads
	// message.urls, which costs a scan of the text.
	ReadsURLs bool
	// Users says what events of this kind do with their subjects' activity
	// in the group (user.first_seen, user.messages).
	Users UserActivity
}

// UserActivity says what one event kind does with its subjects' activity.
// Nothing is read or recorded unless some rule of the file reads
// user.first_seen or user.messages.
type UserActivity struct {
	// Read: a rule of this kind reads the activity.
	Read bool
	// Seen: events of this kind are sightings of their subjects (messages,
	// and members joining).
	Seen bool
	// Count: events of this kind count a message. Only one kind counts:
	// message when rules handle messages, otherwise message_sent.
	Count bool
}

// Any reports whether the kind reads or records activity.
func (u UserActivity) Any() bool { return u.Read || u.Seen }

// CounterUse is one counter an event kind needs.
type CounterUse struct {
	Counter *Counter
	Touch   bool
}

// Plan returns the plan for kind (never nil).
func (s *Set) Plan(k Kind) *Plan {
	if p := s.plans[k]; p != nil {
		return p
	}
	return &Plan{Kind: k}
}

// Rule returns the rule called name, or nil.
func (s *Set) Rule(name string) *Rule { return s.byName[name] }

// Counter is a sliding window from `counters:`.
type Counter struct {
	Name   string
	On     []Kind
	Window time.Duration
	Line   int
	// Index is the counter's position in Set.Counters and Input.Counters.
	Index int
	key   *program
	cond  *program
	// varName is counters.NAME, the environment's key for the counter,
	// made once: building it per event cost an allocation per counter.
	varName string
	// keyParts is the key expression when it only joins event fields and
	// string literals with + (the common group.id + "/" + user.id):
	// KeyFor then appends the parts itself instead of running the
	// expression, whose every + allocates a string. nil otherwise.
	keyParts []keyPart
}

// Definition describes what the counter counts (its kinds, window, key and
// condition), so that two rule sets can tell whether a counter of one name
// counts the same in both.
func (c *Counter) Definition() string {
	var b strings.Builder
	for _, k := range c.On {
		b.WriteString(string(k))
		b.WriteByte(',')
	}
	b.WriteString("|" + c.Window.String() + "|")
	if c.key != nil {
		b.WriteString(c.key.src)
	}
	b.WriteByte('|')
	if c.cond != nil {
		b.WriteString(c.cond.src)
	}
	return b.String()
}

// KeyFor returns the window key for the current subject, and whether the
// subject counts (the counter's `if` holds). The key is returned either way:
// an event that does not count still reads the count.
func (c *Counter) KeyFor(e *Env) (key string, counts bool, err error) {
	key, ok := c.joinKey(e)
	if !ok {
		key, err = c.keyByVM(e)
		if err != nil {
			return "", false, err
		}
	}
	if c.cond == nil {
		return key, true, nil
	}
	counts, err = e.runBool(c.cond)
	if err != nil {
		return key, false, fmt.Errorf("counter %s: if: %w", c.Name, err)
	}
	return key, counts, nil
}

// keyByVM is the counter's key as the expression computes it.
func (c *Counter) keyByVM(e *Env) (string, error) {
	out, err := e.run(c.key)
	if err != nil {
		return "", fmt.Errorf("counter %s: key: %w", c.Name, err)
	}
	s, _ := out.(string)
	return c.Name + "|" + s, nil
}

// joinKey is the counter's key for a key expression of keyParts, appended
// in e's buffer and made a string once. ok is false when the key is not
// such an expression or a field does not hold a string (the expression
// then says what is wrong).
func (c *Counter) joinKey(e *Env) (string, bool) {
	if c.keyParts == nil {
		return "", false
	}
	start := e.startKey()
	e.keys.WriteString(c.Name)
	e.keys.WriteByte('|')
	for _, p := range c.keyParts {
		if p.field == "" {
			e.keys.WriteString(p.lit)
			continue
		}
		s, ok := e.m[p.field].(string)
		if !ok {
			return "", false
		}
		e.keys.WriteString(s)
	}
	return e.keys.String()[start:], true
}

// keyRoom is the room a new key buffer of an Env gets: a few callbacks'
// keys.
const keyRoom = 1 << 10

// startKey readies e.keys for a key and returns where it starts. A buffer
// with less than a common key's room left is left to the keys cut from it
// and a new one begun: strings.Builder never changes bytes it has written,
// so every key cut from it stays as it is, wherever it is kept. (A store
// that keeps a key for long copies it, not to keep the whole buffer.)
func (e *Env) startKey() int {
	if e.keys.Cap()-e.keys.Len() < 128 {
		e.keys = strings.Builder{}
		e.keys.Grow(keyRoom)
	}
	return e.keys.Len()
}

// Key returns parts joined, cut from the buffer counter keys are put
// together in, without an allocation of its own (see startKey).
func (e *Env) Key(parts ...string) string {
	start := e.startKey()
	for _, p := range parts {
		e.keys.WriteString(p)
	}
	return e.keys.String()[start:]
}

// keyPart is a string literal (field "") or a string field of the
// environment, one operand of a key expression that joins them with +.
type keyPart struct {
	lit, field string
}

// joinParts flattens a key expression that only joins string fields and
// string literals with + into its operands, left to right; ok is false for
// anything else. n is the checked (and optimized) tree expr runs.
func joinParts(n ast.Node) (parts []keyPart, ok bool) {
	switch n := n.(type) {
	case *ast.BinaryNode:
		if n.Operator != "+" {
			return nil, false
		}
		left, ok := joinParts(n.Left)
		if !ok {
			return nil, false
		}
		right, ok := joinParts(n.Right)
		if !ok {
			return nil, false
		}
		return append(left, right...), true
	case *ast.StringNode:
		return []keyPart{{lit: n.Value}}, true
	case *ast.ConstantNode:
		if s, ok := n.Value.(string); ok {
			return []keyPart{{lit: s}}, true
		}
	case *ast.IdentifierNode:
		if _, ok := fieldProto[n.Value].(string); ok {
			return []keyPart{{field: n.Value}}, true
		}
	}
	return nil, false
}

// Reply is a custom answer to a refused event.
type Reply struct {
	Code int    `json:"code"`
	Text string `json:"text,omitempty"`
}

// Budget caps a rule's actions per group.
type Budget struct {
	Actions int
	Per     time.Duration
}

// defaultExempt are the roles every rule leaves alone unless it says
// otherwise.
var defaultExempt = []Role{RoleAppAdmin, RoleOwner, RoleAdmin}

// Rule is one compiled rule.
type Rule struct {
	Name        string
	Description string
	On          []Kind
	Verdict     Verdict
	Reply       *Reply
	Rewrite     *Rewriter
	Stop        bool
	Actions     []*Action
	Shadow      bool
	// Exempt lists the roles this rule does not apply to.
	Exempt []Role
	Budget *Budget
	// Mode, when set, makes the rule apply only while that mode is on.
	Mode  string
	Tests []*Test
	Line  int
	// Source is the `if` expression as written.
	Source string

	cond     *program
	counters []string
	// replyText is the reply's text when it holds placeholders.
	replyText *template
	// wordListNames and wordLists are the lists whose words the rule looks
	// for ({words}, the audit record's words).
	wordListNames []string
	wordLists     []*wordlist.List
}

// Match evaluates the rule's condition.
func (r *Rule) Match(e *Env) (bool, error) { return e.runBool(r.cond) }

// IsExempt reports whether role is exempt from the rule.
func (r *Rule) IsExempt(role Role) bool {
	for _, x := range r.Exempt {
		if x == role {
			return true
		}
	}
	return false
}

// AppliesToRoles lists the privileged roles (owner, admin, app_admin) the
// rule's actions may act on.
func (r *Rule) AppliesToRoles() []Role {
	var out []Role
	for _, role := range []Role{RoleOwner, RoleAdmin, RoleAppAdmin} {
		if !r.IsExempt(role) {
			out = append(out, role)
		}
	}
	return out
}

// Counters lists the counters the rule's expressions read (its condition,
// action durations and rewrite).
func (r *Rule) Counters() []string { return r.counters }

// PermanentSeconds is the MuteTime the IM server reads as "forever".
const PermanentSeconds = 4294967295

// Action is one compiled entry of `actions:`.
type Action struct {
	Kind     ActionKind
	Text     string
	N        int
	Announce string
	Line     int
	duration *durationSpec
	// text is a warn text that holds placeholders.
	text *template
}

type durationSpec struct {
	fixed time.Duration
	prog  *program
	src   string
}

// Resolved is an action with its values worked out for one subject.
type Resolved struct {
	Kind     ActionKind `json:"kind"`
	Seconds  int64      `json:"seconds,omitempty"`
	Text     string     `json:"text,omitempty"`
	N        int        `json:"n,omitempty"`
	Announce string     `json:"announce,omitempty"`
}

func (r Resolved) String() string {
	switch {
	case r.Seconds == PermanentSeconds:
		return string(r.Kind) + " permanent"
	case r.Seconds > 0:
		return string(r.Kind) + " " + (time.Duration(r.Seconds) * time.Second).String()
	case r.N > 0:
		return fmt.Sprintf("%s %d", r.Kind, r.N)
	case r.Text != "":
		return fmt.Sprintf("%s %q", r.Kind, r.Text)
	}
	return string(r.Kind)
}

// Resolve works out the action's duration for the current subject.
func (a *Action) Resolve(e *Env) (Resolved, error) {
	out := Resolved{Kind: a.Kind, Text: a.Text, N: a.N, Announce: a.Announce}
	if a.duration == nil {
		return out, nil
	}
	d := a.duration.fixed
	if a.duration.prog != nil {
		v, err := e.run(a.duration.prog)
		if err != nil {
			return out, fmt.Errorf("%s: %w", a.Kind, err)
		}
		dv, ok := v.(time.Duration)
		if !ok {
			return out, fmt.Errorf("%s: %q gave %T, not a duration", a.Kind, a.duration.src, v)
		}
		if dv <= 0 {
			// Only the literal permanent means forever: an expression that
			// reaches zero or below is a mistake, not a life sentence.
			return out, fmt.Errorf("%s: %w", a.Kind, &EvalError{Source: a.duration.src,
				Reason: fmt.Sprintf("%q gave %s; a duration must be positive (write permanent for forever)", a.duration.src, dv)})
		}
		d = dv
	}
	out.Seconds = durationSeconds(d)
	return out, nil
}

// durationSeconds rounds up to whole seconds, at least 1, capped at the
// permanent value (a negative duration means permanent too).
func durationSeconds(d time.Duration) int64 {
	if d < 0 {
		return PermanentSeconds
	}
	s := int64(d / time.Second)
	if d%time.Second != 0 {
		s++ // Rounding up by adding a second first would overflow near the largest duration.
	}
	if s < 1 {
		s = 1
	}
	if s > PermanentSeconds {
		s = PermanentSeconds
	}
	return s
}

// Rewriter turns a message into the one delivered instead.
type Rewriter struct {
	text *program
	mask *program
	with string
	// listName is set for mask: lists.NAME, which masks through the
	// list's normalization (list).
	listName string
	list     *wordlist.List
}

// Apply rewrites body for the current subject. Elements other than text are
// passed on untouched.
func (rw *Rewriter) Apply(e *Env, body []tim.MsgElem) ([]tim.MsgElem, error) {
	if rw.text != nil {
		v, err := e.run(rw.text)
		if err != nil {
			return nil, fmt.Errorf("rewrite text: %w", err)
		}
		text, _ := v.(string)
		out := make([]tim.MsgElem, 0, len(body)+1)
		placed := false
		for _, el := range body {
			if el.MsgType != tim.ElemText {
				out = append(out, el)
				continue
			}
			if !placed {
				out = append(out, tim.MsgElem{MsgType: tim.ElemText, MsgContent: tim.TextContent(text)})
				placed = true
			}
		}
		if !placed {
			out = append(out, tim.MsgElem{MsgType: tim.ElemText, MsgContent: tim.TextContent(text)})
		}
		return out, nil
	}
	mask := func(text string) string { return rw.list.Mask(&e.words.scratch, text, rw.maskWith()) }
	if rw.list == nil {
		v, err := e.run(rw.mask)
		if err != nil {
			return nil, fmt.Errorf("rewrite mask: %w", err)
		}
		words := toStrings(v)
		mask = func(text string) string { return maskWords(text, words, rw.with) }
	}
	out := make([]tim.MsgElem, len(body))
	for i, el := range body {
		out[i] = el
		if el.MsgType == tim.ElemText {
			if masked := mask(el.MsgContent.Text); masked != el.MsgContent.Text {
				out[i] = tim.MsgElem{MsgType: tim.ElemText, MsgContent: tim.TextContent(masked)}
			}
		}
	}
	return out, nil
}

func (rw *Rewriter) maskWith() string {
	if rw.with == "" {
		return "*"
	}
	return rw.with
}

func toStrings(v any) []string {
	switch vs := v.(type) {
	case []string:
		return vs
	case []any:
		out := make([]string, 0, len(vs))
		for _, x := range vs {
			if s, ok := x.(string); ok {
				out = append(out, s)
			}
		}
		return out
	case string:
		return []string{vs}
	}
	return nil
}

// maskWords replaces every case-insensitive occurrence of each word with the
// mask character, one per rune.
func maskWords(text string, words []string, with string) string {
	if with == "" {
		with = "*"
	}
	runes := []rune(text)
	lower := []rune(strings.ToLower(text))
	if len(lower) != len(runes) {
		// Lowering changed the length (rare scripts): match exactly instead.
		lower = runes
	}
	masked := make([]bool, len(runes))
	for _, w := range words {
		wr := []rune(strings.ToLower(w))
		if len(wr) == 0 {
			continue
		}
		for i := 0; i+len(wr) <= len(lower); i++ {
			if string(lower[i:i+len(wr)]) == string(wr) {
				for j := i; j < i+len(wr); j++ {
					masked[j] = true
				}
			}
		}
	}
	var b strings.Builder
	for i, r := range runes {
		if masked[i] {
			b.WriteString(with)
		} else {
			b.WriteRune(r)
		}
	}
	return b.String()
}

// Schedule is a compiled entry of `schedules:`.
type Schedule struct {
	Name     string
	Cron     string
	Timezone string
	Location *time.Location
	Groups   []string
	Actions  []*Action
	// Mode switches a rule mode on for a while.
	Mode *ModeSwitch
	Line int
}

// ModeSwitch is `mode: {name: night, for: 8h}`.
type ModeSwitch struct {
	Name string
	For  time.Duration
}

// Env is the environment one subject's expressions run in. Get one with
// Set.Env, fill it, and Release it when done. It is not safe for concurrent
// use. Fill sets only what the set's programs and Rule.MatchedWords read
// (Set.findReaders): code that reads m outside a program must be known
// there, or it reads nil.
type Env struct {
	set   *Set
	m     map[string]any
	vm    vm.VM
	words *wordEnv
	// keys is where counter keys are put together; each key is a string
	// cut from it (startKey).
	keys strings.Builder
	// userID is the subject user.id holds, boxed as userBox: the engine
	// sets the same subject for its counter keys and again for its
	// rules, and boxing a string allocates.
	userID  string
	userBox any
}

// Env returns an environment for this set, from a pool.
func (s *Set) Env() *Env {
	if e, ok := s.envs.Get().(*Env); ok {
		return e
	}
	e := &Env{set: s, m: make(map[string]any, len(fieldProto)+len(s.Counters)+len(s.boxed)+1)}
	for k, v := range s.boxed {
		e.m[k] = v
	}
	e.words = &wordEnv{norm: s.defaultNorm}
	e.m[varWords] = e.words
	return e
}

// Release returns e to its set's pool.
func (e *Env) Release() { e.set.envs.Put(e) }

// Fill sets every variable the set can read from in (the others nothing
// reads). Counters missing from in read as 0.
func (e *Env) Fill(in *Input) {
	m, r := e.m, e.set.reads
	if r&readEvent != 0 {
		m[varEvent] = boxKind(in.Kind)
	}
	if r&readNow != 0 {
		m[varNow] = in.Now
	}
	if r&readGroupID != 0 {
		m[varGroupID] = in.GroupID
	}
	if r&readGroupType != 0 {
		m[varGroupType] = boxName(in.GroupType)
	}
	e.SetUser(in.UserID, in.UserRole, in.UserStrikes)
	e.SetActivity(in.UserFirstSeen, in.UserMessages)
	if r&readGroupTopic != 0 {
		m[varGroupTopic] = in.TopicID
	}
	if r&readOperatorID != 0 {
		m[varOperatorID] = in.OperatorID
	}
	e.SetText(in.Text)
	if r&readTypes != 0 {
		m[varTypes] = boxList(in.Types)
	}
	if r&readURLs != 0 {
		m[varURLs] = boxList(in.URLs)
	}
	if r&readMentions != 0 {
		m[varMentions] = boxList(in.Mentions)
	}
	if r&readAtAll != 0 {
		m[varAtAll] = in.AtAll
	}
	if r&readApplyMsg != 0 {
		m[varApplyMsg] = in.ApplyMsg
	}
	if r&readJoinType != 0 {
		m[varJoinType] = boxName(in.JoinType)
	}
	if r&readExitType != 0 {
		m[varExitType] = boxName(in.ExitType)
	}
	e.SetCounters(in.Counters)
}

// SetUser changes only the subject's fields, for events evaluated per
// member.
func (e *Env) SetUser(id string, role Role, strikes int) {
	r := e.set.reads
	if r&readUserID != 0 {
		e.m[varUserID] = e.boxUser(id)
	}
	if r&readUserRole != 0 {
		e.m[varUserRole] = boxRole(role) // expressions compare it with strings
	}
	if r&readUserStrikes != 0 {
		e.m[varUserStrikes] = strikes
	}
}

// boxUser is id boxed, once per subject.
func (e *Env) boxUser(id string) any {
	if e.userBox == nil || id != e.userID {
		e.userID, e.userBox = id, id
	}
	return e.userBox
}

// boxRole is string(role) as an expression reads it, boxed without an
// allocation for the roles there are (an interface holding a constant
// needs none).
func boxRole(role Role) any {
	switch role {
	case "":
		return ""
	case RoleMember:
		return string(RoleMember)
	case RoleAdmin:
		return string(RoleAdmin)
	case RoleOwner:
		return string(RoleOwner)
	case RoleAppAdmin:
		return string(RoleAppAdmin)
	}
	return string(role)
}

// boxKind is string(kind), boxed without an allocation for the kinds there
// are.
func boxKind(k Kind) any {
	switch k {
	case "":
		return ""
	case JoinRequest:
		return string(JoinRequest)
	case Invite:
		return string(Invite)
	case Message:
		return string(Message)
	case MessageSent:
		return string(MessageSent)
	case MemberJoined:
		return string(MemberJoined)
	case MemberLeft:
		return string(MemberLeft)
	case GroupDestroyed:
		return string(GroupDestroyed)
	}
	return string(k)
}

// boxName is a group type, join type or exit type boxed without an
// allocation for the names the IM server uses.
func boxName(t string) any {
	switch t {
	case "":
		return ""
	case tim.GroupPrivate:
		return tim.GroupPrivate
	case tim.GroupPublic:
		return tim.GroupPublic
	case tim.GroupChatRoom:
		return tim.GroupChatRoom
	case tim.GroupAVChatRoom:
		return tim.GroupAVChatRoom
	case tim.GroupCommunity:
		return tim.GroupCommunity
	case "Apply":
		return "Apply"
	case "Invited":
		return "Invited"
	case "Kicked":
		return "Kicked"
	case "Quit":
		return "Quit"
	}
	return t
}

// SetActivity changes the subject's user.first_seen and user.messages, for
// events evaluated per member.
func (e *Env) SetActivity(firstSeen time.Time, messages int) {
	r := e.set.reads
	if r&readFirstSeen != 0 {
		e.m[varFirstSeen] = boxTime(firstSeen)
	}
	if r&readMessages != 0 {
		e.m[varMessages] = messages
	}
}

// zeroTime is the zero time boxed once: most events read no first
// sighting.
var zeroTime any = time.Time{}

func boxTime(t time.Time) any {
	if t.IsZero() {
		return zeroTime
	}
	return t
}

// SetText replaces message.text, so that a rewrite sees what earlier
// rewrites made of the message.
func (e *Env) SetText(text string) {
	e.words.matched = e.words.matched[:0]
	r := e.set.reads
	var boxed any
	if r&readText != 0 {
		boxed = text
		e.m[varText] = boxed
	}
	if r&readTextLower == 0 {
		return
	}
	// A text already in lower case is boxed once for both.
	if lower := strings.ToLower(text); lower != text {
		e.m[varTextLower] = lower
	} else if boxed != nil {
		e.m[varTextLower] = boxed
	} else {
		e.m[varTextLower] = text
	}
}

// SetCounters sets counters.NAME from values indexed like Set.Counters, for
// the counters the set reads.
func (e *Env) SetCounters(values []int) {
	for _, c := range e.set.readCounters {
		v := 0
		if i := c.Index; i < len(values) {
			v = values[i]
		}
		name := c.varName
		if name == "" {
			name = prefixCounters + c.Name
		}
		e.m[name] = v
	}
}

// emptyList is an empty list boxed once: most events have no URLs, no
// mentions, and so on.
var emptyList any = []string{}

func boxList(s []string) any {
	if len(s) == 0 {
		return emptyList
	}
	return s
}

func (e *Env) run(p *program) (any, error) {
	out, err := e.vm.Run(p.prog, e.m)
	if err != nil {
		return nil, evalError(err, p.src)
	}
	return out, nil
}

func (e *Env) runBool(p *program) (bool, error) {
	out, err := e.run(p)
	if err != nil {
		return false, err
	}
	b, _ := out.(bool)
	return b, nil
}

// program is a compiled expression.
type program struct {
	src  string
	prog *vm.Program
	use  usage
}

// Summary is a short description of the set for logs.
func (s *Set) Summary() string {
	kinds := make([]string, 0, len(s.plans))
	for k, p := range s.plans {
		if len(p.Rules) > 0 {
			kinds = append(kinds, fmt.Sprintf("%s=%d", k, len(p.Rules)))
		}
	}
	sort.Strings(kinds)
	return fmt.Sprintf("%d rules (%s), %d counters, %d lists, %d schedules, version %s",
		len(s.Rules), strings.Join(kinds, " "), len(s.Counters), len(s.Lists), len(s.Schedules), s.Version)
}
