// Package wordlist finds the words of a list in message text the way a
// moderator would read it: full-width letters, hidden characters, look-alike
// letters, separators between letters and traditional characters do not
// hide a word. Text and words go through the same normalization; a list is
// compiled once into an Aho-Corasick automaton over the normalized words,
// and every match keeps the span of the original text it came from, so the
// original characters can be masked.
package wordlist

import (
	"fmt"
	"strings"
)

// Options are the normalization steps of one list. The zero value switches
// every step off: words are then found as written, case included.
type Options struct {
	// NFKC folds compatibility characters to their plain form, one
	// character at a time (Unicode NFKC): full-width and half-width forms
	// (ＦＲＥＥ), ligatures (ﬁ), circled, superscript and mathematical
	// letters (𝐟𝐫𝐞𝐞).
	NFKC bool
	// Case folds upper and lower case together (Unicode case folding: ß
	// and ss are one word).
	Case bool
	// Invisible removes zero-width and other format characters (U+200B,
	// U+200D, U+2060, U+FEFF, soft hyphens, bidirectional controls),
	// variation selectors and Hangul fillers.
	Invisible bool
	// Confusables maps letters that look like Latin ones to those: Cyrillic
	// and Greek look-alikes (Cyrillic а, е, о, р, с; Greek ο, ν, ρ), the
	// Latin, Cherokee, Lisu and Coptic ones of Unicode's confusables data
	// (UTS #39), and drops accents (é is e).
	Confusables bool
	// Digits reads digits and symbols used as letters as those letters:
	// 0 o, 1 l, 3 e, 4 a, 5 s, 7 t, @ a, $ s.
	Digits bool
	// Separators skips punctuation, spaces and symbols (emoji included)
	// between single letters, so f.r.e.e and 免 费 are free and 免费; a run
	// of them anywhere else counts as one space.
	Separators bool
	// Chinese is "t2s" to read traditional characters as simplified ones
	// (免費 is 免费), or "" for no conversion.
	Chinese string
}

// Chinese conversions.
const (
	ChineseNone = ""
	ChineseT2S  = "t2s"
)

// Defaults are the steps a list gets unless it says otherwise: everything
// but Digits and Separators, which also find words where none was meant
// (1 and l, "is extreme").
func Defaults() Options {
	return Options{NFKC: true, Case: true, Invisible: true, Confusables: true, Chinese: ChineseT2S}
}

// Validate reports an option value that is not known.
func (o Options) Validate() error {
	switch o.Chinese {
	case ChineseNone, ChineseT2S:
		return nil
	}
	return fmt.Errorf("chinese: %q is not a conversion (t2s, or none)", o.Chinese)
}

// String names the steps switched on, for messages.
func (o Options) String() string {
	var on []string
	for _, s := range []struct {
		on   bool
		name string
	}{{o.NFKC, "nfkc"}, {o.Case, "case"}, {o.Invisible, "invisible"}, {o.Confusables, "confusables"}, {o.Digits, "digits"}, {o.Separators, "separators"}} {
		if s.on {
			on = append(on, s.name)
		}
	}
	if o.Chinese != "" {
		on = append(on, "chinese: "+o.Chinese)
	}
	if len(on) == 0 {
		return "none"
	}
	return strings.Join(on, ", ")
}
