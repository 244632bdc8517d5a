package gcfloor

import (
	"math"
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

// quietCollector unsets GOGC and lifts GOMEMLIMIT for the test (a limit
// below the floor would cap the goal it checks), and puts the collector's
// percent and limit back afterwards.
func quietCollector(t *testing.T) {
	t.Helper()
	if v, ok := os.LookupEnv("GOGC"); ok {
		t.Setenv("GOGC", v) // restored after the test
		os.Unsetenv("GOGC")
	}
	percent := debug.SetGCPercent(basePercent)
	limit := debug.SetMemoryLimit(math.MaxInt64)
	t.Cleanup(func() {
		debug.SetGCPercent(percent)
		debug.SetMemoryLimit(limit)
	})
}

// percentInForce reads the collector's percent.
func percentInForce() int64 {
	p := debug.SetGCPercent(basePercent)
	debug.SetGCPercent(p)
	return int64(p)
}

// startTuned starts a tuner with floor on a quiet collector, stopped after
// the test, and waits until it has looked at two collections.
func startTuned(t *testing.T, floor uint64) *Tuner {
	t.Helper()
	quietCollector(t)
	tu, why := Start(floor)
	if tu == nil {
		t.Fatalf("Start left the collector alone: %s", why)
	}
	t.Cleanup(tu.Stop)
	collectUntilTuned(t, tu, 2)
	return tu
}

func TestFloorRaisesTheHeapGoalOfASmallHeap(t *testing.T) {
	const floor = 32 << 20
	tu := startTuned(t, floor)
	runtime.GC() // a cycle with the percent in force sets the goal from it

	if got := percentInForce(); got != tu.Percent() {
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
	if got := percentInForce(); got != basePercent {
		t.Errorf("after Stop the percent is %d, want %d", got, basePercent)
	}
	n := tu.Tunes()
	runtime.GC()
	runtime.GC()
	if tu.Tunes() != n {
		t.Errorf("the tuner looked at %d collections after Stop", tu.Tunes()-n)
	}
}

func TestALiveHeapPastTheFloorGetsTheDefault(t *testing.T) {
	const floor = 16 << 20
	tu := startTuned(t, floor)
	if tu.Percent() <= basePercent {
		t.Fatalf("percent %d for a small heap, want more than %d", tu.Percent(), basePercent)
	}
	// 48 MiB live against a 16 MiB floor: GOGC=100 gives more room, and
	// the percent comes down to it.
	keep := make([][]byte, 48)
	for i := range keep {
		keep[i] = make([]byte, 1<<20)
	}
	collectUntilTuned(t, tu, 2)
	if tu.Percent() != basePercent {
		t.Errorf("percent %d with %d bytes live and a 16 MiB floor, want %d", tu.Percent(), read(t, "/gc/heap/live:bytes"), basePercent)
	}
	if got := percentInForce(); got != basePercent {
		t.Errorf("the collector's percent is %d, want %d", got, basePercent)
	}
	runtime.KeepAlive(keep)
}

// percentFor gives the floor whichever of the runtime's two goals (the
// live heap's, the heap minimum's) sets it, and never less than the base.
func TestPercentForGivesTheFloorOfRoom(t *testing.T) {
	const mib = 1 << 20
	goal := func(p int64, marked, used uint64) uint64 {
		return max(marked+used*uint64(p)/100, heapMinimum*uint64(p)/100)
	}
	for _, c := range []struct {
		name                string
		floor, marked, used uint64
		base                int
	}{
		{"tiny heap: the heap minimum sets the goal", 64 * mib, mib / 8, mib / 3, 100},
		{"the bot's heap", 64 * mib, 5 * mib, 6 * mib, 100},
		{"just under the floor", 64 * mib, 40 * mib, 60 * mib, 100},
		{"past the floor", 64 * mib, 80 * mib, 90 * mib, 100},
		{"a higher base", 8 * mib, 20 * mib, 24 * mib, 200},
		{"nothing live yet", 64 * mib, 0, 0, 100},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := percentFor(c.floor, c.marked, c.used, c.base)
			if p < int64(c.base) {
				t.Fatalf("percent %d below the base %d", p, c.base)
			}
			if g := goal(p, c.marked, c.used); g < c.marked+c.floor {
				t.Errorf("percent %d: goal %d, want at least %d", p, g, c.marked+c.floor)
			}
			if p > int64(c.base) {
				// Not more than needed: one percent less falls short.
				if g := goal(p-1, c.marked, c.used); g >= c.marked+c.floor {
					t.Errorf("percent %d: %d would do too (goal %d)", p, p-1, g)
				}
			}
		})
	}
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
	quietCollector(t)
	if tu, _ := Start(0); tu != nil {
		tu.Stop()
		t.Fatal("Start(0) tuned the collector")
	}
	var tu *Tuner
	tu.Stop() // a nil tuner stops as a no-op
}
