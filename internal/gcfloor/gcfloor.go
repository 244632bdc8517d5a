// Package gcfloor lets a process whose live heap is small collect less
// often: it keeps the heap goal at least Floor bytes above the live heap,
// and leaves the collector as GOGC=100 has it once the live heap is large
// enough for that to give as much room.
//
// The bot keeps a few megabytes live (rules, caches, pools) and allocates
// about 13 KB per callback. With GOGC=100 the heap goal is about twice the
// live heap, so at 8,000 callbacks a second it collected some 20 times a
// second; each cycle wakes mark workers on every processor and assists the
// callbacks that allocate during it. A floor of 64 MiB makes that one or two
// cycles a second, for at most Floor more memory. A large live heap (a word
// list of 50,000 entries with its automaton) gets no floor beyond GOGC=100's
// own room, so memory is not multiplied, only raised by at most Floor.
//
// The floor is the collector's percent (debug.SetGCPercent) recomputed after
// every cycle from what the cycle found live. GOMEMLIMIT, when set, still
// bounds the heap: the runtime collects earlier to stay under it. An
// operator who sets GOGC keeps it: Start does nothing then.
package gcfloor

import (
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"sync/atomic"
)

// DefaultFloor is the room the bot's heap gets before a collection.
const DefaultFloor = 64 << 20

// basePercent is GOGC's default, which the floor never goes below.
const basePercent = 100

// heapMinimum is the runtime's smallest heap goal at GOGC=100
// (defaultHeapMinimum in runtime/mgcpacer.go); it scales with the percent.
const heapMinimum = 4 << 20

// live are the metrics GOGC's percent applies to: the heap marked live by
// the last cycle, and the stacks and globals it scanned.
var live = []string{"/gc/heap/live:bytes", "/gc/scan/stack:bytes", "/gc/scan/globals:bytes"}

// Tuner keeps the floor. Stop ends it and puts GOGC's default back.
type Tuner struct {
	floor   uint64
	mu      sync.Mutex
	stopped bool
	samples []metrics.Sample
	percent atomic.Int64
	// tunes counts the cycles the tuner looked at.
	tunes atomic.Int64
}

// Start keeps the heap goal at least floor bytes above the live heap, from
// the next collection on. It returns nil and says why when it leaves the
// collector alone: GOGC is set in the environment, or floor is 0.
func Start(floor uint64) (*Tuner, string) {
	if v, ok := os.LookupEnv("GOGC"); ok {
		return nil, fmt.Sprintf("GOGC=%s is set: the collector is left as it says", v)
	}
	if floor == 0 {
		return nil, "no floor"
	}
	t := &Tuner{floor: floor, samples: make([]metrics.Sample, len(live))}
	for i, name := range live {
		t.samples[i].Name = name
	}
	t.percent.Store(basePercent)
	t.tune()
	t.arm()
	return t, fmt.Sprintf("the heap may grow %d MiB past what is live before a collection (GOGC=%d beyond that; set GOGC to choose otherwise)", floor>>20, basePercent)
}

// sentinel is an object that lives until the next collection. It holds a
// pointer so that it is not a tiny allocation, whose cleanup could wait
// for its neighbours.
type sentinel struct {
	_ *byte
	_ [8]byte
}

// arm runs tune after the next collection, and so on until Stop.
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
	var used uint64
	for _, s := range t.samples {
		if s.Value.Kind() == metrics.KindUint64 {
			used += s.Value.Uint64()
		}
	}
	used = max(used, 1)
	// The runtime's goal is at least its heap minimum, 4 MiB times the
	// percent over 100: for a heap of a few hundred kilobytes that, not
	// the live heap, would set the room.
	p := min(t.floor*100/used, (used+t.floor)*100/heapMinimum)
	p = max(p, basePercent)
	// Setting the percent recomputes the pacer's goal under the heap lock:
	// cheap, but only worth it when the percent moves by a tenth.
	if cur := uint64(t.percent.Load()); p != cur && (p > cur+cur/10 || p < cur-cur/10 || p == basePercent) {
		debug.SetGCPercent(int(p))
		t.percent.Store(int64(p))
	}
}

// Percent is the collector's percent the tuner last set.
func (t *Tuner) Percent() int { return int(t.percent.Load()) }

// Tunes is how many collections the tuner has looked at.
func (t *Tuner) Tunes() int64 { return t.tunes.Load() }

// Stop ends the tuning and puts GOGC's default back.
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
	debug.SetGCPercent(basePercent)
	t.percent.Store(basePercent)
}
