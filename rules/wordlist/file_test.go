package wordlist

import (
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestParseFile(t *testing.T) {
	data := "\uFEFF# a comment\n free crypto \r\n\n\t# an indented comment\n\\#tag\n免费\nfree crypto\n\xff\nbad\tword\n" + strings.Repeat("x", MaxWordBytes+1) + "\nlast"
	lines, problems := ParseFile([]byte(data))
	want := []Line{{"free crypto", 2}, {"#tag", 5}, {"免费", 6}, {"last", 11}}
	if !slices.Equal(lines, want) {
		t.Errorf("lines %v, want %v", lines, want)
	}
	wantProblems := []LineProblem{
		{7, `repeats line 2 ("free crypto")`},
		{8, "is not UTF-8 text"},
		{9, "holds a control character (a tab?): one word or phrase a line"},
		{10, "is 1025 bytes long; a word is at most 1024"},
	}
	if !slices.Equal(problems, wantProblems) {
		t.Errorf("problems %v, want %v", problems, wantProblems)
	}
}

// FuzzParseFile checks that any file gives clean words with their lines, and
// problems on lines that exist.
func FuzzParseFile(f *testing.F) {
	f.Add([]byte("# spam\nfree crypto\n\n免费\nfree crypto\n"))
	f.Add([]byte("\uFEFF\\#tag\r\n\xff\n"))
	f.Add([]byte("a\tb\n\n\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		lines, problems := ParseFile(data)
		total := strings.Count(string(data), "\n") + 1
		seen := map[string]bool{}
		last := 0
		for _, l := range lines {
			switch {
			case l.Word == "" || l.Word != strings.TrimSpace(l.Word) || !utf8.ValidString(l.Word):
				t.Fatalf("line %d: word %q", l.Num, l.Word)
			case seen[l.Word]:
				t.Fatalf("line %d: %q twice", l.Num, l.Word)
			case l.Num <= last || l.Num > total:
				t.Fatalf("line %d after %d of %d", l.Num, last, total)
			case strings.ContainsFunc(l.Word, isControl):
				t.Fatalf("line %d: control character in %q", l.Num, l.Word)
			}
			seen[l.Word], last = true, l.Num
		}
		for _, p := range problems {
			if p.Num < 1 || p.Num > total || p.Reason == "" {
				t.Fatalf("problem %+v in a file of %d lines", p, total)
			}
		}
	})
}
