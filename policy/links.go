package policy

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// maxURLScanBytes bounds the text FindURLs reads in one message. The IM
// server refuses messages over 12 KB, so every message it sends is read
// whole; the bound keeps a larger body from costing more.
const maxURLScanBytes = 64 << 10

// FindURLs returns every link in the first maxURLScanBytes of text, in
// order, as written, without trailing punctuation. A link is
//
//   - a scheme link: http://, https:// or ftp:// up to the next space;
//   - a www. link up to the next space;
//   - a host (labels joined by dots, ending in a top-level domain of two or
//     more letters) followed by a path (t.me/x, bit.ly/y), or a bare host
//     whose top-level domain people use for links (example.com).
//
// Words with dots that are not links (e.g., xy.zw, 1.2.3, report.pdf) are
// skipped as the text is read, so any number of them before a link does
// not hide it. The work is linear in the bytes read.
func FindURLs(text string) []string {
	text = text[:min(len(text), maxURLScanBytes)]
	if !strings.ContainsAny(text, "./") {
		return nil
	}
	var out []string
	for tok := range strings.FieldsFuncSeq(text, isLinkSeparator) {
		if strings.ContainsAny(tok, "./") { // every link has a dot or a slash
			out = appendLinks(out, tok)
		}
	}
	return out
}

// isLinkSeparator reports the characters no link contains: spaces and the
// quotes and brackets that surround links in text.
func isLinkSeparator(r rune) bool {
	switch r {
	case '<', '>', '"', '\'', '`':
		return true
	}
	return unicode.IsSpace(r)
}

// appendLinks appends the links in tok, a piece of text without separators.
// It reads tok from left to right, one run of host characters (letters,
// digits, dots and hyphens) at a time; two dots in a row split a run into
// segments, each read on its own (x..evil.com holds evil.com).
func appendLinks(out []string, tok string) []string {
	for i := 0; i < len(tok); {
		if !isHostByte(tok[i]) || tok[i] == '.' || tok[i] == '-' {
			i++
			continue
		}
		start := i
		end := start
		for end < len(tok) && isHostByte(tok[end]) {
			end++
		}
		rest := tok[start:]
		if hasPrefixFold(rest, "http://") || hasPrefixFold(rest, "https://") || hasPrefixFold(rest, "ftp://") ||
			(hasPrefixFold(rest, "www.") && len(rest) > len("www.")) {
			if link := trimLink(rest); link != "" {
				out = append(out, link)
			}
			return out
		}
		segment := tok[start:end]
		if k := strings.Index(segment, ".."); k >= 0 {
			segment = segment[:k]
		}
		// The host is the longest start of the segment that ends in a
		// top-level domain: a later start within the segment would end at
		// the same place, so the segment is done with either way.
		i = start + len(segment)
		host := hostPrefix(segment)
		if host == "" {
			continue
		}
		if after := start + len(host); after < len(tok) && tok[after] == '/' {
			return append(out, trimLink(rest))
		}
		if commonTLD(host) {
			out = append(out, host)
		}
	}
	return out
}

// hostPrefix returns the longest start of segment (labels joined by single
// dots) that is a host: two labels or more, the last starting with two
// letters or more, of which it keeps the letters (evil.com123 gives
// evil.com). Labels before the last may be anything (1.1.evil.com,
// v1.2.evil.com). It returns "" when segment has no such start.
func hostPrefix(segment string) string {
	best := ""
	labelStart := 0
	for i := 0; i <= len(segment); i++ {
		if i < len(segment) && segment[i] != '.' {
			continue
		}
		if labelStart > 0 {
			letters := labelStart
			for letters < i && isASCIILetter(segment[letters]) {
				letters++
			}
			if letters-labelStart >= 2 {
				best = segment[:letters]
			}
		}
		labelStart = i + 1
	}
	return best
}

// trimLink drops the punctuation that ends a sentence or closes a bracket
// after a link.
func trimLink(s string) string {
	for s != "" {
		r, size := utf8.DecodeLastRuneInString(s)
		if strings.ContainsRune(".,;:!?)]}", r) || (r >= utf8.RuneSelf && r != utf8.RuneError && (unicode.IsPunct(r) || unicode.IsSpace(r))) {
			s = s[:len(s)-size]
			continue
		}
		return s
	}
	return s
}

func isHostByte(c byte) bool {
	return isASCIILetter(c) || c >= '0' && c <= '9' || c == '.' || c == '-'
}

func isASCIILetter(c byte) bool { return c|0x20 >= 'a' && c|0x20 <= 'z' }

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}

func commonTLD(host string) bool {
	i := strings.LastIndexByte(host, '.')
	if i < 0 {
		return false
	}
	switch strings.ToLower(host[i+1:]) {
	case "com", "net", "org", "io", "me", "ly", "gg", "cn", "ru", "co", "xyz", "top", "app", "dev", "info", "biz", "link", "site", "online", "club", "vip", "cc", "tv", "to", "in", "us", "uk", "de", "jp", "kr", "hk", "tw", "sg":
		return true
	}
	return false
}
