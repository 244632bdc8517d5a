package wordlist

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"unicode"
)

// TestEvasionsAreFound checks that each way of hiding a word from a plain
// substring search still finds it, and masks the characters it was hidden
// in.
func TestEvasionsAreFound(t *testing.T) {
	all := Defaults()
	all.Separators, all.Digits = true, true
	tests := []struct {
		name   string
		opts   Options
		words  []string
		text   string
		want   []string // the words found, as written in the list
		masked string
	}{
		{"full-width letters are read as ASCII", Defaults(), []string{"free"}, "get ＦＲＥＥ coins", []string{"free"}, "get **** coins"},
		{"half-width katakana are read as full-width", Defaults(), []string{"カジノ"}, "ｶｼﾞﾉ now", []string{"カジノ"}, "**** now"},
		{"capitals are folded", Defaults(), []string{"free crypto"}, "FREE Crypto", []string{"free crypto"}, "***********"},
		{"a word written in capitals is found in lower case", Defaults(), []string{"FREE"}, "free", []string{"FREE"}, "****"},
		{"a zero-width space inside a word is ignored", Defaults(), []string{"free"}, "fr\u200bee money", []string{"free"}, "**** money"},
		{"a zero-width joiner and a soft hyphen are ignored", Defaults(), []string{"casino"}, "ca\u200dsi\u00adno", []string{"casino"}, "******"},
		{"a byte order mark and a word joiner are ignored", Defaults(), []string{"免费"}, "免\ufeff\u2060费", []string{"免费"}, "**"},
		{"dots between letters are skipped", all, []string{"free"}, "f.r.e.e stuff", []string{"free"}, "******* stuff"},
		{"spaces and dashes between letters are skipped", all, []string{"casino"}, "c a-s i_n o!", []string{"casino"}, "***********!"},
		{"emoji between Chinese characters are skipped", all, []string{"免费"}, "免🔥费领取", []string{"免费"}, "***领取"},
		{"spaces between Chinese characters are skipped", all, []string{"免费"}, "免 费", []string{"免费"}, "***"},
		{"a word with a space matches other separators", all, []string{"free crypto"}, "free...crypto!", []string{"free crypto"}, "*************!"},
		{"Cyrillic letters that look Latin are read as Latin", Defaults(), []string{"crypto"}, "сrурtо", []string{"crypto"}, "******"},
		{"Greek letters that look Latin are read as Latin", Defaults(), []string{"porn"}, "ροrn", []string{"porn"}, "****"},
		{"capital Cyrillic look-alikes are read as Latin", Defaults(), []string{"bet"}, "ВЕТ", []string{"bet"}, "***"},
		{"accents are dropped", Defaults(), []string{"casino"}, "cásíñö", []string{"casino"}, "******"},
		{"combining accents are dropped", Defaults(), []string{"casino"}, "ca\u0301sino", []string{"casino"}, "******"},
		{"mathematical letters are read as plain ones", Defaults(), []string{"free"}, "𝐟𝐫𝐞𝐞", []string{"free"}, "****"},
		{"digits used as letters are read as letters when configured", all, []string{"free"}, "fr33", []string{"free"}, "****"},
		{"0 is o and 1 is l when configured", all, []string{"lol"}, "101", []string{"lol"}, "***"},
		{"a traditional character is found for a simplified word", Defaults(), []string{"免费"}, "免費領取", []string{"免费"}, "**領取"},
		{"a simplified character is found for a traditional word", Defaults(), []string{"發財"}, "发财了", []string{"發財"}, "**了"},
		{"full-width and traditional together", Defaults(), []string{"免费vip"}, "免費ＶＩＰ", []string{"免费vip"}, "*****"},
		{"several evasions in one word", all, []string{"free crypto"}, "Ｆ.r.е\u200b.е ＣＲＹＰＴ0", []string{"free crypto"}, "**************"},
		{"two words are both masked", Defaults(), []string{"free", "casino"}, "free casino", []string{"free", "casino"}, "**** ******"},
		{"overlapping words are masked together", Defaults(), []string{"freec", "crypto"}, "FreeCrypto!", []string{"freec", "crypto"}, "**********!"},
		{"a word inside another is found", Defaults(), []string{"crap"}, "scrap", []string{"crap"}, "s****"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, issues, err := Compile(tt.words, NewNormalizer(tt.opts))
			if err != nil || len(issues) > 0 {
				t.Fatalf("Compile: %v %v", issues, err)
			}
			var sc Scratch
			if !l.Contains(&sc, tt.text) {
				t.Errorf("Contains(%q) = false (normalized %q, words %q)", tt.text, l.norm.String(tt.text), normWords(l))
			}
			if got := l.Matched(&sc, tt.text); strings.Join(got, "|") != strings.Join(tt.want, "|") {
				t.Errorf("Matched(%q) = %q, want %q", tt.text, got, tt.want)
			}
			if got := l.Mask(&sc, tt.text, "*"); got != tt.masked {
				t.Errorf("Mask(%q) = %q, want %q", tt.text, got, tt.masked)
			}
		})
	}
}

func normWords(l *List) []string {
	var out []string
	for _, w := range l.words {
		out = append(out, l.norm.Word(w))
	}
	return out
}

// TestNormalizationLeavesInnocentTextAlone checks texts that must not match:
// what each option would wrongly join or change.
func TestNormalizationLeavesInnocentTextAlone(t *testing.T) {
	all := Defaults()
	all.Separators, all.Digits = true, true
	tests := []struct {
		name  string
		opts  Options
		words []string
		text  string
	}{
		{"separators between words of several letters stay", all, []string{"sex"}, "this is extreme"},
		{"a separator between a word and a letter stays", all, []string{"ab"}, "xa b"},
		{"digits stay digits unless configured", Defaults(), []string{"lol"}, "101"},
		{"separators stay unless configured", Defaults(), []string{"free"}, "f.r.e.e"},
		{"case stays when not folded", Options{}, []string{"free"}, "FREE"},
		{"full width stays without NFKC", Options{}, []string{"free"}, "ｆｒｅｅ"},
		{"a zero-width space stays when invisible characters are kept", Options{}, []string{"free"}, "fr\u200bee"},
		{"traditional stays without conversion", Options{NFKC: true, Case: true}, []string{"免费"}, "免費"},
		{"Cyrillic stays without confusables", Options{Case: true}, []string{"crypto"}, "сrурtо"},
		{"Arabic letters are not read as Latin", Defaults(), []string{"lo"}, "\u0627\u0647"},
		{"Korean is not split into letters", Defaults(), []string{"ᄋ"}, "안녕"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, issues, err := Compile(tt.words, NewNormalizer(tt.opts))
			if err != nil || len(issues) > 0 {
				t.Fatalf("Compile: %v %v", issues, err)
			}
			var sc Scratch
			if l.Contains(&sc, tt.text) {
				t.Errorf("Contains(%q) = true (normalized %q, words %q)", tt.text, l.norm.String(tt.text), normWords(l))
			}
			if got := l.Mask(&sc, tt.text, "*"); got != tt.text {
				t.Errorf("Mask(%q) = %q, want it unchanged", tt.text, got)
			}
		})
	}
}

func TestCompileReportsWordsThatCannotBeUsed(t *testing.T) {
	all := Defaults()
	all.Separators = true
	l, issues, err := Compile([]string{"free", "", "\u200b", "ＦＲＥＥ", "免费", "免費", "...", "free"}, NewNormalizer(all))
	if err != nil {
		t.Fatal(err)
	}
	want := map[int]string{
		1: "is empty",
		2: "is empty after normalization",
		3: `is the same as "free" after normalization`,
		5: `is the same as "免费" after normalization`,
		6: "is empty after normalization",
		7: `repeats "free"`,
	}
	if len(issues) != len(want) {
		t.Errorf("issues %v, want %d", issues, len(want))
	}
	for _, is := range issues {
		if !strings.HasPrefix(is.Reason, want[is.Index]) || want[is.Index] == "" {
			t.Errorf("word %d: %q, want %q", is.Index, is.Reason, want[is.Index])
		}
	}
	if got := l.Automaton().Words(); got != 2 {
		t.Errorf("the automaton has %d words, want 2 (free, 免费)", got)
	}
}

func TestScratchNormalizesATextOncePerNormalizer(t *testing.T) {
	n1, n2 := NewNormalizer(Defaults()), NewNormalizer(Options{})
	var sc Scratch
	text := strings.Repeat("ＦＲＥＥ ", 10)
	a := sc.Text(n1, text)
	if b := sc.Text(n1, text); b != a {
		t.Error("the same text was normalized twice")
	}
	if got := testing.AllocsPerRun(100, func() { sc.Text(n1, text) }); got != 0 {
		t.Errorf("reading a normalized text again allocates %v times", got)
	}
	if c := sc.Text(n2, text); c.String() != text {
		t.Errorf("another normalizer's text is %q", c.String())
	}
	if d := sc.Text(n1, "other"); d.String() != "other" {
		t.Errorf("a new text reads %q", d.String())
	}
	if e := sc.Text(n1, text); !strings.HasPrefix(e.String(), "free free") {
		t.Errorf("the first text again reads %q", e.String())
	}
}

// TestNormalizerIsSafeForConcurrentUse normalizes texts from several
// goroutines with a fresh normalizer, whose table fills as they go, and
// compares with one that normalized them alone (run it with -race).
func TestNormalizerIsSafeForConcurrentUse(t *testing.T) {
	o := Defaults()
	o.Separators, o.Digits = true, true
	texts := []string{"ＦＲＥＥ crypto", "免費領取 ﷺ ㈱", "сrурtо ｶｼﾞﾉ", "f.r.e.e 🙂 fr\u200bee", "cásíñö ΣΑΣ straße"}
	alone := NewNormalizer(o)
	want := make([]string, len(texts))
	for i, s := range texts {
		want[i] = alone.String(s)
	}
	shared := NewNormalizer(o)
	done := make(chan error)
	for g := range 4 {
		go func() {
			var txt Text
			for k := range 200 {
				i := (g + k) % len(texts)
				shared.Normalize(&txt, texts[i])
				if got := txt.String(); got != want[i] {
					done <- fmt.Errorf("%q became %q, alone %q", texts[i], got, want[i])
					return
				}
			}
			done <- nil
		}()
	}
	for range 4 {
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
}

// TestTheChineseTableIsReadWhole checks every pair of the embedded table is
// read: a line that did not parse would silently leave a character
// unconverted.
func TestTheChineseTableIsReadWhole(t *testing.T) {
	pairs := 0
	for _, line := range strings.Split(strings.TrimSpace(t2sData), "\n") {
		if !strings.HasPrefix(line, "#") {
			pairs++
		}
	}
	m := t2sMap()
	if len(m) != pairs || pairs < 4000 {
		t.Errorf("%d of %d pairs read", len(m), pairs)
	}
	for from, to := range map[rune]rune{'費': '费', '發': '发', '體': '体', '東': '东', '後': '后'} {
		if m[from] != to {
			t.Errorf("%c reads as %c, want %c", from, m[from], to)
		}
	}
}

// TestCharactersPastTheTable checks that every assigned character past the
// table (U+20000 and up, private use aside) gets the entry the full
// normalization would work out, although only the few the options change
// are worked out when the normalizer is made. Unassigned characters have
// no decomposition, case or confusable to change them.
func TestCharactersPastTheTable(t *testing.T) {
	o := Defaults()
	o.Separators, o.Digits = true, true
	n := NewNormalizer(o)
	if len(n.beyond) == 0 {
		t.Errorf("no character past the table changes")
	}
	checked, bad := 0, 0
	for cat, tab := range unicode.Categories {
		if cat == "Co" || cat == "Cn" || len(cat) != 2 {
			continue // private use, unassigned; the tables of one letter repeat the others
		}
		for _, rg := range tab.R32 {
			for r := rune(max(rg.Lo, tableSize)); r <= rune(rg.Hi); r += rune(rg.Stride) {
				checked++
				got, want := n.lookup(r), n.work(r)
				same := got == want
				if got&flagMulti != 0 && want&flagMulti != 0 {
					same = slices.Equal(n.multiOf(got), n.multiOf(want))
				}
				if !same {
					if bad++; bad <= 5 {
						t.Errorf("%U has the entry %#x, want %#x", r, got, want)
					}
				}
			}
		}
	}
	if bad > 0 || checked < 70000 {
		t.Errorf("%d of %d characters past the table are read wrong", bad, checked)
	}
}

// TestCharactersPastTheTableCostNothing normalizes text of ideographs of
// plane 2 and compatibility ideographs, which no table holds, without an
// allocation or a lock.
func TestCharactersPastTheTableCostNothing(t *testing.T) {
	n := NewNormalizer(Defaults())
	s := strings.Repeat("𠀀𠀁𠀂\U0002F800\U000E0041x", 100)
	var txt Text
	n.Normalize(&txt, s)
	if got, want := txt.String(), strings.Repeat("𠀀𠀁𠀂丽x", 100); got != want {
		t.Errorf("normalized to %q, want %q", got[:40], want[:40])
	}
	if got := testing.AllocsPerRun(20, func() { n.Normalize(&txt, s) }); got != 0 {
		t.Errorf("normalizing allocates %v times", got)
	}
}
