package app

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"
)

// TestOpsSavingAListFileReloadsTheRules: the file watcher follows the list
// files the rules read, so saving a list file puts its words in force.
func TestOpsSavingAListFileReloadsTheRules(t *testing.T) {
	list := filepath.Join(t.TempDir(), "words.txt")
	write(t, list, "casino\n")
	rules := fmt.Sprintf(`version: 1
lists:
  words: {file: %q}
rules:
  - {name: words, on: message, if: 'contains_any(message.text, lists.words)', verdict: block, reply: {code: 10107, text: "Not here."}}
`, list)
	o := startOps(t, rules, "")
	if r := o.message(opsGroup, "eve", "ＡＩＲＤＲＯＰ now"); r.ErrorCode != 0 {
		t.Fatalf("a word not yet listed answered %+v", r)
	}
	m := o.watcherReady(rules)
	before, _ := m.reloads()
	writeAtomic(t, list, "casino\nairdrop\n")
	o.waitMetric(30*time.Second, "a reload after the list file was saved", func(m metricSet) bool {
		ok, _ := m.reloads()
		return ok > before
	})
	if r := o.message(opsGroup, "eve", "ＡＩＲＤＲＯＰ now"); r.ErrorCode != 10107 {
		t.Errorf("after the list file was saved the word answered %+v, want 10107", r)
	}
}
