package memory

import (
	"testing"

	"github.com/timguard/timguard/store/storetest"
)

func BenchmarkEnrich5Counters(b *testing.B) {
	storetest.BenchEnrich5Counters(b, New(Options{}))
}

func BenchmarkEnrich5CountersAndActivity(b *testing.B) {
	storetest.BenchEnrich5CountersAndActivity(b, New(Options{}))
}

func BenchmarkOutboxCycle(b *testing.B) {
	storetest.BenchOutboxCycle(b, New(Options{}))
}
