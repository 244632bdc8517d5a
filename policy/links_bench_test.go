package policy

import (
	"strings"
	"testing"
)

// BenchmarkFindURLs measures the link finder on a message of the IM
// server's largest size (12 KB) written to be slow: dotted words, links, a
// single long run of host characters, and plain text.
func BenchmarkFindURLs(b *testing.B) {
	const size = 12 << 10
	for _, bc := range []struct{ name, unit string }{
		{"dotted-words", "xy.zw "},
		{"links", "a.com/x "},
		{"one-long-host", "a.b"},
		{"plain-text", "hello world "},
		{"chinese-text", "你好世界，"},
	} {
		text := strings.Repeat(bc.unit, size/len(bc.unit)) + " evil.com/x"
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(int64(len(text)))
			for b.Loop() {
				if urls := FindURLs(text); len(urls) == 0 || urls[len(urls)-1] != "evil.com/x" {
					b.Fatalf("the last link was not found: %d links", len(urls))
				}
			}
		})
	}
}
