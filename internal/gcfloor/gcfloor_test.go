package gcfloor

import (
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"testing"
)

// The tests change the process's collector settings: none runs in
// parallel, and each puts GOGC's default back.

func read(t *testing.T, name string) uint64 {
	t.Helper()
	s := []metrics.Sample{{Name: name}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		t.Fatalf("metric %s is not supported", name)
	}
	return s[0].Value.Uint64()
}

// collectUntilTuned runs collections until the tuner has looked at n more
// of them (its cleanup runs on its own goroutine after a cycle).
func collectUntilTuned(t *testing.T, tu *Tuner, n int64) {
	t.Helper()
	want := tu.Tunes() + n
	for range 10000 {
		if tu.Tunes() >= want {
			return
		}
		runtime.GC()
		runtime.Gosched()
	}
	t.Fatalf("the tuner looked at %d collections, want %d", tu.Tunes(), want)
}

func unsetGOGC(t *testing.T) {
	t.Helper()
	if v, ok := os.LookupEnv("GOGC"); ok {
		t.Setenv("GOGC", v) // restored after the test
		os.Unsetenv("GOGC")
	}
}

func TestFloorRaisesTheHeapGoalOfASmallHeap(t *testing.T) {
	unsetGOGC(t)
	const floor = 32 << 20
	tu, why := Start(floor)
	if tu == nil {
		t.Fatalf("Start left the collector alone: %s", why)
	}
	defer tu.Stop()
	collectUntilTuned(t, tu, 2)
	runtime.GC() // a cycle with the percent in force sets the goal from it

	if got := debug.SetGCPercent(tu.Percent()); got != tu.Percent() {
		t.Errorf("the collector's percent is %d, the tuner set %d", got, tu.Percent())
	}
	if tu.Percent() <= basePercent {
		t.Fatalf("percent %d for a test binary's small heap (live %d bytes), want more than %d",
			tu.Percent(), read(t, "/gc/heap/live:bytes"), basePercent)
	}
	live := read(t, "/gc/heap/live:bytes")
	goal := read(t, "/gc/heap/goal:bytes")
	// The percent is rounded down and moved only by tenths.
	if goal < live+floor*8/10 {
		t.Errorf("heap goal %d with %d live: want at least %d of room", goal, live, floor*8/10)
	}
	t.Logf("percent %d live %d stack %d globals %d goal %d", tu.Percent(), live, read(t, "/gc/scan/stack:bytes"), read(t, "/gc/scan/globals:bytes"), goal)
	if goal > live+2*floor {
		t.Errorf("heap goal %d with %d live: room far beyond the floor %d", goal, live, floor)
	}

	tu.Stop()
	if got := debug.SetGCPercent(basePercent); got != basePercent {
		t.Errorf("after Stop the percent is %d, want %d", got, basePercent)
	}
	n := tu.Tunes()
	runtime.GC()
	runtime.GC()
	if tu.Tunes() != n {
		t.Errorf("the tuner looked at %d collections after Stop", tu.Tunes()-n)
	}
}

func TestALargeLiveHeapKeepsTheDefault(t *testing.T) {
	unsetGOGC(t)
	// 48 MiB live against a 4 MiB floor: GOGC=100 already gives more room.
	keep := make([][]byte, 48)
	for i := range keep {
		keep[i] = make([]byte, 1<<20)
	}
	tu, why := Start(4 << 20)
	if tu == nil {
		t.Fatalf("Start left the collector alone: %s", why)
	}
	defer tu.Stop()
	collectUntilTuned(t, tu, 2)
	if tu.Percent() != basePercent {
		t.Errorf("percent %d with %d bytes live and a 4 MiB floor, want %d", tu.Percent(), read(t, "/gc/heap/live:bytes"), basePercent)
	}
	runtime.KeepAlive(keep)
}

func TestGOGCInTheEnvironmentIsLeftAlone(t *testing.T) {
	t.Setenv("GOGC", "150")
	before := debug.SetGCPercent(basePercent)
	debug.SetGCPercent(before)
	tu, why := Start(DefaultFloor)
	if tu != nil {
		tu.Stop()
		t.Fatal("Start tuned the collector although GOGC is set")
	}
	if why == "" {
		t.Error("Start gave no reason for leaving the collector alone")
	}
	if got := debug.SetGCPercent(before); got != before {
		t.Errorf("the percent changed from %d to %d", before, got)
	}
}

func TestNoFloorNoTuner(t *testing.T) {
	unsetGOGC(t)
	if tu, _ := Start(0); tu != nil {
		tu.Stop()
		t.Fatal("Start(0) tuned the collector")
	}
	var tu *Tuner
	tu.Stop() // a nil tuner stops as a no-op
}
