package wordlist

import (
	"strings"
	"sync"
	"sync/atomic"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// Normalizer turns text into its normalized form under one set of Options.
// Make one per distinct set of options (it holds a table of 512 KiB, filled
// as characters are met) and share it: it is safe for concurrent use.
type Normalizer struct {
	opts  Options
	table []atomic.Uint32 // rune -> entry; 0 until first met
	// beyond holds the entries of the characters past the table that the
	// options change (see farEntries); it is read-only.
	beyond map[rune]uint32
	multi  atomic.Pointer[[][]rune]
	mu     sync.Mutex // guards b and the writers of table and multi
	b      builder
}

// NewNormalizer returns the normalizer for o, which must be valid. It is
// cheap: the entry of a character of the table is worked out when first
// met; the thousand or so past the table that can change, at once.
func NewNormalizer(o Options) *Normalizer {
	n := &Normalizer{opts: o, table: make([]atomic.Uint32, tableSize), b: newBuilder(o)}
	n.beyond = n.farEntries()
	return n
}

// Options returns the options n normalizes with.
func (n *Normalizer) Options() Options { return n.opts }

// Text is a normalized text: its characters, and for each the span of the
// original text (in bytes) it came from. Reuse a Text: Normalize keeps its
// buffers.
type Text struct {
	Runes []rune
	// Start and End are the original span (in bytes) of Runes[i]: the
	// character it came from (several runes for one the normalization
	// split), or the run of separators a space stands for.
	Start, End []int32
	kinds      []uint8
}

const (
	kindLetter = iota
	kindSep
	kindHan
)

// Len is the number of normalized characters.
func (t *Text) Len() int { return len(t.Runes) }

// String is the normalized text.
func (t *Text) String() string { return string(t.Runes) }

// Span returns the original byte span of the normalized characters [i, j).
func (t *Text) Span(i, j int) (start, end int) {
	return int(t.Start[i]), int(t.End[j-1])
}

func (t *Text) reset() {
	t.Runes, t.Start, t.End, t.kinds = t.Runes[:0], t.Start[:0], t.End[:0], t.kinds[:0]
}

func (t *Text) add(r rune, start, end int) {
	t.Runes = append(t.Runes, r)
	t.Start = append(t.Start, int32(start))
	t.End = append(t.End, int32(end))
}

func (t *Text) addKind(r rune, start, end int, kind uint8) {
	t.add(r, start, end)
	t.kinds = append(t.kinds, kind)
}

// grow makes room for n characters.
func (t *Text) grow(n int) {
	if cap(t.Runes) < n {
		t.Runes, t.Start, t.End = make([]rune, 0, n), make([]int32, 0, n), make([]int32, 0, n)
	}
}

// maxText bounds the text normalized: offsets are int32. The IM server's
// messages are far shorter (12 KB).
const maxText = 1 << 30

// Normalize replaces t with the normalized form of s. It allocates only when
// t's buffers are too small. A text over 1 GiB is cut there.
func (n *Normalizer) Normalize(t *Text, s string) {
	t.reset()
	if len(s) > maxText {
		s = s[:maxText]
	}
	seps := n.opts.Separators
	// Entries without these flags are one character for one.
	special := uint32(flagKnown | flagDrop | flagMulti | flagCompose)
	if seps {
		special |= flagSep | flagHan
	}
	t.grow(len(s))
	for i := 0; i < len(s); {
		r, size := rune(s[i]), 1
		if r >= utf8.RuneSelf {
			r, size = utf8.DecodeRuneInString(s[i:])
		}
		var e uint32
		if uint32(r) < tableSize {
			e = n.table[r].Load()
		}
		if e&special == flagKnown {
			// The common case: one character for one, appended in place.
			t.Runes = append(t.Runes, rune(e&runeMask))
			t.Start = append(t.Start, int32(i))
			t.End = append(t.End, int32(i+size))
			if seps {
				t.kinds = append(t.kinds, kindLetter)
			}
			i += size
			continue
		}
		if e == 0 {
			e = n.lookup(r)
		}
		switch {
		case e&flagDrop != 0:
		case e&flagMulti != 0:
			for _, m := range n.multiOf(e) {
				n.emit(t, m, runeFlags(m), i, i+size, seps)
			}
		case e&flagCompose != 0 && n.compose(t, rune(e&runeMask), i, i+size):
		default:
			n.emit(t, rune(e&runeMask), e, i, i+size, seps)
		}
		i += size
	}
	if seps {
		t.skipSeparators()
	}
}

// compose combines r, from the original span [start, end), with the
// normalized character before it when Unicode composes the two into one
// (ｼﾞ is シ and a voiced sound mark, which is ジ), and reports whether it
// did. The composed character goes through the table again.
func (n *Normalizer) compose(t *Text, r rune, start, end int) bool {
	last := len(t.Runes) - 1
	if !n.opts.NFKC || last < 0 || t.End[last] != int32(start) {
		return false
	}
	var in, out [2 * utf8.UTFMax]byte
	k := utf8.EncodeRune(in[:], t.Runes[last])
	k += utf8.EncodeRune(in[k:], r)
	composed := norm.NFC.Append(out[:0], in[:k]...)
	c, size := utf8.DecodeRune(composed)
	if size != len(composed) || c == utf8.RuneError {
		return false
	}
	e := n.lookup(c)
	if e&(flagDrop|flagMulti|flagSep) != 0 {
		return false
	}
	t.Runes[last], t.End[last] = rune(e&runeMask), int32(end)
	return true
}

// emit adds one normalized character. With separator skipping, a run of
// separators becomes one space.
func (n *Normalizer) emit(t *Text, r rune, flags uint32, start, end int, seps bool) {
	if !seps {
		t.add(r, start, end)
		return
	}
	switch {
	case flags&flagSep != 0:
		if k := len(t.kinds); k > 0 && t.kinds[k-1] == kindSep {
			t.End[k-1] = int32(end)
			return
		}
		t.addKind(' ', start, end, kindSep)
	case flags&flagHan != 0:
		t.addKind(r, start, end, kindHan)
	default:
		t.addKind(r, start, end, kindLetter)
	}
}

// skipSeparators drops each separator run that stands between two words of
// one letter (a Han or kana character is always a word of its own): f.r.e.e
// is free, 免 费 is 免费, but "is extreme" keeps its space.
func (t *Text) skipSeparators() {
	k := t.kinds
	single := func(i, outward int) bool {
		if i < 0 || i >= len(k) {
			return false
		}
		if k[i] == kindHan {
			return true
		}
		j := i + outward
		return j < 0 || j >= len(k) || k[j] != kindLetter
	}
	w := 0
	for i := range t.Runes {
		if k[i] == kindSep && single(i-1, -1) && single(i+1, 1) {
			continue
		}
		t.Runes[w], t.Start[w], t.End[w] = t.Runes[i], t.Start[i], t.End[i]
		w++
	}
	// kinds describe the text before skipping; nothing reads them after.
	t.Runes, t.Start, t.End = t.Runes[:w], t.Start[:w], t.End[:w]
}

// Word normalizes a word of a list. With separator skipping, separators at
// either end are dropped: a word never needs one to match.
func (n *Normalizer) Word(w string) string {
	var t Text
	return n.word(&t, w)
}

func (n *Normalizer) word(t *Text, w string) string {
	n.Normalize(t, w)
	s := t.String()
	if n.opts.Separators {
		s = strings.Trim(s, " ")
	}
	return s
}

// String normalizes s.
func (n *Normalizer) String(s string) string {
	var t Text
	n.Normalize(&t, s)
	return t.String()
}
