// Package gcfloor lets a process whose live heap is small collect less
// often: it keeps the heap goal at least Floor bytes above the live heap,
// and leaves the collector as GOGC=100 has it once the live heap (with the
// stacks and globals) passes Floor, where that gives as much room.
//
// The bot keeps a few megabytes live (rules, caches, pools) and allocates
// about 13 KB per callback. With GOGC=100 the heap goal is about twice the
// live heap, so at 9,000 callbacks a second it collected some 16 times a
// second; each cycle wakes mark workers on every processor and assists the
// callbacks that allocate during it. A floor of 64 MiB makes that one or two
// cycles a second. In a steady state the heap goal is the larger of the
// live heap plus Floor and twice the live heap: memory is raised by about
// Floor at most, not multiplied.
//
// The floor is the collector's percent (debug.SetGCPercent) recomputed
// after each cycle, once its sweep is done, from what the cycle found live.
// Until then the percent set for the previous cycle's live heap applies to
// the new one: a live heap that jumps within one cycle (a reload compiling
// a large word list, while the old rules are still live) gets that
// percent's room for one cycle, several times Floor. GOMEMLIMIT, when set,
// bounds the heap throughout: the runtime collects earlier to stay under
// it. An operator who sets GOGC keeps it: Start does nothing then.
package gcfloor

import (
	"fmt"
	"math"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"sync/atomic"
)

// DefaultFloor is the room the bot's heap gets before a collection.
const DefaultFloor = 64 << 20

// basePercent is GOGC's default.
const basePercent = 100

// heapMinimum is the runtime's smallest heap goal at GOGC=100
// (defaultHeapMinimum in runtime/mgcpacer.go); it scales with the percent.
const heapMinimum = 4 << 20

// live are the metrics GOGC's percent applies to: the heap marked live by
// the last cycle, and the stacks and globals it scanned.
var live = []string{"/gc/heap/live:bytes", "/gc/scan/stack:bytes", "/gc/scan/globals:bytes"}

// Tuner keeps the floor. Stop ends it and puts the percent in force
// before Start back.
type Tuner struct {
	floor   uint64
	base    int // the percent before Start, which the floor never goes below
	mu      sync.Mutex
	stopped bool
	samples []metrics.Sample
	percent atomic.Int64
	// tunes counts the times the tuner looked (at Start, then at most
	// once per collection).
	tunes atomic.Int64
}

// Start keeps the heap goal at least floor bytes above the live heap, from
// the next collection on. It returns nil and says why when it leaves the
// collector alone: GOGC is set in the environment, the collector is off,
// or floor is 0.
func Start(floor uint64) (*Tuner, string) {
	if v := os.Getenv("GOGC"); v != "" {
		return nil, fmt.Sprintf("GOGC=%s is set: the collector is left as it says", v)
	}
	if floor == 0 {
		return nil, "no floor"
	}
	// Reading the percent means setting one: the default, which the
	// percent is unless the program set another.
	base := debug.SetGCPercent(basePercent)
	if base < 0 {
		debug.SetGCPercent(base)
		return nil, "the collector is off: the floor is not needed"
	}
	t := &Tuner{floor: floor, base: base, samples: make([]metrics.Sample, len(live))}
	for i, name := range live {
		t.samples[i].Name = name
	}
	t.percent.Store(int64(base))
	t.tune()
	t.arm()
	return t, fmt.Sprintf("the heap may grow %d MiB past what is live before it reaches the collector's goal (GOGC=%d beyond that; set GOGC to choose otherwise)", floor>>20, base)
}

// sentinel is an object that lives until the next collection. It holds a
// pointer so that it is not a tiny allocation, whose cleanup could wait
// for its neighbours.
type sentinel struct {
	_ *byte
	_ [8]byte
}

// arm runs tune after a coming collection (its sweep done), and so on
// until Stop: at most once per collection, and a collection that starts
// before the cleanup re-arms is skipped.
func (t *Tuner) arm() {
	runtime.AddCleanup(new(sentinel), func(t *Tuner) {
		t.tune()
		t.mu.Lock()
		stopped := t.stopped
		t.mu.Unlock()
		if !stopped {
			t.arm()
		}
	}, t)
}

// tune sets the percent that gives the live heap floor bytes of room, or
// the base percent if that gives more.
func (t *Tuner) tune() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stopped {
		return
	}
	t.tunes.Add(1)
	metrics.Read(t.samples)
	var v [3]uint64
	for i, s := range t.samples {
		if s.Value.Kind() == metrics.KindUint64 {
			v[i] = s.Value.Uint64()
		}
	}
	p := percentFor(t.floor, v[0], v[0]+v[1]+v[2], t.base)
	// A higher percent is set at once, so that the room never falls short
	// of the floor; a lower one once it is a tenth lower (setting one
	// recomputes the pacer's goal under the heap lock: cheap, but not
	// worth it for a few percent).
	if cur := t.percent.Load(); p > cur || p < cur && (p <= cur-cur/10 || p == int64(t.base)) {
		debug.SetGCPercent(int(p))
		t.percent.Store(p)
	}
}

// maxPercent bounds the percent of a heap that is next to empty.
const maxPercent = 1 << 20

// percentFor is the smallest percent, not below base, whose heap goal is
// at least marked+floor: the runtime's goal is the larger of
// marked + used*percent/100 (used: the heap marked live, the stacks and the
// globals) and its heap minimum, heapMinimum*percent/100.
func percentFor(floor, marked, used uint64, base int) int64 {
	byLive := math.Ceil(float64(floor) * 100 / float64(max(used, 1)))
	byMinimum := math.Ceil(float64(marked+floor) * 100 / heapMinimum)
	p := math.Min(math.Min(byLive, byMinimum), maxPercent)
	return int64(math.Max(p, float64(base)))
}

// Percent is the collector's percent the tuner last set.
func (t *Tuner) Percent() int64 { return t.percent.Load() }

// Tunes is how many times the tuner has looked.
func (t *Tuner) Tunes() int64 { return t.tunes.Load() }

// Stop ends the tuning and puts the percent in force before Start back.
func (t *Tuner) Stop() {
	if t == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stopped {
		return
	}
	t.stopped = true
	debug.SetGCPercent(t.base)
	t.percent.Store(int64(t.base))
}
