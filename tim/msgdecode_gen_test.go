package tim

import (
	"bytes"
	"math/rand/v2"
	"strconv"
	"testing"
)

// TestMessageDecoderAgreesWithEncodingJSONOnGeneratedBodies builds message
// bodies from the pieces that make decoders disagree (keys in other cases,
// escaped or repeated; null and mistyped values; numbers of every shape;
// escapes, surrogates, invalid UTF-8; nested unknown fields; whitespace)
// and checks that DecodeCallback gives exactly encoding/json's result for
// each, and that a fair share is read by the message decoder itself.
func TestMessageDecoderAgreesWithEncodingJSONOnGeneratedBodies(t *testing.T) {
	n := 20000
	if testing.Short() {
		n = 2000
	}
	r := rand.New(rand.NewPCG(14, 2))
	fast := 0
	for i := range n {
		// A third of the bodies are plain, to see that the message decoder
		// reads them; the others are odd in a place or two, or in many.
		g := bodyGen{r: r, clean: i%3 == 0, oddOneIn: []int{0, 40, 10}[i%3]}
		command := CmdBeforeSendMsg
		if r.IntN(2) == 0 {
			command = CmdAfterSendMsg
		}
		body := g.message(command)
		want, wantErr := decodeStd(command, bytes.TrimSpace(body))
		if _, ok := decodeMessage(command, bytes.TrimSpace(body)); ok {
			fast++
		}
		got, err := DecodeCallback(command, body)
		if (err == nil) != (wantErr == nil) || (err != nil && err.Error() != wantErr.Error()) {
			t.Fatalf("body %d %s: error %v, encoding/json's %v", i, body, err, wantErr)
		}
		if err == nil {
			sameEvent(t, got, want)
		}
	}
	if fast < n/10 {
		t.Errorf("the message decoder read %d of %d generated bodies itself, want at least a tenth", fast, n)
	}
	t.Logf("the message decoder read %d of %d bodies itself", fast, n)
}

type bodyGen struct {
	r        *rand.Rand
	b        []byte
	clean    bool // nothing odd
	oddOneIn int  // how rare the odd choices of structure are
}

func (g *bodyGen) odd() bool { return !g.clean && g.r.IntN(g.oddOneIn) == 0 }

func (g *bodyGen) ws() {
	if g.r.IntN(6) == 0 {
		g.b = append(g.b, []string{" ", "\n", "\t", "\r\n  "}[g.r.IntN(4)]...)
	}
}

func (g *bodyGen) key(name string) {
	g.ws()
	switch {
	case !g.odd():
		g.b = strconv.AppendQuote(g.b, name)
	case g.r.IntN(3) == 0:
		g.b = strconv.AppendQuote(g.b, string(bytes.ToLower([]byte(name))))
	case g.r.IntN(2) == 0:
		g.b = append(g.b, `"\u00`...)
		g.b = strconv.AppendInt(g.b, int64(name[0]), 16)
		g.b = append(g.b, name[1:]...)
		g.b = append(g.b, '"')
	default:
		g.b = append(g.b, '"')
		for _, c := range []byte(name) {
			if c == 's' {
				g.b = append(g.b, "ſ"...)
			} else {
				g.b = append(g.b, c)
			}
		}
		g.b = append(g.b, '"')
	}
	g.ws()
	g.b = append(g.b, ':')
	g.ws()
}

var genStrings = []string{
	"", "a", "@TGS#2J4SZEAEL", "jared", "Public", "Work", "Live", "TIMTextElem", "TIMImageElem",
	"Group.CallbackBeforeSendMsg", "Group.CallbackAfterSendMsg", "1670574414123", "-5", "+5", "1e3", " 7",
	"你好 😀", "red packet",
}

var genEscaped = []string{
	`line\nbreak`, `\"quoted\"`, `\u4e2d\u6587`, `\ud83d\ude00`, `\ud800`, `\udc00\ud800`, `a\/b\\c`,
	`\b\f\r\t`, `\u0000`, `\uFFFD`, "bad\xffutf8", "\xc3", `\u0031\u0032`, "tab\there", `\x`, `\u12`,
}

// genPlain are strings the message decoder reads itself.
var genPlain = []string{`line\nbreak`, `\"quoted\"`, `\u4e2d\u6587`, `\ud83d\ude00`, `a\/b\\c`, `\b\f\r\t`, `\u0000`, "你好 😀"}

func (g *bodyGen) str() {
	if !g.odd() {
		g.b = append(g.b, '"')
		if g.r.IntN(4) == 0 {
			g.b = append(g.b, genPlain[g.r.IntN(len(genPlain))]...)
		} else {
			g.b = append(g.b, []string{"a", "@TGS#2J4SZEAEL", "jared", "Public", "Work", "red packet"}[g.r.IntN(6)]...)
		}
		g.b = append(g.b, '"')
		return
	}
	if g.r.IntN(5) == 0 {
		g.b = append(g.b, '"')
		g.b = append(g.b, genEscaped[g.r.IntN(len(genEscaped))]...)
		g.b = append(g.b, '"')
		return
	}
	g.b = strconv.AppendQuote(g.b, genStrings[g.r.IntN(len(genStrings))])
}

var genNumbers = []string{
	"0", "1", "7", "123456", "-0", "-1", "1.0", "1e3", "01", "4294967295", "4294967296",
	"9223372036854775807", "9223372036854775808", "18446744073709551615", "1670574414123",
	"-9223372036854775808", "1.670574414123e12", "-", "1.", ".5",
}

func (g *bodyGen) num() {
	if !g.odd() {
		g.b = append(g.b, []string{"0", "1", "7", "123456", "4294967295"}[g.r.IntN(5)]...)
		return
	}
	g.b = append(g.b, genNumbers[g.r.IntN(len(genNumbers))]...)
}

// value writes a typed field's value: usually of the field's type.
func (g *bodyGen) value(kind byte) {
	if g.odd() {
		g.any(0)
		return
	}
	switch kind {
	case 's':
		g.str()
	case 'n':
		g.num()
	case 't': // EventTime
		if g.r.IntN(3) == 0 {
			g.b = append(g.b, '"')
			if !g.odd() {
				g.b = append(g.b, []string{"", "1670574414123"}[g.r.IntN(2)]...)
			} else {
				g.b = append(g.b, genNumbers[g.r.IntN(len(genNumbers))]...)
			}
			g.b = append(g.b, '"')
		} else {
			g.num()
		}
	}
}

// any writes any JSON value, sometimes malformed.
func (g *bodyGen) any(depth int) {
	g.ws()
	switch k := g.r.IntN(8); {
	case k == 0 && depth < 3:
		g.b = append(g.b, '{')
		for i := range g.r.IntN(3) {
			if i > 0 {
				g.b = append(g.b, ',')
			}
			g.key([]string{"x", "Text", "URL", "Type"}[g.r.IntN(4)])
			g.any(depth + 1)
		}
		g.b = append(g.b, '}')
	case k == 1 && depth < 3:
		g.b = append(g.b, '[')
		for i := range g.r.IntN(3) {
			if i > 0 {
				g.b = append(g.b, ',')
			}
			g.any(depth + 1)
		}
		g.b = append(g.b, ']')
	case k == 2 && !g.odd():
		g.b = append(g.b, []string{"null", "true", "false"}[g.r.IntN(3)]...)
	case k == 2:
		g.b = append(g.b, []string{"null", "true", "false", "nul", "[1,]", "{,}"}[g.r.IntN(6)]...)
	case k == 3 || k == 4:
		g.num()
	default:
		g.str()
	}
	g.ws()
}

func (g *bodyGen) members(fields []genField) {
	g.b = append(g.b, '{')
	n := 0
	for _, i := range g.r.Perm(len(fields)) {
		f := fields[i]
		if !f.always && g.r.IntN(3) == 0 {
			continue
		}
		times := 1
		if g.odd() {
			times = 2
		}
		for range times {
			if n > 0 {
				g.b = append(g.b, ',')
			}
			n++
			g.key(f.name)
			f.write(g)
		}
	}
	if g.r.IntN(4) == 0 {
		if n > 0 {
			g.b = append(g.b, ',')
		}
		g.key("Unknown")
		g.any(0)
	}
	g.ws()
	g.b = append(g.b, '}')
}

type genField struct {
	name   string
	always bool
	write  func(*bodyGen)
}

func typed(name string, always bool, kind byte) genField {
	return genField{name, always, func(g *bodyGen) { g.value(kind) }}
}

func (g *bodyGen) array(elem func(*bodyGen)) {
	if g.odd() {
		g.any(0)
		return
	}
	g.b = append(g.b, '[')
	for i := range g.r.IntN(4) {
		if i > 0 {
			g.b = append(g.b, ',')
		}
		g.ws()
		elem(g)
	}
	g.b = append(g.b, ']')
}

func (g *bodyGen) message(command string) []byte {
	content := []genField{typed("Text", false, 's'), typed("Data", false, 's'), typed("Desc", false, 's'), typed("Ext", false, 's'), typed("Index", false, 'n')}
	elem := []genField{
		{"MsgType", true, func(g *bodyGen) {
			if g.odd() {
				g.value('s')
				return
			}
			g.b = strconv.AppendQuote(g.b, []string{ElemText, ElemFace, ElemCustom, ElemImage, "TIMNewElem"}[g.r.IntN(5)])
		}},
		{"MsgContent", true, func(g *bodyGen) {
			if g.odd() {
				g.any(0)
				return
			}
			g.members(content)
		}},
	}
	at := []genField{typed("GroupAtAllFlag", false, 'n'), typed("GroupAt_Account", false, 's')}
	fields := []genField{
		{"CallbackCommand", false, func(g *bodyGen) {
			if g.odd() {
				g.value('s')
				return
			}
			g.b = strconv.AppendQuote(g.b, command)
		}},
		typed("GroupId", true, 's'), typed("Type", false, 's'), typed("EventTime", false, 't'), typed("TopicId", false, 's'),
		typed("From_Account", true, 's'), typed("Operator_Account", false, 's'), typed("Random", false, 'n'),
		typed("MsgId", false, 's'), typed("OnlineOnlyFlag", false, 'n'), typed("CloudCustomData", false, 's'),
		typed("MsgSeq", false, 'n'), typed("MsgTime", false, 'n'),
		{"MsgBody", false, func(g *bodyGen) { g.array(func(g *bodyGen) { g.members(elem) }) }},
		{"GroupAtInfo", false, func(g *bodyGen) { g.array(func(g *bodyGen) { g.members(at) }) }},
	}
	g.ws()
	g.members(fields)
	g.ws()
	if !g.clean && g.r.IntN(50) == 0 {
		g.b = append(g.b, " {}"...)
	}
	return g.b
}
