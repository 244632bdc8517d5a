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
	// states and edges hold what one step reads side by side, so that a
	// step touches few cache lines of a large automaton.
	states []state
	edges  []edge // children, sorted by symbol per state
	// wide holds the children of states with more than narrow children
	// again, in an open-addressing hash table: one probe instead of a
	// binary search over several cache lines.
	wide     []wideEdge
	wideMask uint64
	// n1 is the number of the start state's children, states 1 to n1;
	// bits holds bitWords words for each, a bit per symbol it has a child
	// on (nil when too large).
	n1, bitWords uint32
	bits         []uint64
	lens         []int32
}

// narrow is the most children searched one by one (they share a cache
// line or two).
const narrow = 8

type wideEdge struct{ state, sym, next uint32 } // state 0: an empty slot

// state is one state of the trie. A state's children are
// edges[first:states[s+1].first].
type state struct {
	first uint32
	// fail is the longest proper suffix that is also in the trie; its top
	// bit says a word ends here or on the fail chain (hitFlag).
	fail uint32
	word int32  // the word that ends here, or -1
	dict uint32 // the nearest state on the fail chain where a word ends, or 0
}

type edge struct{ sym, next uint32 }

const (
	hitFlag  = 1 << 31
	failMask = hitFlag - 1
)

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

	type trieEdge struct{ parent, sym, child uint32 }
	edges := make([]trieEdge, 0, total)
	word := append(make([]int32, 0, total+1), -1)
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
			s := uint32(len(word))
			word = append(word, -1)
			edges = append(edges, trieEdge{path[d], w[d], s})
			path = append(path, s)
		}
		if end := path[len(w)]; word[end] < 0 {
			word[end] = id
		} else {
			return nil, fmt.Errorf("word %d repeats word %d", id, word[end])
		}
		prev = w
	}
	n := len(word)

	// Number the states breadth first, so that the start state's children
	// are 1 to n1, then lay the children out in one flat array.
	layout(a, word, edges, func(e trieEdge) (uint32, uint32, uint32) { return e.parent, e.sym, e.child })
	bfs := make([]uint32, 0, n)
	bfs = append(bfs, 0)
	for head := 0; head < len(bfs); head++ {
		for _, e := range a.children(bfs[head]) {
			bfs = append(bfs, e.next)
		}
	}
	renum := make([]uint32, n)
	bfsWord := make([]int32, n)
	for i, old := range bfs {
		renum[old] = uint32(i)
		bfsWord[i] = word[old]
	}
	layout(a, bfsWord, edges, func(e trieEdge) (uint32, uint32, uint32) { return renum[e.parent], e.sym, renum[e.child] })
	a.root = make([]uint32, nsym)
	for _, e := range a.children(0) {
		a.root[e.sym] = e.next
	}
	a.n1 = uint32(len(a.children(0)))
	a.buildWide()
	a.buildBits(nsym)

	// Failure and dictionary links, breadth first: a state's links point
	// to shallower states, whose links are known by then.
	queue := make([]uint32, 0, n)
	for _, e := range a.children(0) {
		queue = append(queue, e.next)
	}
	for head := 0; head < len(queue); head++ {
		s := queue[head]
		for _, e := range a.children(s) {
			f := a.step(a.states[s].fail&failMask, e.sym)
			t := &a.states[e.next]
			t.fail = f
			if a.states[f].word >= 0 {
				t.dict = f
			} else {
				t.dict = a.states[f].dict
			}
			if t.word >= 0 || t.dict != 0 {
				t.fail |= hitFlag
			}
			queue = append(queue, e.next)
		}
	}
	for _, e := range a.children(0) {
		if a.states[e.next].word >= 0 {
			a.states[e.next].fail |= hitFlag
		}
	}
	return a, nil
}

// layout fills states and edges from the trie's edges, whose parent, symbol
// and child ends gives; edges of one parent come in the order of their
// symbols.
func layout[E any](a *Automaton, word []int32, edges []E, ends func(E) (uint32, uint32, uint32)) {
	n := len(word)
	a.states = make([]state, n+1)
	for s := range n {
		a.states[s].word = word[s]
	}
	for _, e := range edges {
		p, _, _ := ends(e)
		a.states[p+1].first++
	}
	for s := 1; s <= n; s++ {
		a.states[s].first += a.states[s-1].first
	}
	a.edges = make([]edge, len(edges))
	fill := make([]uint32, n)
	for s := range n {
		fill[s] = a.states[s].first
	}
	for _, e := range edges {
		p, sym, child := ends(e)
		a.edges[fill[p]] = edge{sym, child}
		fill[p]++
	}
}

// maxBits bounds the memory of the children bitmaps of the start state's
// children.
const maxBits = 16 << 20

// buildBits records, for each child of the start state, which symbols it
// has a child on. Most steps from such a state find none, and then go back
// to the start: the bitmap answers that without touching the state's
// children.
func (a *Automaton) buildBits(nsym int) {
	a.bitWords = uint32((nsym + 63) / 64)
	if int(a.n1)*int(a.bitWords)*8 > maxBits {
		a.bitWords = 0
		return
	}
	a.bits = make([]uint64, int(a.n1)*int(a.bitWords))
	for s := uint32(1); s <= a.n1; s++ {
		row := a.bits[(s-1)*a.bitWords : s*a.bitWords]
		for _, e := range a.children(s) {
			row[e.sym>>6] |= 1 << (e.sym & 63)
		}
	}
}

func (a *Automaton) children(s uint32) []edge {
	return a.edges[a.states[s].first:a.states[s+1].first]
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

// buildWide fills the hash table of the children of wide states (not the
// start state's: those are in root).
func (a *Automaton) buildWide() {
	count := 0
	for s := 1; s < len(a.states)-1; s++ {
		if n := a.states[s+1].first - a.states[s].first; n > narrow {
			count += int(n)
		}
	}
	if count == 0 {
		return
	}
	size := 1
	for size < 2*count {
		size <<= 1
	}
	a.wide, a.wideMask = make([]wideEdge, size), uint64(size-1)
	for s := uint32(1); int(s) < len(a.states)-1; s++ {
		if len(a.children(s)) <= narrow {
			continue
		}
		for _, e := range a.children(s) {
			h := wideHash(s, e.sym) & a.wideMask
			for a.wide[h].state != 0 {
				h = (h + 1) & a.wideMask
			}
			a.wide[h] = wideEdge{s, e.sym, e.next}
		}
	}
}

func wideHash(s, c uint32) uint64 {
	return (uint64(s)<<32 | uint64(c)) * 0x9E3779B97F4A7C15 >> 20
}

// child returns the child of s on symbol c, or 0.
func (a *Automaton) child(s, c uint32) uint32 {
	lo, hi := a.states[s].first, a.states[s+1].first
	if hi-lo <= narrow {
		for _, e := range a.edges[lo:hi] {
			if e.sym == c {
				return e.next
			}
		}
		return 0
	}
	for h := wideHash(s, c) & a.wideMask; ; h = (h + 1) & a.wideMask {
		switch e := a.wide[h]; {
		case e.state == s && e.sym == c:
			return e.next
		case e.state == 0:
			return 0
		}
	}
}

// step is the transition from s on symbol c (not 0).
func (a *Automaton) step(s, c uint32) uint32 {
	if s != 0 && s <= a.n1 && a.bits != nil && a.bits[(s-1)*a.bitWords+c>>6]&(1<<(c&63)) == 0 {
		return a.root[c] // no child on c, and such a state fails to the start
	}
	for s != 0 {
		if t := a.child(s, c); t != 0 {
			return t
		}
		s = a.states[s].fail & failMask
	}
	return a.root[c]
}

// hit reports whether a word ends at s.
func (a *Automaton) hit(s uint32) bool { return a.states[s].fail&hitFlag != 0 }

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
		if !a.hit(s) {
			continue
		}
		for m := s; m != 0; m = a.states[m].dict {
			if w := a.states[m].word; w >= 0 {
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
func (a *Automaton) States() int { return len(a.states) - 1 }

// Bytes is the memory the automaton holds.
func (a *Automaton) Bytes() int {
	return 2*len(a.pages) + 4*(len(a.symtab)+len(a.root)+len(a.lens)) + 16*len(a.states) + 8*len(a.edges) + 12*len(a.wide) + 8*len(a.bits)
}
