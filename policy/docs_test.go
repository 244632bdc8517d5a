package policy

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/timguard/timguard/audit"
)

// TestAuditDocsMatchTheRecords holds docs/audit.md to what is written: the
// example records are golden lines byte for byte, the field table names
// every field of a decision and of the other records, and every field the
// golden records hold.
func TestAuditDocsMatchTheRecords(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "docs", "audit.md"))
	if err != nil {
		t.Fatal(err)
	}
	golden := goldenLines(t)
	other, err := os.ReadFile(filepath.Join("..", "audit", "testdata", "records.golden"))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(strings.TrimSpace(string(other)), "\n") {
		golden[l] = true
	}

	t.Run("every example record is a golden line", func(t *testing.T) {
		blocks := regexp.MustCompile("(?s)```json\n(.*?)```").FindAllSubmatch(doc, -1)
		if len(blocks) == 0 {
			t.Fatal("docs/audit.md has no ```json example records")
		}
		for _, b := range blocks {
			for _, l := range bytes.Split(bytes.TrimSpace(b[1]), []byte("\n")) {
				if !golden[string(l)] {
					t.Errorf("docs/audit.md shows a record no golden test writes (copy it from the golden files):\n%s", l)
				}
			}
		}
	})

	documented := map[string]bool{}
	table := regexp.MustCompile("(?m)^\\| (`[^|]+) \\|")
	for _, m := range table.FindAllSubmatch(doc, -1) {
		for _, f := range regexp.MustCompile("`([a-z_]+)`").FindAllSubmatch(m[1], -1) {
			documented[string(f[1])] = true
		}
	}
	t.Run("the table names every field of the records", func(t *testing.T) {
		fields := append(jsonFields(reflect.TypeFor[Decision]()), jsonFields(reflect.TypeFor[audit.Record]())...)
		for _, f := range fields {
			if !documented[f] {
				t.Errorf("field %q is not in docs/audit.md's table", f)
			}
		}
		for f := range documented {
			if !slices.Contains(fields, f) {
				t.Errorf("docs/audit.md's table names %q, which no record has", f)
			}
		}
	})
	t.Run("the table names every field the golden records hold", func(t *testing.T) {
		for l := range golden {
			var rec map[string]json.RawMessage
			if err := json.Unmarshal([]byte(l), &rec); err != nil {
				t.Fatalf("golden line is not JSON: %s", l)
			}
			for k := range rec {
				if !documented[k] {
					t.Errorf("golden record field %q is not in docs/audit.md's table", k)
				}
			}
		}
	})
}

// jsonFields lists the JSON names of t's exported fields, embedded ones
// flattened.
func jsonFields(t reflect.Type) []string {
	var out []string
	for f := range t.Fields() {
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" {
			continue
		}
		if f.Anonymous && name == "" {
			out = append(out, jsonFields(f.Type)...)
			continue
		}
		out = append(out, name)
	}
	return out
}
