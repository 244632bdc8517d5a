package wordlist

import (
	"fmt"
	"slices"
	"unicode/utf8"
)

// Automaton is an Aho-Corasick automaton over characters: it finds every
// occurrence of a set of words in one pass over a text, whatever the number
// of words. It is immutable and safe for concurrent use.
//
// The trie's states are numbered in depth-first order; the transitions of a
// state are its children's characters, sorted, in flat arrays (a
// compressed-sparse-row layout), except the start state's, which are a
// dense table. A character that is in no word sends the automaton back to
// its start at once.
type Automaton struct {
	// pages maps the high bits of a character (r>>8) to a page of symtab
	// (1-based; 0: no word has a character of this page).
	pages  []uint16
	symtab []uint32 // character -> symbol (1-based; 0: in no word)
	root   []uint32 // symbol -> the start state's child
	first  []uint32 // state -> index of its first child in syms and next
	syms   []uint32 // children's symbols, sorted per state
	next   []uint32 // children's states
	fail   []uint32 // the longest proper suffix that is also in the trie
	word   []int32  // the word that ends at a state, or -1
	dict   []uint32 // the nearest state on the fail chain where a word ends, or 0
	lens   []int32  // each word's length in characters
}

const maxRune = utf8.MaxRune

// NewAutomaton builds the automaton of words: non-empty and distinct.
func NewAutomaton(words [][]rune) (*Automaton, error) {
	a := &Automaton{pages: make([]uint16, maxRune>>8+1)}
	if len(words) > 1<<31-1 {
		return nil, fmt.Errorf("%d words are too many", len(words))
	}
	// Symbols, in the order of the characters.
	var chars []rune
	seen := map[rune]bool{}
	total := 0
	for i, w := range words {
		if len(w) == 0 {
			return nil, fmt.Errorf("word %d is empty", i)
		}
		total += len(w)
		for _, r := range w {
			if r < 0 || r > maxRune {
				return nil, fmt.Errorf("word %d holds %U, not a character", i, r)
			}
			if !seen[r] {
				seen[r] = true
				chars = append(chars, r)
			}
		}
	}
	if total >= 1<<31 {
		return nil, fmt.Errorf("the words are too long together (%d characters)", total)
	}
	slices.Sort(chars)
	for i, r := range chars {
		p := a.pages[r>>8]
		if p == 0 {
			a.symtab = append(a.symtab, make([]uint32, 256)...)
			p = uint16(len(a.symtab) >> 8)
			a.pages[r>>8] = p
		}
		a.symtab[int(p-1)<<8|int(r&0xFF)] = uint32(i + 1)
	}
	nsym := len(chars) + 1

	// The words as symbols, sorted, so that the trie can be built with a
	// stack: children are then created in the order of their symbols.
	flat := make([]uint32, 0, total)
	starts := make([]int, len(words)+1)
	a.lens = make([]int32, len(words))
	for i, w := range words {
		starts[i] = len(flat)
		for _, r := range w {
			flat = append(flat, a.symbol(r))
		}
		a.lens[i] = int32(len(w))
	}
	starts[len(words)] = len(flat)
	sym := func(i int) []uint32 { return flat[starts[i]:starts[i+1]] }
	order := make([]int32, len(words))
	for i := range order {
		order[i] = int32(i)
	}
	slices.SortFunc(order, func(x, y int32) int { return slices.Compare(sym(int(x)), sym(int(y))) })

	type edge struct{ parent, sym, child uint32 }
	edges := make([]edge, 0, total)
	a.word = append(make([]int32, 0, total+1), -1)
	path := []uint32{0}
	var prev []uint32
	for _, id := range order {
		w := sym(int(id))
		common := 0
		for common < len(w) && common < len(prev) && w[common] == prev[common] {
			common++
		}
		path = path[:common+1]
		for d := common; d < len(w); d++ {
			s := uint32(len(a.word))
			a.word = append(a.word, -1)
			edges = append(edges, edge{path[d], w[d], s})
			path = append(path, s)
		}
		if end := path[len(w)]; a.word[end] < 0 {
			a.word[end] = id
		} else {
			return nil, fmt.Errorf("word %d repeats word %d", id, a.word[end])
		}
		prev = w
	}
	n := len(a.word)

	// Children of each state, in flat arrays.
	a.first = make([]uint32, n+1)
	for _, e := range edges {
		a.first[e.parent+1]++
	}
	for s := 1; s <= n; s++ {
		a.first[s] += a.first[s-1]
	}
	a.syms = make([]uint32, len(edges))
	a.next = make([]uint32, len(edges))
	fill := slices.Clone(a.first[:n])
	for _, e := range edges {
		a.syms[fill[e.parent]], a.next[fill[e.parent]] = e.sym, e.child
		fill[e.parent]++
	}
	a.root = make([]uint32, nsym)
	for i := a.first[0]; i < a.first[1]; i++ {
		a.root[a.syms[i]] = a.next[i]
	}

	// Failure and dictionary links, breadth first: a state's links point
	// to shallower states, whose links are known by then.
	a.fail = make([]uint32, n)
	a.dict = make([]uint32, n)
	queue := make([]uint32, 0, n)
	for i := a.first[0]; i < a.first[1]; i++ {
		queue = append(queue, a.next[i])
	}
	for head := 0; head < len(queue); head++ {
		s := queue[head]
		for i := a.first[s]; i < a.first[s+1]; i++ {
			c, t := a.syms[i], a.next[i]
			f := a.step(a.fail[s], c)
			a.fail[t] = f
			if a.word[f] >= 0 {
				a.dict[t] = f
			} else {
				a.dict[t] = a.dict[f]
			}
			queue = append(queue, t)
		}
	}
	return a, nil
}

// symbol returns r's symbol, 0 when no word has r.
func (a *Automaton) symbol(r rune) uint32 {
	if uint32(r) > maxRune {
		return 0
	}
	p := a.pages[r>>8]
	if p == 0 {
		return 0
	}
	return a.symtab[int(p-1)<<8|int(r&0xFF)]
}

// child returns the child of s on symbol c, or 0.
func (a *Automaton) child(s, c uint32) uint32 {
	lo, hi := a.first[s], a.first[s+1]
	if hi-lo <= 8 {
		for i := lo; i < hi; i++ {
			if a.syms[i] == c {
				return a.next[i]
			}
		}
		return 0
	}
	for lo < hi {
		m := lo + (hi-lo)/2
		switch x := a.syms[m]; {
		case x == c:
			return a.next[m]
		case x < c:
			lo = m + 1
		default:
			hi = m
		}
	}
	return 0
}

// step is the transition from s on symbol c (not 0).
func (a *Automaton) step(s, c uint32) uint32 {
	for s != 0 {
		if t := a.child(s, c); t != 0 {
			return t
		}
		s = a.fail[s]
	}
	return a.root[c]
}

// hit reports whether a word ends at s.
func (a *Automaton) hit(s uint32) bool { return a.word[s] >= 0 || a.dict[s] != 0 }

// Any reports whether text holds any of the words. It does not allocate.
func (a *Automaton) Any(text []rune) bool {
	var s uint32
	for _, r := range text {
		c := a.symbol(r)
		if c == 0 {
			s = 0
			continue
		}
		s = a.step(s, c)
		if a.hit(s) {
			return true
		}
	}
	return false
}

// Each calls f for every occurrence of a word in text, overlapping ones
// included, in the order of their ends (the longer word first when two end
// together): the word's index and its span [start, end) in text. It stops
// when f returns false.
func (a *Automaton) Each(text []rune, f func(word, start, end int) bool) {
	var s uint32
	for i, r := range text {
		c := a.symbol(r)
		if c == 0 {
			s = 0
			continue
		}
		s = a.step(s, c)
		for m := s; m != 0; m = a.dict[m] {
			if w := a.word[m]; w >= 0 {
				if !f(int(w), i+1-int(a.lens[w]), i+1) {
					return
				}
			}
		}
	}
}

// Words is the number of words.
func (a *Automaton) Words() int { return len(a.lens) }

// States is the number of states of the trie.
func (a *Automaton) States() int { return len(a.word) }

// Bytes estimates the memory the automaton holds.
func (a *Automaton) Bytes() int {
	return 2*len(a.pages) + 4*(len(a.symtab)+len(a.root)+len(a.first)+len(a.syms)+len(a.next)+
		len(a.fail)+len(a.word)+len(a.dict)+len(a.lens))
}
