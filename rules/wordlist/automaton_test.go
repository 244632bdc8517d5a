package wordlist

import (
	"fmt"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/timguard/timguard/rules/wordlist/wordlisttest"
)

func runes(ws ...string) [][]rune {
	out := make([][]rune, len(ws))
	for i, w := range ws {
		out[i] = []rune(w)
	}
	return out
}

type occurrence struct{ word, start, end int }

func TestAutomatonFindsEveryOccurrence(t *testing.T) {
	tests := []struct {
		name  string
		words []string
		text  string
		want  []occurrence
	}{
		{"the textbook example", []string{"he", "she", "his", "hers"}, "ushers",
			[]occurrence{{1, 1, 4}, {0, 2, 4}, {3, 2, 6}}},
		{"a word inside a longer one that fails", []string{"abcd", "bc"}, "abcx", []occurrence{{1, 1, 3}}},
		{"a word repeated", []string{"aa"}, "aaaa", []occurrence{{0, 0, 2}, {0, 1, 3}, {0, 2, 4}}},
		{"characters in no word reset the search", []string{"ab"}, "axab", []occurrence{{0, 2, 4}}},
		{"Chinese words sharing a prefix", []string{"免费", "免费领取", "领取"}, "快来免费领取",
			[]occurrence{{0, 2, 4}, {1, 2, 6}, {2, 4, 6}}},
		{"characters beyond the Basic Multilingual Plane", []string{"𝔣𝔯𝔢𝔢", "🔥"}, "x🔥𝔣𝔯𝔢𝔢",
			[]occurrence{{1, 1, 2}, {0, 2, 6}}},
		{"nothing found", []string{"abc"}, "ab bc", nil},
		{"an empty text", []string{"abc"}, "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := NewAutomaton(runes(tt.words...))
			if err != nil {
				t.Fatal(err)
			}
			var got []occurrence
			a.Each([]rune(tt.text), func(w, s, e int) bool {
				got = append(got, occurrence{w, s, e})
				return true
			})
			if !slices.Equal(got, tt.want) {
				t.Errorf("Each(%q) = %v, want %v", tt.text, got, tt.want)
			}
			if found := a.Any([]rune(tt.text)); found != (len(tt.want) > 0) {
				t.Errorf("Any(%q) = %v", tt.text, found)
			}
		})
	}
}

func TestAutomatonRefusesWhatItCannotFind(t *testing.T) {
	for name, words := range map[string][][]rune{
		"an empty word":     {[]rune("a"), {}},
		"a repeated word":   runes("ab", "ab"),
		"not a character":   {{-1}},
		"beyond the last":   {{utf8.MaxRune + 1}},
		"a surrogate alone": nil, // no words: an automaton that finds nothing
	} {
		a, err := NewAutomaton(words)
		if words == nil {
			if err != nil || a.Any([]rune("anything")) {
				t.Errorf("%s: %v", name, err)
			}
			continue
		}
		if err == nil {
			t.Errorf("%s: NewAutomaton accepted %q", name, words)
		}
	}
}

// naiveFind lists every occurrence of words in text by comparing at every
// position.
func naiveFind(text []rune, words [][]rune) []occurrence {
	var out []occurrence
	for i := range text {
		for w, word := range words {
			if i+len(word) <= len(text) && slices.Equal(text[i:i+len(word)], word) {
				out = append(out, occurrence{w, i, i + len(word)})
			}
		}
	}
	return out
}

func sortOccurrences(o []occurrence) {
	slices.SortFunc(o, func(a, b occurrence) int {
		if a.start != b.start {
			return a.start - b.start
		}
		return a.word - b.word
	})
}

// optionsOf picks the normalization options from the bits of b.
func optionsOf(b byte) Options {
	o := Options{NFKC: b&1 != 0, Case: b&2 != 0, Invisible: b&4 != 0, Confusables: b&8 != 0, Digits: b&16 != 0, Separators: b&32 != 0}
	if b&64 != 0 {
		o.Chinese = ChineseT2S
	}
	return o
}

// FuzzListAgreesWithNaiveSearch checks, for any words, text and
// normalization, that the automaton finds exactly the occurrences a search
// of the normalized text at every position finds, and that masking never
// panics, masks every occurrence and keeps every other character.
func FuzzListAgreesWithNaiveSearch(f *testing.F) {
	f.Add("free\ncrypto", "get ＦＲＥＥ crypto", byte(0x7F))
	f.Add("免费\n领取\n免费领取", "快来免費領取！", byte(0x47))
	f.Add("he\nshe\nhis\nhers", "ushers", byte(0))
	f.Add("f.r.e.e\n t.me/ ", "f r e e t.me/x", byte(0x2F))
	f.Add("casino", "cá\u200bsino c-a-s-i-n-o", byte(0x3F))
	f.Add("ss", "STRAßE", byte(2))
	f.Add("カジノ", "ｶｼﾞﾉ", byte(1))
	f.Add("lol", "1O1 l0l", byte(0x1B))
	normalizers := map[byte]*Normalizer{}
	f.Fuzz(func(t *testing.T, list, text string, opts byte) {
		if len(text) > 400 || len(list) > 400 {
			return
		}
		opts &= 0x7F
		n := normalizers[opts]
		if n == nil {
			n = NewNormalizer(optionsOf(opts))
			normalizers[opts] = n
		}
		words := strings.Split(list, "\n")
		l, _, err := Compile(words, n)
		if err != nil {
			t.Fatalf("Compile(%q): %v", words, err)
		}
		var sc Scratch
		nt := sc.Text(n, text)
		var normWords [][]rune
		for _, e := range l.entry {
			normWords = append(normWords, []rune(n.Word(words[e])))
		}
		want := naiveFind(nt.Runes, normWords)
		var got []occurrence
		if l.auto != nil {
			l.auto.Each(nt.Runes, func(w, s, e int) bool {
				got = append(got, occurrence{w, s, e})
				return true
			})
		}
		sortOccurrences(want)
		sortOccurrences(got)
		if !slices.Equal(got, want) {
			t.Fatalf("normalized text %q, words %q: automaton %v, naive %v", nt.String(), normWords, got, want)
		}
		if c := l.Contains(&sc, text); c != (len(want) > 0) {
			t.Fatalf("Contains = %v with %d occurrences", c, len(want))
		}
		if m := l.Matched(&sc, text); len(m) > len(words) || (len(m) > 0) != (len(want) > 0) {
			t.Fatalf("Matched = %q with occurrences %v", m, want)
		}
		if strings.Contains(text, "■") {
			return
		}
		masked := l.Mask(&sc, text, "■")
		inside := make([]bool, len(text)+1)
		for _, o := range want {
			s, e := nt.Span(o.start, o.end)
			for i := s; i < e; i++ {
				inside[i] = true
			}
		}
		checkMask(t, text, masked, inside)
	})
}

// checkMask walks text and masked together: a character inside a masked
// span is ■ (or gone, when it is a zero-width one), any other is kept.
func checkMask(t *testing.T, text, masked string, inside []bool) {
	t.Helper()
	j := 0
	for i := 0; i < len(text); {
		_, size := utf8.DecodeRuneInString(text[i:])
		if inside[i] {
			if strings.HasPrefix(masked[j:], "■") {
				j += len("■")
			}
		} else {
			if !strings.HasPrefix(masked[j:], text[i:i+size]) {
				t.Fatalf("Mask(%q) = %q: byte %d changed", text, masked, i)
			}
			j += size
		}
		i += size
	}
	if j != len(masked) {
		t.Fatalf("Mask(%q) = %q: %d bytes more", text, masked, len(masked)-j)
	}
}

// benchList returns a list of n words, none of which is in msg, under the
// default normalization.
func benchList(tb testing.TB, n int, msg string) *List {
	tb.Helper()
	norm := NewNormalizer(Defaults())
	words := wordlisttest.Words(n+n/10, 1)
	l, _, err := Compile(words, norm)
	if err != nil {
		tb.Fatal(err)
	}
	var sc Scratch
	found := map[string]bool{}
	for _, w := range l.Matched(&sc, msg) {
		found[w] = true
	}
	words = slices.DeleteFunc(words, func(w string) bool { return found[w] })[:n]
	l, issues, err := Compile(words, norm)
	if err != nil || len(issues) > 0 {
		tb.Fatalf("%v %v", issues, err)
	}
	if l.Contains(&sc, msg) {
		tb.Fatal("the message holds a word of the list")
	}
	return l
}

// BenchmarkMessage is the work for one message: normalize 1,000 characters
// of mixed Chinese and Latin chat, then look for any of 50,000 words.
func BenchmarkMessage(b *testing.B) {
	msg := wordlisttest.Message(1000, 7)
	l := benchList(b, 50000, msg)
	last := l.Words()[len(l.Words())-1]
	// The word ends the message: the whole text is scanned.
	matching := string([]rune(msg)[:1000-utf8.RuneCountInString(last)]) + last
	for _, c := range []struct{ name, text string }{{"path=no-match", msg}, {"path=match", matching}} {
		b.Run(c.name, func(b *testing.B) {
			var t Text
			want := c.name == "path=match"
			l.norm.Normalize(&t, c.text) // warm up: the buffers grow once
			b.ReportAllocs()
			for b.Loop() {
				l.norm.Normalize(&t, c.text)
				if l.auto.Any(t.Runes) != want {
					b.Fatal("wrong answer")
				}
			}
		})
	}
	b.Run("step=normalize", func(b *testing.B) {
		var t Text
		b.ReportAllocs()
		for b.Loop() {
			l.norm.Normalize(&t, msg)
		}
	})
	b.Run("step=search", func(b *testing.B) {
		var t Text
		l.norm.Normalize(&t, msg)
		b.ReportAllocs()
		for b.Loop() {
			l.auto.Any(t.Runes)
		}
	})
	b.Run("step=mask", func(b *testing.B) {
		var sc Scratch
		b.ReportAllocs()
		for b.Loop() {
			l.Mask(&sc, matching, "*")
		}
	})
}

// BenchmarkCompile compiles lists of 50,000 and 500,000 words and reports
// the time, the automaton's memory (as it counts it and as the heap grew)
// and its states.
func BenchmarkCompile(b *testing.B) {
	norm := NewNormalizer(Defaults())
	for _, n := range []int{50000, 500000} {
		words := wordlisttest.Words(n, 1)
		b.Run(fmt.Sprintf("words=%d", n), func(b *testing.B) {
			var l *List
			var heap uint64
			for b.Loop() {
				l = nil //nolint:ineffassign // lets the GC below free the last automaton, so heap counts one
				runtime.GC()
				var before, after runtime.MemStats
				runtime.ReadMemStats(&before)
				var err error
				l, _, err = Compile(words, norm)
				if err != nil {
					b.Fatal(err)
				}
				runtime.GC()
				runtime.ReadMemStats(&after)
				heap = after.HeapAlloc - before.HeapAlloc
			}
			b.ReportMetric(float64(l.Automaton().Bytes())/(1<<20), "automaton-MiB")
			b.ReportMetric(float64(heap)/(1<<20), "heap-MiB")
			b.ReportMetric(float64(l.Automaton().States()), "states")
		})
	}
}

// TestCompileCost logs what compiling 50,000 words costs, so that a plain
// test run shows it; BenchmarkCompile measures 50,000 and 500,000.
func TestCompileCost(t *testing.T) {
	words := wordlisttest.Words(50000, 1)
	start := time.Now()
	norm := NewNormalizer(Defaults())
	built := time.Since(start)
	l, issues, err := Compile(words, norm)
	if err != nil {
		t.Fatal(err)
	}
	if len(issues) > 0 {
		t.Errorf("%d generated words could not be used, the first: %v", len(issues), issues[0])
	}
	t.Logf("normalizer %v; 50,000 words compiled in %v: %d states, %.1f MiB",
		built, time.Since(start)-built, l.Automaton().States(), float64(l.Automaton().Bytes())/(1<<20))
	if l.Automaton().Words() != 50000 {
		t.Errorf("the automaton holds %d words", l.Automaton().Words())
	}
}
