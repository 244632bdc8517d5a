package rules

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/timguard/timguard/rules/wordlist"
)

// Placeholders in warn and reply texts. A text is literal except for these
// names in braces; {{ and }} stand for a brace.
const (
	PhUser  = "user"  // the subject's user id
	PhRule  = "rule"  // the rule's name
	PhWords = "words" // the list entries the rule found, comma-separated
	PhUntil = "until" // when the rule's mute, ban or group mute ends
)

var placeholderNames = []string{PhUser, PhRule, PhWords, PhUntil}

// Placeholders are the values a text's placeholders stand for.
type Placeholders struct {
	User  string
	Rule  string
	Words []string
	// Until is when the rule's mute ends; Forever says it does not.
	Until   time.Time
	Forever bool
}

// UntilLayout is how {until} is written: RFC 3339 in UTC, to the second.
const UntilLayout = time.RFC3339

// until renders {until}.
func (p Placeholders) until() string {
	switch {
	case p.Forever:
		return "forever"
	case p.Until.IsZero():
		return ""
	}
	return p.Until.UTC().Format(UntilLayout)
}

// textPart is a literal (name "") or a placeholder.
type textPart struct {
	lit  string
	name string
}

// template is a text with its placeholders found.
type template struct {
	parts []textPart
}

// uses reports whether the text holds the placeholder name.
func (t *template) uses(name string) bool {
	return t != nil && slices.ContainsFunc(t.parts, func(p textPart) bool { return p.name == name })
}

// render writes the text with its placeholders filled.
func (t *template) render(p Placeholders) string {
	var b strings.Builder
	for _, part := range t.parts {
		switch part.name {
		case "":
			b.WriteString(part.lit)
		case PhUser:
			b.WriteString(p.User)
		case PhRule:
			b.WriteString(p.Rule)
		case PhWords:
			b.WriteString(strings.Join(p.Words, ", "))
		case PhUntil:
			b.WriteString(p.until())
		}
	}
	return b.String()
}

// parseTemplate finds the placeholders of a text. It returns nil for a text
// without placeholders or escaped braces (it is used as it is), and an
// error naming the first brace that is neither.
func parseTemplate(s string) (*template, error) {
	if !strings.ContainsAny(s, "{}") {
		return nil, nil
	}
	t := &template{}
	var lit strings.Builder
	flush := func() {
		if lit.Len() > 0 {
			t.parts = append(t.parts, textPart{lit: lit.String()})
			lit.Reset()
		}
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '{' && i+1 < len(s) && s[i+1] == '{':
			lit.WriteByte('{')
			i++
		case c == '}' && i+1 < len(s) && s[i+1] == '}':
			lit.WriteByte('}')
			i++
		case c == '}':
			return nil, fmt.Errorf("a } at byte %d closes nothing; write }} for a brace", i)
		case c == '{':
			end := strings.IndexAny(s[i+1:], "{}")
			if end < 0 || s[i+1+end] != '}' {
				return nil, fmt.Errorf("the { at byte %d is not closed; write {{ for a brace", i)
			}
			name := s[i+1 : i+1+end]
			if !slices.Contains(placeholderNames, name) {
				return nil, fmt.Errorf("{%s} is not a placeholder (one of {user}, {rule}, {words}, {until}); write {{ and }} for braces", name)
			}
			flush()
			t.parts = append(t.parts, textPart{name: name})
			i += end + 1
		default:
			lit.WriteByte(c)
		}
	}
	flush()
	return t, nil
}

// escapeText writes s so that parseTemplate reads it back unchanged: every
// brace doubled.
func escapeText(s string) string {
	return strings.NewReplacer("{", "{{", "}", "}}").Replace(s)
}

// Fill fills the placeholders of a resolved warn text of this action.
func (a *Action) Fill(res *Resolved, p Placeholders) {
	if a.text != nil {
		res.Text = a.text.render(p)
	}
}

// HasPlaceholders reports whether the rule's warn or reply texts hold
// placeholders to fill.
func (r *Rule) HasPlaceholders() bool {
	if r.replyText != nil {
		return true
	}
	for _, a := range r.Actions {
		if a.text != nil {
			return true
		}
	}
	return false
}

// FillReply returns the rule's reply with its placeholders filled (the
// rule's own reply when it has none).
func (r *Rule) FillReply(p Placeholders) *Reply {
	if r.Reply == nil || r.replyText == nil {
		return r.Reply
	}
	return &Reply{Code: r.Reply.Code, Text: r.replyText.render(p)}
}

// LooksUpWords reports whether the rule looks for the words of a list
// (contains_any, matched_words or mask with lists.NAME, or a rewrite that
// masks a list).
func (r *Rule) LooksUpWords() bool { return len(r.wordLists) > 0 }

// MatchedWords returns the entries of the lists the rule looks words up in
// that the event's text holds (message.text, or apply.msg for a join
// request), as the lists write them, sorted, each once. They are what
// {words} stands for and what the audit record lists. The slice may be
// shared with other rules' answers: callers must not change it.
func (r *Rule) MatchedWords(e *Env) []string {
	if len(r.wordLists) == 0 {
		return nil
	}
	// findReaders marks both read for a rule that looks up words.
	text, _ := e.m[varText].(string)
	if text == "" {
		text, _ = e.m[varApplyMsg].(string)
	}
	if text == "" {
		return nil
	}
	if len(r.wordLists) == 1 {
		return e.listMatched(r.wordLists[0], text)
	}
	var out []string
	for _, l := range r.wordLists {
		out = append(out, e.listMatched(l, text)...)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// listMatched returns the words l finds in text, sorted, each once: found
// once per text and kept for the next rule that asks. The slice is shared;
// callers must not change it.
func (e *Env) listMatched(l *wordlist.List, text string) []string {
	for _, m := range e.words.matched {
		if m.list == l {
			return m.words
		}
	}
	words := l.Matched(&e.words.scratch, text)
	slices.Sort(words)
	words = slices.Compact(words)
	e.words.matched = append(e.words.matched, listWords{list: l, words: words})
	return words
}

// ruleWordLists names the lists whose words r's expressions look for.
func ruleWordLists(r *Rule) []string {
	names := map[string]bool{}
	for _, p := range ruleProgs(r) {
		for name := range p.use.words {
			names[name] = true
		}
	}
	if r.Rewrite != nil && r.Rewrite.listName != "" {
		names[r.Rewrite.listName] = true
	}
	return sortedKeys(names)
}

// wordListsOf resolves list names to the compiled lists.
func wordListsOf(names []string, lists map[string]*wordlist.List) []*wordlist.List {
	var out []*wordlist.List
	for _, n := range names {
		if l := lists[n]; l != nil {
			out = append(out, l)
		}
	}
	return out
}

// isMuteKind reports whether kind is an action {until} reads the end of.
func isMuteKind(kind ActionKind) bool {
	return kind == ActMute || kind == ActBan || kind == ActMuteGroup
}

// UntilOf works out {until} from a rule's resolved actions: the end of the
// longest mute, ban or group mute among them, counted from now.
func UntilOf(actions []Resolved, now time.Time) (until time.Time, forever bool) {
	var longest int64
	for _, a := range actions {
		if isMuteKind(a.Kind) && a.Seconds > longest {
			longest = a.Seconds
		}
	}
	switch {
	case longest == PermanentSeconds:
		return time.Time{}, true
	case longest > 0:
		return now.Add(time.Duration(longest) * time.Second), false
	}
	return time.Time{}, false
}
