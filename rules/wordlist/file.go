package wordlist

import (
	"bytes"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Line is one word of a list file and the line it is on.
type Line struct {
	Word string
	Num  int
}

// LineProblem is something wrong with one line of a list file.
type LineProblem struct {
	Num    int
	Reason string
}

// MaxWordBytes bounds one word of a list file.
const MaxWordBytes = 1024

// ParseFile reads a list file: one word a line, surrounding spaces
// trimmed; blank lines and lines starting with # are skipped (write \# for
// a word that starts with #). A word that is not UTF-8, holds a control
// character, is longer than MaxWordBytes or repeats an earlier line is a
// problem; every problem is reported, and the good lines are returned.
func ParseFile(data []byte) ([]Line, []LineProblem) {
	data = bytes.TrimPrefix(data, []byte("\uFEFF"))
	var lines []Line
	var problems []LineProblem
	first := map[string]int{}
	num := 0
	for len(data) > 0 {
		num++
		raw := data
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			raw, data = data[:i], data[i+1:]
		} else {
			data = nil
		}
		w := strings.TrimSpace(string(raw))
		switch {
		case w == "" || strings.HasPrefix(w, "#"):
			continue
		case strings.HasPrefix(w, `\#`):
			w = w[1:]
		}
		switch {
		case !utf8.ValidString(w):
			problems = append(problems, LineProblem{num, "is not UTF-8 text"})
			continue
		case len(w) > MaxWordBytes:
			problems = append(problems, LineProblem{num, fmt.Sprintf("is %d bytes long; a word is at most %d", len(w), MaxWordBytes)})
			continue
		case strings.ContainsFunc(w, isControl):
			problems = append(problems, LineProblem{num, "holds a control character (a tab?): one word or phrase a line"})
			continue
		}
		if prev, dup := first[w]; dup {
			problems = append(problems, LineProblem{num, fmt.Sprintf("repeats line %d (%q)", prev, w)})
			continue
		}
		first[w] = num
		lines = append(lines, Line{Word: w, Num: num})
	}
	return lines, problems
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7F }
