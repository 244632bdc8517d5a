package replay

import (
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/timguard/timguard/record"
)

// Item is one entry and where it was read.
type Item struct {
	// File is the file it was read from ("" for a reader).
	File  string
	Line  int
	Entry record.Entry
}

// Source gives the entries to replay, in order. Next returns io.EOF at the
// end and a *record.LineError for a line that is skipped (the next call
// goes on after it); any other error ends the replay.
type Source interface {
	Next() (Item, error)
}

// Files reads recording files one after the other.
type Files struct {
	paths []string
	i     int
	f     *os.File
	r     *record.Reader
}

// OpenPath returns the source for path: a directory of recording files
// (its callbacks-*.jsonl files, oldest first, leaving out those whose hour
// ended before a non-zero since) or one file, of recorded entries or of
// callback bodies alone. Callers Close it.
func OpenPath(path string, since time.Time) (*Files, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("recordings: %w", err)
	}
	if !fi.IsDir() {
		return NewFiles(path), nil
	}
	paths, err := record.Files(path, since)
	if err != nil {
		return nil, err
	}
	if len(paths) == 0 {
		return nil, fmt.Errorf("recordings: %s holds no recording files (callbacks-*.jsonl)", path)
	}
	return NewFiles(paths...), nil
}

// NewFiles reads the files at paths in this order.
func NewFiles(paths ...string) *Files { return &Files{paths: paths} }

// Next implements Source.
func (s *Files) Next() (Item, error) {
	for {
		if s.r == nil {
			if s.i >= len(s.paths) {
				return Item{}, io.EOF
			}
			f, err := os.Open(s.paths[s.i])
			if err != nil {
				return Item{}, fmt.Errorf("recordings: %w", err)
			}
			s.f, s.r = f, record.NewReader(f)
		}
		e, err := s.r.Next()
		if errors.Is(err, io.EOF) {
			s.closeFile()
			s.i++
			continue
		}
		name := s.paths[s.i]
		if err != nil {
			var le *record.LineError
			if errors.As(err, &le) {
				return Item{File: name, Line: le.Line}, err
			}
			return Item{}, fmt.Errorf("%s: %w", name, err)
		}
		return Item{File: name, Line: s.r.Line(), Entry: e}, nil
	}
}

func (s *Files) closeFile() {
	if s.f != nil {
		_ = s.f.Close()
	}
	s.f, s.r = nil, nil
}

// Close closes the file being read.
func (s *Files) Close() error {
	s.closeFile()
	s.i = len(s.paths)
	return nil
}

// Reader reads entries (or callback bodies) from one reader.
type Reader struct {
	name string
	r    *record.Reader
}

// NewReader reads the entries of r; name is given as Item.File.
func NewReader(name string, r io.Reader) *Reader {
	return &Reader{name: name, r: record.NewReader(r)}
}

// Next implements Source.
func (s *Reader) Next() (Item, error) {
	e, err := s.r.Next()
	if err != nil {
		var le *record.LineError
		if errors.As(err, &le) {
			return Item{File: s.name, Line: le.Line}, err
		}
		return Item{}, err
	}
	return Item{File: s.name, Line: s.r.Line(), Entry: e}, nil
}

// Entries replays entries held in memory (a pasted callback, a test).
type Entries struct {
	list []record.Entry
	i    int
}

// NewEntries returns a source of list.
func NewEntries(list ...record.Entry) *Entries { return &Entries{list: list} }

// Next implements Source.
func (s *Entries) Next() (Item, error) {
	if s.i >= len(s.list) {
		return Item{}, io.EOF
	}
	s.i++
	return Item{Line: s.i, Entry: s.list[s.i-1]}, nil
}
