package rules

import (
	"slices"
	"testing"
)

// TestReadBitsCoverEveryVariable: every variable Fill can set has its bit.
func TestReadBitsCoverEveryVariable(t *testing.T) {
	var all reads
	for k := range fieldProto {
		b, ok := readBits[k]
		if !ok {
			t.Errorf("%s has no bit", k)
		}
		if all&b != 0 {
			t.Errorf("%s shares its bit", k)
		}
		all |= b
	}
	if len(readBits) != len(fieldProto) || all != readAll {
		t.Errorf("%d bits for %d variables, all %b, want %b", len(readBits), len(fieldProto), all, readAll)
	}
	if !slices.Contains(Variables(), "user.id") {
		t.Error("Variables lost user.id")
	}
}
