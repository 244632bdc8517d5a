package rules

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/timguard/timguard/rules/wordlist"
)

// maxListFile bounds a list file (500,000 words of a dozen bytes are 6 MB).
const maxListFile = 64 << 20

// maxWordProblems bounds the problems reported for one list's words; the
// rest are counted.
const maxWordProblems = 20

// listDef is a list read from the rule file and its file: its words, where
// each came from, and how its words are normalized.
type listDef struct {
	name  string
	line  int
	plain bool // written as a sequence: no checks beyond the old ones
	opts  wordlist.Options
	words []string
	// origin of each word: the file (path) and line, or the rule file's
	// line for a word under words:.
	files []string
	lines []int
}

// readLists reads every list of the file, with the files they name.
// Relative file names are read from the rule file's folder.
func (c *compiler) readLists(specs map[string]listSpec, set *Set) {
	c.listDefs = map[string]*listDef{}
	for _, name := range sortedKeys(specs) {
		spec := specs[name]
		if !namePattern.MatchString(name) {
			c.add(spec.Line, "list", name, "", "list names are letters, digits, _ . and -")
		}
		d := &listDef{name: name, line: spec.Line, plain: spec.Plain || spec.Line == 0, opts: wordlist.Defaults()}
		c.listDefs[name] = d
		if d.plain {
			d.words = append([]string{}, spec.Items...)
			set.Lists[name] = d.words
			continue
		}
		if spec.File == "" && spec.Words == nil {
			c.add(spec.Line, "list", name, "", "give file: PATH (one word a line), words: [...] or both")
		}
		d.opts = c.normalizeOptions(name, spec.Normalize)
		first := map[string]int{}
		if spec.File != "" {
			c.readListFile(d, spec, first)
		}
		for _, w := range spec.Words {
			word := strings.TrimSpace(w.Word)
			if prev, dup := first[word]; dup {
				c.add(w.Line, "list", name, "words", "%q is already in the list (%s)", word, d.where(prev))
				continue
			}
			first[word] = len(d.words)
			d.words, d.files, d.lines = append(d.words, word), append(d.files, ""), append(d.lines, w.Line)
		}
		set.Lists[name] = d.words
	}
}

// where names where word i of the list came from.
func (d *listDef) where(i int) string {
	if d.files[i] == "" {
		return fmt.Sprintf("line %d", d.lines[i])
	}
	return fmt.Sprintf("%s:%d", d.files[i], d.lines[i])
}

func (c *compiler) readListFile(d *listDef, spec listSpec, first map[string]int) {
	path := spec.File
	if !filepath.IsAbs(path) {
		path = filepath.Join(filepath.Dir(c.file), path)
	}
	data, err := readLimited(path, maxListFile)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = fmt.Errorf("%s: %w", pe.Path, pe.Err)
		}
		c.add(spec.Line, "list", d.name, "file", "%s", err)
		return
	}
	c.listFiles = append(c.listFiles, path)
	c.listData = append(c.listData, []byte(d.name+"\x00"+path+"\x00"), data)
	lines, problems := wordlist.ParseFile(data)
	for i, p := range problems {
		if i == maxWordProblems {
			c.problems = append(c.problems, Problem{File: path, Line: p.Num, Section: "list", Name: d.name,
				Reason: fmt.Sprintf("and %d more problems like these", len(problems)-i)})
			break
		}
		c.problems = append(c.problems, Problem{File: path, Line: p.Num, Section: "list", Name: d.name, Reason: p.Reason})
	}
	for _, l := range lines {
		first[l.Word] = len(d.words)
		d.words, d.files, d.lines = append(d.words, l.Word), append(d.files, path), append(d.lines, l.Num)
	}
}

// readLimited reads the file at path, refusing one over limit bytes.
func readLimited(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if info, err := f.Stat(); err != nil {
		return nil, err
	} else if !info.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", path)
	}
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%s is over %d MiB, the most a list file may be", path, limit>>20)
	}
	return data, nil
}

// normalizeOptions reads a list's normalize: mapping over the defaults.
func (c *compiler) normalizeOptions(name string, spec *normalizeSpec) wordlist.Options {
	o := wordlist.Defaults()
	if spec == nil {
		return o
	}
	if spec.None {
		return wordlist.Options{}
	}
	for _, f := range []struct {
		v   *bool
		dst *bool
	}{{spec.NFKC, &o.NFKC}, {spec.Case, &o.Case}, {spec.Invisible, &o.Invisible}, {spec.Confusables, &o.Confusables},
		{spec.Digits, &o.Digits}, {spec.Separators, &o.Separators}} {
		if f.v != nil {
			*f.dst = *f.v
		}
	}
	if spec.Chinese != nil {
		o.Chinese = *spec.Chinese
		if o.Chinese == "none" {
			o.Chinese = wordlist.ChineseNone
		}
	}
	if err := o.Validate(); err != nil {
		c.add(spec.Line, "list", name, "normalize", "%s", err)
	}
	return o
}

// compileWordLists builds the automaton of every list an expression looks
// for words in, and the default normalization when a rule looks for the
// words of a list it builds itself. Lists with the same options share one
// normalizer, so an event's text is normalized once per set of options.
func (c *compiler) compileWordLists(set *Set) {
	norms := map[wordlist.Options]*wordlist.Normalizer{}
	normalizer := func(o wordlist.Options) *wordlist.Normalizer {
		n := norms[o]
		if n == nil {
			n = wordlist.NewNormalizer(o)
			norms[o] = n
		}
		return n
	}
	set.words = map[string]*wordlist.List{}
	for _, name := range sortedKeys(c.env.words) {
		d := c.listDefs[name]
		if d == nil || d.opts.Validate() != nil {
			continue
		}
		l, issues, err := wordlist.Compile(d.words, normalizer(d.opts))
		if err != nil {
			c.add(d.line, "list", name, "", "%s", err)
			continue
		}
		set.words[name] = l
		if d.plain {
			continue // empty and repeated words are skipped, as they always were
		}
		for i, is := range issues {
			if i == maxWordProblems {
				c.add(d.line, "list", name, "", "and %d more words like these", len(issues)-i)
				break
			}
			reason := fmt.Sprintf("%q %s", d.words[is.Index], is.Reason)
			if is.Same >= 0 {
				reason += " (" + d.where(is.Same) + "); keep one"
			}
			c.problems = append(c.problems, Problem{File: d.files[is.Index], Line: d.lines[is.Index], Section: "list", Name: name, Reason: reason})
		}
	}
	if c.env.wordArrays {
		set.defaultNorm = normalizer(wordlist.Defaults())
	}
}

// ListFiles returns the list files the set was read from.
func (s *Set) ListFiles() []string { return slices.Clone(s.listFiles) }

// WordList returns the compiled list called name, or nil when no
// expression looks for its words.
func (s *Set) WordList(name string) *wordlist.List { return s.words[name] }
