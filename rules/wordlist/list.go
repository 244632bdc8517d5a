package wordlist

import (
	"fmt"
	"sort"
	"strings"
	"unicode"
	"unicode/utf8"
)

// List is a compiled word list: its words as written, the normalizer its
// words and texts go through, and the automaton of its normalized words.
// It is immutable and safe for concurrent use; each goroutine brings its
// own Scratch.
type List struct {
	words []string
	norm  *Normalizer
	auto  *Automaton // nil when no word is left to find
	entry []int32    // automaton word -> index in words
}

// Issue is a word of a list that cannot be used as written.
type Issue struct {
	Index  int // the word's index
	Reason string
	// Same is the index of the earlier word it repeats after
	// normalization, or -1.
	Same int
}

// Compile builds the list of words under n. A word that normalizes to
// nothing, or to the same as an earlier word, is left out and reported.
func Compile(words []string, n *Normalizer) (*List, []Issue, error) {
	l := &List{words: words, norm: n}
	var issues []Issue
	seen := make(map[string]int, len(words))
	var norm [][]rune
	var t Text
	for i, w := range words {
		nw := n.word(&t, w)
		if nw == "" {
			reason := "is empty"
			if w != "" {
				reason = fmt.Sprintf("is empty after normalization (%s)", n.opts)
			}
			issues = append(issues, Issue{Index: i, Reason: reason, Same: -1})
			continue
		}
		if j, dup := seen[nw]; dup {
			reason := fmt.Sprintf("repeats %q", words[j])
			if words[j] != w {
				reason = fmt.Sprintf("is the same as %q after normalization (%s)", words[j], n.opts)
			}
			issues = append(issues, Issue{Index: i, Reason: reason, Same: j})
			continue
		}
		seen[nw] = i
		norm = append(norm, []rune(nw))
		l.entry = append(l.entry, int32(i))
	}
	if len(norm) > 0 {
		a, err := NewAutomaton(norm)
		if err != nil {
			return nil, issues, err
		}
		l.auto = a
	}
	return l, issues, nil
}

// Words returns the list's words as written.
func (l *List) Words() []string { return l.words }

// Normalizer returns the normalizer the list uses.
func (l *List) Normalizer() *Normalizer { return l.norm }

// Automaton returns the list's automaton, nil when the list finds nothing.
func (l *List) Automaton() *Automaton { return l.auto }

// Contains reports whether text holds a word of the list. With a Scratch
// already holding text under this list's normalization, it does not
// allocate.
func (l *List) Contains(sc *Scratch, text string) bool {
	if l.auto == nil {
		return false
	}
	return sc.slot(l.norm, text).any(l.auto)
}

// Matched returns the words of the list found in text, as written in the
// list, each once, in the order they were found.
func (l *List) Matched(sc *Scratch, text string) []string {
	if l.auto == nil {
		return nil
	}
	s := sc.slot(l.norm, text)
	if known, found := s.known(l.auto); known && !found {
		return nil
	}
	var out []string
	var seen map[int]bool
	l.auto.Each(s.text.Runes, func(w, _, _ int) bool {
		e := int(l.entry[w])
		if seen[e] {
			return true
		}
		if seen == nil {
			seen = map[int]bool{}
		}
		seen[e] = true
		out = append(out, l.words[e])
		return true
	})
	return out
}

// Mask replaces, in text, every character of every word of the list found
// with with, one per visible character. The characters replaced are the
// original ones the normalized match came from, separators between them
// included: ＦＲＥＥ and f.r.e.e become **** and *******; zero-width
// characters and accents inside a word go with it. The rest of the text is
// kept byte for byte.
func (l *List) Mask(sc *Scratch, text, with string) string {
	if l.auto == nil {
		return text
	}
	s := sc.slot(l.norm, text)
	if known, found := s.known(l.auto); known && !found {
		return text
	}
	t := &s.text
	var spans [][2]int
	l.auto.Each(t.Runes, func(_, start, end int) bool {
		s, e := t.Span(start, end)
		spans = append(spans, [2]int{s, e})
		return true
	})
	return maskSpans(text, spans, with)
}

// maskSpans replaces every character of text inside spans with with.
func maskSpans(text string, spans [][2]int, with string) string {
	if len(spans) == 0 {
		return text
	}
	sort.Slice(spans, func(i, j int) bool { return spans[i][0] < spans[j][0] })
	var b strings.Builder
	b.Grow(len(text))
	pos := 0
	for _, sp := range spans {
		start, end := max(sp[0], pos), sp[1]
		if start >= end {
			continue
		}
		b.WriteString(text[pos:start])
		for i := start; i < end; {
			r, size := utf8.DecodeRuneInString(text[i:])
			if i == start || !unicode.In(r, unicode.Mn, unicode.Me, unicode.Cf) {
				b.WriteString(with) // one per visible character
			}
			i += size
		}
		pos = end
	}
	b.WriteString(text[pos:])
	return b.String()
}

// ContainsAny reports whether text holds any of words under n, for word
// lists built while a rule runs. It normalizes every word on each call: a
// list from the rule file (List.Contains) is faster.
func ContainsAny(n *Normalizer, sc *Scratch, text string, words []string) bool {
	t := sc.Text(n, text).String()
	for _, w := range words {
		if nw := n.Word(w); nw != "" && strings.Contains(t, nw) {
			return true
		}
	}
	return false
}

// Scratch holds the normalized forms of the texts being evaluated (the
// message, the application message), each under each normalizer asked for,
// so that a text read by many rules is normalized once. It is not safe for
// concurrent use; keep one per goroutine (the rule environment has one).
type Scratch struct {
	slots []slot
	next  int // the slot to reuse when all are taken
	done  int
}

// scratchSlots bounds the texts a Scratch keeps: a few texts of an event
// under a few normalizations.
const scratchSlots = 8

type slot struct {
	norm *Normalizer
	src  string
	text Text
	// found remembers, per automaton, whether the text holds a word: rules
	// asking about the same list and text search once.
	found []found
}

type found struct {
	auto *Automaton
	any  bool
}

// known reports whether the slot knows if a holds a word of its text, and
// the answer.
func (s *slot) known(a *Automaton) (known, found bool) {
	for _, f := range s.found {
		if f.auto == a {
			return true, f.any
		}
	}
	return false, false
}

func (s *slot) any(a *Automaton) bool {
	if known, found := s.known(a); known {
		return found
	}
	ok := a.Any(s.text.Runes)
	s.found = append(s.found, found{a, ok})
	return ok
}

// Text returns src normalized by n, normalizing it only when the scratch
// does not hold it already.
func (sc *Scratch) Text(n *Normalizer, src string) *Text { return &sc.slot(n, src).text }

func (sc *Scratch) slot(n *Normalizer, src string) *slot {
	for i := range sc.slots {
		// Comparing a string with itself is one pointer comparison; a
		// slot keeps its src alive, so an equal string is the same text.
		if s := &sc.slots[i]; s.norm == n && s.src == src {
			return s
		}
	}
	var s *slot
	if len(sc.slots) < scratchSlots {
		sc.slots = append(sc.slots, slot{})
		s = &sc.slots[len(sc.slots)-1]
	} else {
		s = &sc.slots[sc.next]
		sc.next = (sc.next + 1) % scratchSlots
	}
	s.norm, s.src, s.found = n, src, s.found[:0]
	n.Normalize(&s.text, src)
	sc.done++
	return s
}

// Normalized is the number of times the scratch normalized a text.
func (sc *Scratch) Normalized() int { return sc.done }
