package wordlist

import (
	"bufio"
	_ "embed"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/mtibben/confusables"
	"golang.org/x/text/cases"
	"golang.org/x/text/unicode/norm"
)

// t2sData is OpenCC's traditional to simplified character table, one pair a
// line (see internal/gent2s).
//
//go:generate go run ./internal/gent2s -o t2s.txt
//go:embed t2s.txt
var t2sData string

// A table entry says what one character becomes. The entries of
// characters below tableSize are worked out the first time a character is
// met and kept; those beyond are in Normalizer.beyond, or say the
// character stays as it is.
const (
	tableSize = 0x20000 // the Basic and Supplementary Multilingual Planes

	runeMask  = 0x1FFFFF
	flagSep   = 1 << 21 // the (single) result is a separator
	flagHan   = 1 << 22 // the result is a Han or kana character: a word of its own
	flagMulti = 1 << 23 // low bits index Normalizer.multi
	flagDrop  = 1 << 24 // the character is removed
	// flagCompose: the (single) result may combine with the character
	// before it (a voiced sound mark, a conjoining jamo, an accent kept).
	flagCompose = 1 << 25
	// flagKnown marks an entry worked out: 0 is an entry not yet known.
	flagKnown = 1 << 26
)

// digitLetters are the digits and symbols Options.Digits reads as letters.
var digitLetters = map[rune]rune{'0': 'o', '1': 'l', '3': 'e', '4': 'a', '5': 's', '7': 't', '@': 'a', '$': 's'}

// confusableScripts are the scripts whose look-alikes of Latin letters
// Options.Confusables maps: scripts seen in evasions, not the letters of
// people writing their own language in Arabic or Hebrew script.
var confusableScripts = []*unicode.RangeTable{unicode.Latin, unicode.Greek, unicode.Cyrillic, unicode.Cherokee, unicode.Coptic, unicode.Lisu, unicode.Common}

// lookup returns the table entry of r.
func (n *Normalizer) lookup(r rune) uint32 {
	if uint32(r) >= tableSize {
		if e, ok := n.beyond[r]; ok {
			return e
		}
		return farEntry(r)
	}
	if e := n.table[r].Load(); e != 0 {
		return e
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if e := n.table[r].Load(); e != 0 {
		return e
	}
	e := n.work(r)
	n.table[r].Store(e)
	return e
}

// farEntries works out the entries of the characters past the table that
// the options can change: compatibility ideographs (NFKC), the tags and
// variation selectors of plane 14 (format characters), and characters the
// Chinese conversion maps. Nothing else past U+1FFFF is cased, decomposes,
// is invisible or looks like a Latin letter (TestCharactersPastTheTable
// checks every one).
func (n *Normalizer) farEntries() map[rune]uint32 {
	var far []rune
	for r := rune(0x2F800); r <= 0x2FA1F; r++ {
		far = append(far, r)
	}
	for r := rune(0xE0000); r <= 0xE01EF; r++ {
		far = append(far, r)
	}
	for r := range n.b.t2s {
		if r >= tableSize {
			far = append(far, r)
		}
	}
	m := map[rune]uint32{}
	for _, r := range far {
		if e := n.work(r); e != farEntry(r) {
			m[r] = e
		}
	}
	return m
}

// farEntry is the entry of a character past the table that stays as it is.
// Most of those met are ideographs of planes 2 and 3, asked about first.
func farEntry(r rune) uint32 {
	if unicode.Is(unicode.Han, r) {
		return uint32(r) | flagHan | flagKnown
	}
	return uint32(r) | runeFlags(r) | flagKnown
}

// work works out the entry of r. The caller holds n.mu, or is the
// constructor: the builder's buffers and case folder are not safe for
// concurrent use.
func (n *Normalizer) work(r rune) uint32 {
	var e uint32
	switch {
	case 0x3400 <= r && r <= 0x4DBF, 0x4E00 <= r && r <= 0x9FFF:
		// CJK ideographs: only the Chinese conversion changes them.
		if s, ok := n.b.t2s[r]; ok {
			e = uint32(s) | runeFlags(s)
		} else {
			e = uint32(r) | flagHan
		}
	case 0xAC00 <= r && r <= 0xD7A3:
		e = uint32(r) // Hangul syllables stay as they are
	default:
		e = n.entry(n.b.apply(r))
	}
	return e | flagKnown
}

// entry encodes what a character becomes.
func (n *Normalizer) entry(out []rune) uint32 {
	switch len(out) {
	case 0:
		return flagDrop
	case 1:
		e := uint32(out[0]) | runeFlags(out[0])
		var enc [utf8.UTFMax]byte
		if !norm.NFC.Properties(enc[:utf8.EncodeRune(enc[:], out[0])]).BoundaryBefore() {
			e |= flagCompose
		}
		return e
	}
	// Readers index the slice they load; a new slice is published before
	// the entry pointing into it.
	var multi [][]rune
	if m := n.multi.Load(); m != nil {
		multi = *m
	}
	multi = append(slices.Clip(multi), slices.Clone(out))
	n.multi.Store(&multi)
	return flagMulti | uint32(len(multi)-1)
}

// multiOf returns the characters of a flagMulti entry.
func (n *Normalizer) multiOf(e uint32) []rune { return (*n.multi.Load())[e&runeMask] }

func runeFlags(r rune) uint32 {
	switch {
	case isSeparator(r):
		return flagSep
	case isHan(r):
		return flagHan
	}
	return 0
}

// isSeparator: punctuation, symbols (emoji among them), spaces and
// control characters such as newlines.
func isSeparator(r rune) bool {
	if r < utf8.RuneSelf {
		c := byte(r)
		return !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9')
	}
	return unicode.In(r, unicode.P, unicode.S, unicode.Z, unicode.Cc)
}

// isHan: characters written without spaces between words, each a word of
// its own for separator skipping.
func isHan(r rune) bool {
	if r < 0x2E80 {
		return false
	}
	return unicode.In(r, unicode.Han, unicode.Hiragana, unicode.Katakana)
}

// isInvisible: format characters (zero-width space and joiners, word
// joiner, byte order mark, soft hyphen, direction marks, tags), variation
// selectors, the combining grapheme joiner, Hangul fillers and the blank
// Braille pattern.
func isInvisible(r rune) bool {
	switch {
	case r == 0x034F, r == 0x115F, r == 0x1160, r == 0x3164, r == 0xFFA0, r == 0x2800,
		0xFE00 <= r && r <= 0xFE0F, 0xE0100 <= r && r <= 0xE01EF, 0x180B <= r && r <= 0x180F:
		return true
	}
	return unicode.Is(unicode.Cf, r)
}

// isAccent: the combining diacritical marks of Latin, Greek and Cyrillic
// letters (not the vowel signs of other scripts).
func isAccent(r rune) bool {
	return 0x0300 <= r && r <= 0x036F || 0x1AB0 <= r && r <= 0x1AFF || 0x1DC0 <= r && r <= 0x1DFF ||
		0x20D0 <= r && r <= 0x20FF || 0xFE20 <= r && r <= 0xFE2F
}

// builder works out what one character becomes under a set of options.
type builder struct {
	opts     Options
	fold     cases.Caser
	t2s      map[rune]rune
	buf, tmp []rune
	nfd      []rune
}

func newBuilder(o Options) builder {
	b := builder{opts: o}
	if o.Case {
		b.fold = cases.Fold()
	}
	if o.Chinese == ChineseT2S {
		b.t2s = t2sMap()
	}
	return b
}

func (b *builder) apply(r rune) []rune {
	o := b.opts
	if o.Invisible && isInvisible(r) {
		return nil
	}
	out := append(b.buf[:0], r)
	if o.NFKC {
		out = b.each(out, func(r rune, dst []rune) []rune { return appendForm(dst, norm.NFKC, r) })
	}
	if o.Confusables {
		out = b.each(out, func(r rune, dst []rune) []rune {
			parts := appendForm(b.nfd[:0], norm.NFD, r)
			b.nfd = parts
			if !slices.ContainsFunc(parts, isAccent) {
				parts = append(parts[:0], r) // only é, which is e and an accent, is split
			}
			for _, p := range parts {
				if isAccent(p) {
					continue
				}
				if c, ok := confusable(p, o.Case); ok {
					p = c
				}
				dst = append(dst, p)
			}
			return dst
		})
	}
	if o.Case {
		out = b.each(out, func(r rune, dst []rune) []rune {
			if unicode.SimpleFold(r) == r {
				return append(dst, r)
			}
			for _, f := range b.fold.String(string(r)) {
				if o.NFKC {
					dst = appendForm(dst, norm.NFKC, f)
				} else {
					dst = append(dst, f)
				}
			}
			return dst
		})
	}
	if o.Invisible {
		out = b.each(out, func(r rune, dst []rune) []rune {
			if isInvisible(r) {
				return dst
			}
			return append(dst, r)
		})
	}
	if b.t2s != nil || o.Digits {
		for i, r := range out {
			if s, ok := b.t2s[r]; ok {
				out[i] = s
			}
			if l, ok := digitLetters[out[i]]; ok && o.Digits {
				out[i] = l
			}
		}
	}
	b.buf = out
	return out
}

// each replaces every character of in by what f makes of it.
func (b *builder) each(in []rune, f func(r rune, dst []rune) []rune) []rune {
	out := b.tmp[:0]
	for _, r := range in {
		out = f(r, out)
	}
	b.tmp, b.buf = in, out
	return out
}

// appendForm appends the normal form of r alone.
func appendForm(dst []rune, f norm.Form, r rune) []rune {
	var enc [utf8.UTFMax]byte
	s := enc[:utf8.EncodeRune(enc[:], r)]
	if p := f.Properties(s); p.Decomposition() == nil && p.CCC() == 0 && (r < 0xAC00 || r > 0xD7A3) {
		return append(dst, r) // nothing to do: the common case
	}
	for _, x := range f.String(string(s)) {
		dst = append(dst, x)
	}
	return dst
}

// confusable returns the ASCII letter r looks like, when r is a letter of
// confusableScripts whose skeleton (UTS #39) is one ASCII letter; lower
// case when case is folded. ASCII letters stay themselves: their
// skeletons (I is l) would merge letters people tell apart.
func confusable(r rune, lower bool) (rune, bool) {
	if r < utf8.RuneSelf || !unicode.IsLetter(r) || !unicode.In(r, confusableScripts...) {
		return 0, false
	}
	candidates := []rune{r}
	if lower {
		// Upper and lower case must become the same letter, since case is
		// folded: the lower-case letter's look-alike first (Cyrillic І
		// folds to і, which looks like i, while І looks like l), then the
		// capital's (к looks like no Latin letter, К like K).
		candidates = []rune{unicode.ToLower(r), unicode.ToUpper(r)}
	}
	for _, c := range candidates {
		s := confusables.Skeleton(string(c))
		if len(s) == 1 && ('a' <= s[0] && s[0] <= 'z' || 'A' <= s[0] && s[0] <= 'Z') {
			l := rune(s[0])
			if lower {
				l = unicode.ToLower(l)
			}
			return l, true
		}
	}
	return 0, false
}

// t2sMap reads t2sData.
func t2sMap() map[rune]rune {
	m := make(map[rune]rune, 4200)
	sc := bufio.NewScanner(strings.NewReader(t2sData))
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		from, to, ok := strings.Cut(line, " ")
		f, fn := utf8.DecodeRuneInString(from)
		t, tn := utf8.DecodeRuneInString(to)
		if ok && fn == len(from) && tn == len(to) && f != utf8.RuneError && t != utf8.RuneError {
			m[f] = t
		}
	}
	return m
}
