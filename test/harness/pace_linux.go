package harness

import (
	"runtime"
	"syscall"
	"time"
)

// pacer releases events at given times. On Linux it sleeps with nanosleep
// on a thread of its own: the Go runtime rounds a sleep shorter than a
// millisecond up to a millisecond when nothing else runs, which would add
// up to 1 ms of the generator's own lateness to every latency measured
// from a request's scheduled time.
type pacer struct{}

func newPacer() *pacer { return &pacer{} }

// lock keeps the calling goroutine on its thread until unlock.
func (*pacer) lock()   { runtime.LockOSThread() }
func (*pacer) unlock() { runtime.UnlockOSThread() }

// sleepUntil returns at t or soon after.
func (*pacer) sleepUntil(t time.Time) {
	for {
		d := time.Until(t)
		if d <= 0 {
			return
		}
		ts := syscall.NsecToTimespec(int64(d))
		_ = syscall.Nanosleep(&ts, nil) // EINTR: loop and sleep the rest
	}
}
