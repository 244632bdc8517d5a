package tim

import (
	"bytes"
	"math"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// decodeMessage decodes the body of a Group.CallbackBeforeSendMsg or
// Group.CallbackAfterSendMsg (the callbacks most traffic is) in one pass
// over the bytes, reading only the fields the event types hold, without
// reflection. body is trimmed and starts with '{'.
//
// It gives exactly the event decodeStd (encoding/json) gives, or ok =
// false: it never refuses a body itself. Whenever a body is not plainly one
// of the shapes it knows it gives up and the caller decodes with
// encoding/json, which then accepts or refuses it with its own reasons.
// It gives up on: malformed JSON; a key spelled with an escape, a non-ASCII
// character or another case than the field's (encoding/json matches keys
// case-insensitively); a field given twice; null, or a value of another
// JSON type, where a field is read; a number with a sign, fraction,
// exponent or too many digits for its field; EventTime other than digits
// (as a number or a string) or ""; a string read into a field with invalid
// UTF-8 or a lone UTF-16 surrogate escape; nesting deeper than
// maxSkipDepth; a missing group, sender or element type; a body
// CallbackCommand that is not the command.
func decodeMessage(command string, body []byte) (ev Event, ok bool) {
	var m *BeforeSendMsg
	after := command == CmdAfterSendMsg
	if after {
		a := new(AfterSendMsg)
		m, ev = &a.BeforeSendMsg, a
	} else {
		m = new(BeforeSendMsg)
		ev = m
	}
	d := msgDecoder{b: body}
	if !d.consume('{') {
		return nil, false
	}
	var seen uint32
	for n := 0; ; n++ {
		key, done, ok := d.member(n)
		if !ok {
			return nil, false
		}
		if done {
			break
		}
		f := msgFieldOf(key, after)
		if f == fieldFolded {
			return nil, false
		}
		if f == fieldUnknown {
			if !d.skip(0) {
				return nil, false
			}
			continue
		}
		if seen&(1<<f) != 0 {
			return nil, false
		}
		seen |= 1 << f
		switch f {
		case fieldCommand, fieldGroupID, fieldType, fieldEventTime, fieldTopicID:
			ok = d.common(f, &m.Common, command)
		case fieldFrom:
			ok = d.strInto(&m.From)
		case fieldOperator:
			var s []byte
			if s, ok = d.str(); ok {
				if string(s) == m.From {
					m.Operator = m.From
				} else {
					m.Operator = string(s)
				}
			}
		case fieldRandom:
			var u uint64
			u, ok = d.uint(math.MaxUint32)
			m.Random = uint32(u) //nolint:gosec // G115: d.uint checked u <= MaxUint32
		case fieldMsgID:
			ok = d.strInto(&m.MsgID)
		case fieldOnlineOnly:
			var i int64
			i, ok = d.int(math.MinInt, math.MaxInt)
			m.OnlineOnlyFlag = int(i)
		case fieldMsgBody:
			m.MsgBody, ok = d.msgBody()
		case fieldCloudCustomData:
			ok = d.strInto(&m.CloudCustomData)
		case fieldGroupAtInfo:
			m.GroupAtInfo, ok = d.groupAtInfo()
		case fieldMsgSeq:
			var u uint64
			u, ok = d.uint(math.MaxUint64)
			ev.(*AfterSendMsg).MsgSeq = u
		case fieldMsgTime:
			ev.(*AfterSendMsg).MsgTime, ok = d.int(math.MinInt64, math.MaxInt64)
		}
		if !ok {
			return nil, false
		}
	}
	d.ws()
	if d.i != len(d.b) {
		return nil, false
	}
	m.CallbackCommand = command
	if validateMsg(m) != nil {
		return nil, false
	}
	ownContents(m.MsgBody)
	return ev, true
}

// Fields of BeforeSendMsg and AfterSendMsg, as bits of the set of fields
// seen.
const (
	fieldCommand = iota
	fieldGroupID
	fieldType
	fieldEventTime
	fieldTopicID
	fieldFrom
	fieldOperator
	fieldRandom
	fieldMsgID
	fieldOnlineOnly
	fieldMsgBody
	fieldCloudCustomData
	fieldGroupAtInfo
	fieldMsgSeq
	fieldMsgTime

	fieldUnknown = -1 // a key no field has: skipped
	fieldFolded  = -2 // a field's key in another case: encoding/json decides
)

// commonFieldOf names the field of Common key is (fieldCommand to
// fieldTopicID), or gives fieldUnknown.
func commonFieldOf(key string) int {
	switch key {
	case "CallbackCommand":
		return fieldCommand
	case "GroupId":
		return fieldGroupID
	case "Type":
		return fieldType
	case "EventTime":
		return fieldEventTime
	case "TopicId":
		return fieldTopicID
	}
	return fieldUnknown
}

// common reads the value of Common's field f (fieldCommand to fieldTopicID)
// into c. A CallbackCommand other than command (or empty) is refused.
func (d *msgDecoder) common(f int, c *Common, command string) bool {
	switch f {
	case fieldCommand:
		s, ok := d.str()
		return ok && (len(s) == 0 || string(s) == command)
	case fieldGroupID:
		return d.strInto(&c.GroupID)
	case fieldType:
		s, ok := d.str()
		c.Type = groupType(s)
		return ok
	case fieldEventTime:
		return d.eventTime(&c.EventTime)
	case fieldTopicID:
		return d.strInto(&c.TopicID)
	}
	return false
}

// msgFieldOf names the field key is, for a BeforeSendMsg or (after) an
// AfterSendMsg.
func msgFieldOf(key []byte, after bool) int {
	if f := commonFieldOf(string(key)); f != fieldUnknown {
		return f
	}
	switch string(key) {
	case "From_Account":
		return fieldFrom
	case "Operator_Account":
		return fieldOperator
	case "Random":
		return fieldRandom
	case "MsgId":
		return fieldMsgID
	case "OnlineOnlyFlag":
		return fieldOnlineOnly
	case "MsgBody":
		return fieldMsgBody
	case "CloudCustomData":
		return fieldCloudCustomData
	case "GroupAtInfo":
		return fieldGroupAtInfo
	case "MsgSeq":
		if after {
			return fieldMsgSeq
		}
	case "MsgTime":
		if after {
			return fieldMsgTime
		}
	}
	if folds(key, "CallbackCommand", "GroupId", "Type", "EventTime", "TopicId", "From_Account",
		"Operator_Account", "Random", "MsgId", "OnlineOnlyFlag", "MsgBody", "CloudCustomData",
		"GroupAtInfo") || after && folds(key, "MsgSeq", "MsgTime") {
		return fieldFolded
	}
	return fieldUnknown
}

// folds reports whether key equals one of names in another case. Keys are
// ASCII here (member refuses others), where encoding/json's case folding is
// bytes.EqualFold's.
func folds(key []byte, names ...string) bool {
	for _, name := range names {
		if len(key) == len(name) && bytes.EqualFold(key, []byte(name)) {
			return true
		}
	}
	return false
}

// groupType is NormalizeGroupType without allocating for the names the IM
// server sends.
func groupType(s []byte) string {
	switch string(s) {
	case GroupPublic:
		return GroupPublic
	case GroupPrivate, "Work":
		return GroupPrivate
	case GroupChatRoom, "Meeting":
		return GroupChatRoom
	case GroupAVChatRoom, "Live":
		return GroupAVChatRoom
	case GroupCommunity:
		return GroupCommunity
	case "":
		return ""
	}
	return string(s)
}

func elemType(s []byte) string {
	switch string(s) {
	case ElemText:
		return ElemText
	case ElemFace:
		return ElemFace
	case ElemLocation:
		return ElemLocation
	case ElemCustom:
		return ElemCustom
	case ElemImage:
		return ElemImage
	case ElemSound:
		return ElemSound
	case ElemFile:
		return ElemFile
	case ElemVideo:
		return ElemVideo
	}
	return string(s)
}

// msgBody reads MsgBody: an array of {MsgType, MsgContent} objects. Each
// MsgContent's raw bytes alias the body until ownContents copies them.
func (d *msgDecoder) msgBody() ([]MsgElem, bool) {
	out := []MsgElem{}
	var el MsgElem
	var seen uint8
	ok := d.objects(func(key []byte) bool {
		switch string(key) {
		case "MsgType":
			if seen&1 != 0 {
				return false
			}
			seen |= 1
			s, ok := d.str()
			el.MsgType = elemType(s)
			return ok
		case "MsgContent":
			if seen&2 != 0 {
				return false
			}
			seen |= 2
			return d.content(&el.MsgContent)
		}
		return !folds(key, "MsgType", "MsgContent") && d.skip(1)
	}, func() {
		out = append(out, el)
		el, seen = MsgElem{}, 0
	})
	return out, ok
}

// content reads a MsgContent object as MsgContent.UnmarshalJSON does when
// Text, Data, Desc and Ext are strings or absent.
func (d *msgDecoder) content(c *MsgContent) bool {
	d.ws()
	start := d.i
	if !d.consume('{') {
		return false
	}
	var seen uint8
	for k := 0; ; k++ {
		key, done, ok := d.member(k)
		if !ok {
			return false
		}
		if done {
			break
		}
		var dst *string
		var bit uint8
		switch string(key) {
		case "Text":
			dst, bit = &c.Text, 1
		case "Data":
			dst, bit = &c.Data, 2
		case "Desc":
			dst, bit = &c.Desc, 4
		case "Ext":
			dst, bit = &c.Ext, 8
		default:
			if folds(key, "Text", "Data", "Desc", "Ext") || !d.skip(2) {
				return false
			}
			continue
		}
		if seen&bit != 0 || !d.strInto(dst) {
			return false
		}
		seen |= bit
	}
	c.raw = d.b[start:d.i]
	return true
}

// ownContents copies the contents' raw bytes out of the body (which the
// caller may reuse) into one allocation.
func ownContents(body []MsgElem) {
	n := 0
	for i := range body {
		n += len(body[i].MsgContent.raw)
	}
	if n == 0 {
		return
	}
	buf := make([]byte, 0, n)
	for i := range body {
		c := &body[i].MsgContent
		if c.raw == nil {
			continue
		}
		start := len(buf)
		buf = append(buf, c.raw...)
		c.raw = buf[start:len(buf):len(buf)]
	}
}

// groupAtInfo reads GroupAtInfo: an array of {GroupAtAllFlag,
// GroupAt_Account} objects.
func (d *msgDecoder) groupAtInfo() ([]GroupAt, bool) {
	out := []GroupAt{}
	var at GroupAt
	var seen uint8
	ok := d.objects(func(key []byte) bool {
		switch string(key) {
		case "GroupAtAllFlag":
			i, ok := d.int(math.MinInt, math.MaxInt)
			at.AtAllFlag = int(i)
			ok = ok && seen&1 == 0
			seen |= 1
			return ok
		case "GroupAt_Account":
			ok := seen&2 == 0 && d.strInto(&at.Account)
			seen |= 2
			return ok
		}
		return !folds(key, "GroupAtAllFlag", "GroupAt_Account") && d.skip(1)
	}, func() {
		out = append(out, at)
		at, seen = GroupAt{}, 0
	})
	return out, ok
}

// objects reads an array of objects: field reads the value of each member
// of an object (the decoder is at the value), and end is called after each
// object. It stops with false at anything malformed or when field returns
// false. The three lists the fast path reads (MsgBody, GroupAtInfo and the
// member lists) are read so.
func (d *msgDecoder) objects(field func(key []byte) bool, end func()) bool {
	if !d.consume('[') {
		return false
	}
	for n := 0; ; n++ {
		done, ok := d.element(n)
		if !ok {
			return false
		}
		if done {
			return true
		}
		if !d.consume('{') {
			return false
		}
		for k := 0; ; k++ {
			key, done, ok := d.member(k)
			if !ok {
				return false
			}
			if done {
				break
			}
			if !field(key) {
				return false
			}
		}
		end()
	}
}

// maxSkipDepth bounds the nesting of skipped values the fast path follows;
// deeper bodies are left to encoding/json.
const maxSkipDepth = 32

// msgDecoder reads JSON from b at i. Every method returns false when the
// input is not what it expects; the decoding then gives up.
type msgDecoder struct {
	b []byte
	i int
}

// ws skips JSON whitespace.
func (d *msgDecoder) ws() {
	for d.i < len(d.b) {
		switch d.b[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

// consume skips whitespace and the byte c.
func (d *msgDecoder) consume(c byte) bool {
	d.ws()
	if d.i < len(d.b) && d.b[d.i] == c {
		d.i++
		return true
	}
	return false
}

// member moves to the n-th member of an object whose '{' was read: it
// returns the member's key, positioned at its value, or done after the
// closing '}'. Keys with escapes or non-ASCII bytes are refused.
func (d *msgDecoder) member(n int) (key []byte, done, ok bool) {
	d.ws()
	if d.i >= len(d.b) {
		return nil, false, false
	}
	if d.b[d.i] == '}' {
		d.i++
		return nil, true, true
	}
	if n > 0 {
		if d.b[d.i] != ',' {
			return nil, false, false
		}
		d.i++
		d.ws()
	}
	if d.i >= len(d.b) || d.b[d.i] != '"' {
		return nil, false, false
	}
	start := d.i + 1
	for i := start; i < len(d.b); i++ {
		c := d.b[i]
		if c == '"' {
			key = d.b[start:i]
			d.i = i + 1
			if !d.consume(':') {
				return nil, false, false
			}
			return key, false, true
		}
		if c < 0x20 || c == '\\' || c >= utf8.RuneSelf {
			return nil, false, false
		}
	}
	return nil, false, false
}

// element moves to the n-th element of an array whose '[' was read, or
// returns done after the closing ']'.
func (d *msgDecoder) element(n int) (done, ok bool) {
	d.ws()
	if d.i >= len(d.b) {
		return false, false
	}
	if d.b[d.i] == ']' {
		d.i++
		return true, true
	}
	if n > 0 {
		if d.b[d.i] != ',' {
			return false, false
		}
		d.i++
	}
	return false, true
}

// strInto reads a string value into *dst.
func (d *msgDecoder) strInto(dst *string) bool {
	raw, escaped, ok := d.strRaw()
	switch {
	case !ok:
		return false
	case escaped:
		*dst, ok = unescape(raw)
		return ok
	}
	*dst = string(raw)
	return true
}

// str reads a string value and returns its content with escapes replaced.
// It is for values compared or looked up rather than kept.
func (d *msgDecoder) str() ([]byte, bool) {
	raw, escaped, ok := d.strRaw()
	if !ok || !escaped {
		return raw, ok
	}
	s, ok := unescape(raw)
	return []byte(s), ok
}

// strRaw reads a string value and returns its content as it is in the
// body, and whether it has escapes. It refuses invalid UTF-8, which
// encoding/json would replace with U+FFFD.
func (d *msgDecoder) strRaw() (raw []byte, escaped, ok bool) {
	d.ws()
	start := d.i + 1
	end, escaped, ascii, ok := d.scanString()
	if !ok {
		return nil, false, false
	}
	raw = d.b[start:end]
	// Escapes are ASCII and ASCII bytes never continue a UTF-8 sequence,
	// so checking the raw bytes checks every byte taken as it is.
	if !ascii && !utf8.Valid(raw) {
		return nil, false, false
	}
	return raw, escaped, true
}

// scanString reads past the string at d.i and returns the offset of its
// closing quote, whether it has escapes, and whether all its bytes are
// ASCII. It checks the escapes' syntax and refuses control characters, as
// JSON does; any other byte is allowed.
func (d *msgDecoder) scanString() (end int, escaped, ascii, ok bool) {
	if d.i >= len(d.b) || d.b[d.i] != '"' {
		return 0, false, false, false
	}
	ascii = true
	for i := d.i + 1; i < len(d.b); i++ {
		switch c := d.b[i]; {
		case c == '"':
			d.i = i + 1
			return i, escaped, ascii, true
		case c < 0x20:
			return 0, false, false, false
		case c >= utf8.RuneSelf:
			ascii = false
		case c == '\\':
			escaped = true
			if i+1 >= len(d.b) {
				return 0, false, false, false
			}
			switch d.b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i++
			case 'u':
				if hex4(d.b[i+2:]) < 0 {
					return 0, false, false, false
				}
				i += 5
			default:
				return 0, false, false, false
			}
		}
	}
	return 0, false, false, false
}

// unescape returns raw, a string's content whose escapes scanString
// checked, with its escapes replaced. It refuses a surrogate escape that is
// not half of a pair, which encoding/json would replace with U+FFFD.
func unescape(raw []byte) (string, bool) {
	var b strings.Builder
	b.Grow(len(raw))
	for len(raw) > 0 {
		i := bytes.IndexByte(raw, '\\')
		if i < 0 {
			b.Write(raw)
			break
		}
		b.Write(raw[:i])
		raw = raw[i:]
		n := 2
		switch raw[1] {
		case 'b':
			b.WriteByte('\b')
		case 'f':
			b.WriteByte('\f')
		case 'n':
			b.WriteByte('\n')
		case 'r':
			b.WriteByte('\r')
		case 't':
			b.WriteByte('\t')
		case 'u':
			r := hex4(raw[2:])
			n = 6
			if utf16.IsSurrogate(r) {
				r2 := rune(-1)
				if len(raw) >= 12 && raw[6] == '\\' && raw[7] == 'u' {
					r2 = hex4(raw[8:])
				}
				r = utf16.DecodeRune(r, r2)
				if r2 < 0 || r == utf8.RuneError {
					return "", false
				}
				n = 12
			}
			b.WriteRune(r)
		default: // '"', '\\', '/'
			b.WriteByte(raw[1])
		}
		raw = raw[n:]
	}
	return b.String(), true
}

// hex4 reads four hex digits, or returns -1.
func hex4(b []byte) rune {
	if len(b) < 4 {
		return -1
	}
	var r rune
	for _, c := range b[:4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			c = c - 'A' + 10
		default:
			return -1
		}
		r = r<<4 | rune(c)
	}
	return r
}

// digits reads a JSON integer made of digits only (no sign, fraction or
// exponent, no leading zero) of at most 19 digits.
func (d *msgDecoder) digits() (uint64, bool) {
	start := d.i
	var u uint64
	for d.i < len(d.b) && '0' <= d.b[d.i] && d.b[d.i] <= '9' {
		u = u*10 + uint64(d.b[d.i]-'0')
		d.i++
	}
	n := d.i - start
	if n == 0 || n > 19 || (n > 1 && d.b[start] == '0') {
		return 0, false
	}
	if d.i < len(d.b) {
		switch d.b[d.i] {
		case '.', 'e', 'E':
			return 0, false
		}
	}
	return u, true
}

// uint reads a number of an unsigned field whose largest value is hi.
func (d *msgDecoder) uint(hi uint64) (uint64, bool) {
	d.ws()
	u, ok := d.digits()
	return u, ok && u <= hi
}

// int reads a number of a signed field holding lo to hi.
func (d *msgDecoder) int(lo, hi int64) (int64, bool) {
	d.ws()
	neg := d.i < len(d.b) && d.b[d.i] == '-'
	if neg {
		d.i++
	}
	u, ok := d.digits()
	if !ok || u > math.MaxInt64 {
		return 0, false
	}
	v := int64(u)
	if neg {
		v = -v
	}
	return v, v >= lo && v <= hi
}

// eventTime reads EventTime as EventTime.UnmarshalJSON does for a number
// of digits, a string of digits or "".
func (d *msgDecoder) eventTime(t *EventTime) bool {
	d.ws()
	if d.i < len(d.b) && d.b[d.i] == '"' {
		s, ok := d.str()
		if !ok || len(s) > 18 {
			return false
		}
		var v int64
		for _, c := range s {
			if c < '0' || c > '9' {
				return false
			}
			v = v*10 + int64(c-'0')
		}
		*t = EventTime(v)
		return true
	}
	v, ok := d.int(math.MinInt64, math.MaxInt64)
	*t = EventTime(v)
	return ok
}

// skip reads past any JSON value, checking its syntax.
func (d *msgDecoder) skip(depth int) bool {
	if depth > maxSkipDepth {
		return false
	}
	d.ws()
	if d.i >= len(d.b) {
		return false
	}
	switch c := d.b[d.i]; c {
	case '{':
		d.i++
		for n := 0; ; n++ {
			_, done, ok := d.skipMember(n)
			if !ok {
				return false
			}
			if done {
				return true
			}
			if !d.skip(depth + 1) {
				return false
			}
		}
	case '[':
		d.i++
		for n := 0; ; n++ {
			done, ok := d.element(n)
			if !ok {
				return false
			}
			if done {
				return true
			}
			if !d.skip(depth + 1) {
				return false
			}
		}
	case '"':
		return d.skipString()
	case 't':
		return d.literal("true")
	case 'f':
		return d.literal("false")
	case 'n':
		return d.literal("null")
	}
	return d.skipNumber()
}

// skipMember is member for objects that are skipped: any key is accepted.
func (d *msgDecoder) skipMember(n int) (key []byte, done, ok bool) {
	d.ws()
	if d.i >= len(d.b) {
		return nil, false, false
	}
	if d.b[d.i] == '}' {
		d.i++
		return nil, true, true
	}
	if n > 0 {
		if d.b[d.i] != ',' {
			return nil, false, false
		}
		d.i++
		d.ws()
	}
	if !d.skipString() || !d.consume(':') {
		return nil, false, false
	}
	return nil, false, true
}

// skipString reads past a string, checking its syntax only: invalid
// UTF-8 is allowed, as encoding/json allows it.
func (d *msgDecoder) skipString() bool {
	_, _, _, ok := d.scanString()
	return ok
}

func (d *msgDecoder) literal(word string) bool {
	if !bytes.HasPrefix(d.b[d.i:], []byte(word)) {
		return false
	}
	d.i += len(word)
	return true
}

// skipNumber reads past a number of JSON's grammar:
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (d *msgDecoder) skipNumber() bool {
	if d.i < len(d.b) && d.b[d.i] == '-' {
		d.i++
	}
	switch {
	case d.i >= len(d.b):
		return false
	case d.b[d.i] == '0':
		d.i++
	case '1' <= d.b[d.i] && d.b[d.i] <= '9':
		d.skipDigits()
	default:
		return false
	}
	if d.i < len(d.b) && d.b[d.i] == '.' {
		d.i++
		if d.skipDigits() == 0 {
			return false
		}
	}
	if d.i < len(d.b) && (d.b[d.i] == 'e' || d.b[d.i] == 'E') {
		d.i++
		if d.i < len(d.b) && (d.b[d.i] == '+' || d.b[d.i] == '-') {
			d.i++
		}
		if d.skipDigits() == 0 {
			return false
		}
	}
	return true
}

func (d *msgDecoder) skipDigits() int {
	start := d.i
	for d.i < len(d.b) && '0' <= d.b[d.i] && d.b[d.i] <= '9' {
		d.i++
	}
	return d.i - start
}
