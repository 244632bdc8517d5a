package rules

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/expr-lang/expr/file"
)

// EvalError is an expression that failed while it ran. expr words its
// reason with the values involved, and those may be what a user wrote: a
// word of the message, a link, a number. Error gives the whole reason, for
// the people testing a rule (bot simulate, bot check); Redacted gives it with
// the values left out, for the audit log and the operational log, which never
// hold message text.
type EvalError struct {
	// Source is the expression as written in the rule file.
	Source string
	// Reason is expr's message, values included.
	Reason string
	// Line and Column locate the failure in Source (0 when unknown).
	Line, Column int
}

func (e *EvalError) Error() string { return e.Reason + e.position() }

// Redacted is Error with every value replaced by [value]: only the words of
// expr's own messages and what the rule's expression itself says stay.
func (e *EvalError) Redacted() string { return redactValues(e.Reason, e.Source) + e.position() }

func (e *EvalError) position() string {
	if e.Line == 0 {
		return ""
	}
	return fmt.Sprintf(" (%d:%d)", e.Line, e.Column)
}

// Redact returns err's text with the values of the EvalError it wraps
// replaced; an error that wraps none is returned whole.
func Redact(err error) string {
	msg := err.Error()
	var ee *EvalError
	if errors.As(err, &ee) {
		return strings.Replace(msg, ee.Error(), ee.Redacted(), 1)
	}
	return msg
}

// evalError turns an error of expr's virtual machine into an EvalError for
// the expression src.
func evalError(err error, src string) *EvalError {
	var fe *file.Error
	if errors.As(err, &fe) {
		return &EvalError{Source: src, Reason: fe.Message, Line: fe.Line, Column: fe.Column}
	}
	msg, _, _ := strings.Cut(err.Error(), "\n")
	return &EvalError{Source: src, Reason: strings.TrimSpace(msg)}
}

// valueMark stands for the values left out of a reason.
const valueMark = "[value]"

// redactValues keeps, of reason, the words expr's messages are made of, the
// words and quoted strings the expression src itself holds, and the
// punctuation between them. Everything else (a quoted string, a number, a
// word of a message) becomes [value], one mark for a run of them.
func redactValues(reason, src string) string {
	own := map[string]bool{}
	for _, w := range splitWords(src) {
		own[w] = true
	}
	var b strings.Builder
	var seps strings.Builder // separators waiting for what follows them
	lastRedacted := false
	emit := func(piece string, keep bool) {
		switch {
		case keep:
			b.WriteString(seps.String())
			b.WriteString(piece)
		case !lastRedacted:
			b.WriteString(seps.String())
			b.WriteString(valueMark)
		}
		seps.Reset()
		lastRedacted = !keep
	}
	for i := 0; i < len(reason); {
		c := reason[i]
		switch {
		case c == '"' || c == '`' || c == '\'':
			end := closingQuote(reason, i)
			quoted := reason[i:end]
			inner := quoted
			if s, err := strconv.Unquote(quoted); err == nil {
				inner = s
			} else if len(quoted) >= 2 && quoted[len(quoted)-1] == c {
				inner = quoted[1 : len(quoted)-1]
			}
			emit(quoted, quotedIn(src, inner))
			i = end
		case isWordSeparator(c):
			seps.WriteByte(c)
			i++
		default:
			end := i
			for end < len(reason) && !isWordSeparator(reason[end]) && !isQuote(reason[end]) {
				_, size := utf8.DecodeRuneInString(reason[end:])
				end += size
			}
			w := reason[i:end]
			emit(w, own[w] || (isExprWord(w) && !isNumber(w)))
			i = end
		}
	}
	b.WriteString(seps.String())
	return b.String()
}

// quotedIn reports whether s is src itself, or a string literal src holds
// in any of expr's quotes.
func quotedIn(src, s string) bool {
	if s == "" || s == src {
		return s != ""
	}
	for _, q := range []string{`"`, `'`, "`"} {
		if strings.Contains(src, q+s+q) {
			return true
		}
	}
	return false
}

// closingQuote returns the index just past the quote that closes the one at
// s[start] (past the end of s when none does). A double quote may be escaped
// with a backslash inside.
func closingQuote(s string, start int) int {
	q := s[start]
	for i := start + 1; i < len(s); i++ {
		switch s[i] {
		case '\\':
			if q == '"' {
				i++
			}
		case q:
			return i + 1
		}
	}
	return len(s)
}

// splitWords returns the words of s as redactValues sees them.
func splitWords(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r < utf8.RuneSelf && (isWordSeparator(byte(r)) || isQuote(byte(r))) }) //nolint:gosec // G115: r < utf8.RuneSelf fits a byte
}

// isWordSeparator reports the punctuation that stands between the words of
// a reason and is kept as it is.
func isWordSeparator(c byte) bool {
	switch c {
	case ' ', '\t', '\n', '(', ')', '[', ']', '{', '}', ',', ':', ';', '.':
		return true
	}
	return false
}

func isQuote(c byte) bool { return c == '"' || c == '`' || c == '\'' }

func isNumber(w string) bool {
	for i := 0; i < len(w); i++ {
		if w[i] < '0' || w[i] > '9' {
			return false
		}
	}
	return w != ""
}

// isExprWord reports the words that expr's runtime errors, and those of the
// Go functions its built-ins call (strconv, time, regexp, encoding/json,
// encoding/base64), are made of, the Go type names they print, and the
// operators. A message word that is none of these never reaches a log.
func isExprWord(w string) bool {
	switch w {
	case "a", "an", "the", "of", "to", "for", "from", "as", "at", "in", "is", "or", "and", "by", "with",
		"not", "non", "no", "be", "must", "got", "expected", "expecting", "after", "end", "too",
		"invalid", "operation", "argument", "arguments", "type", "least", "most", "call", "cannot", "use",
		"field", "name", "fetch", "get", "slice", "index", "out", "range", "array", "length", "enough",
		"number", "negative", "shift", "count", "concat", "flatten", "first", "last", "element", "elements",
		"keys", "values", "reverse", "take", "transform", "pairs", "pair", "uniq", "order", "sort", "asc",
		"desc", "date", "duration", "time", "unknown", "zone", "unit", "location", "program", "memory",
		"budget", "exceeded", "recursion", "depth", "error", "parsing", "parse", "syntax", "regexp",
		"missing", "closing", "repetition", "operator", "nested", "escape", "sequence", "class", "trailing",
		"backslash", "expression", "named", "capture", "unsupported", "Perl", "UTF", "large", "nests",
		"deeply", "repeat", "character", "looking", "beginning", "value", "illegal", "base64", "data",
		"input", "byte", "JSON", "literal", "object", "key", "top", "level", "string", "true", "false",
		"null", "nil", "divide", "zero", "integer", "overflow", "unexpected",
		"strconv", "Atoi", "ParseInt", "ParseFloat", "ParseBool", "ParseDuration",
		"int", "int8", "int16", "int32", "int64", "uint", "uint8", "uint16", "uint32", "uint64",
		"float", "float32", "float64", "bool", "rune", "interface", "map", "func", "function", "struct",
		"Duration", "Time", "Location", "bitnot", "abs", "ceil", "floor", "round", "len", "join", "mean",
		"median", "split", "splitAfter", "replace", "trim", "fromJSON", "toJSON", "fromBase64",
		"toBase64", "timezone", "upper", "lower", "min", "max", "sum",
		"gave", "positive", "write", "permanent", "forever", "rewrite", "text", "mask",
		"+", "-", "*", "/", "%", "<", "<=", ">", ">=", "==", "!=", "!", "&&", "||", "^", "**", "??", "|", "&":
		return true
	}
	return false
}
