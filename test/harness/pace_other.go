//go:build !linux

package harness

import "time"

// pacer releases events at given times with time.Sleep, which may add up
// to a millisecond of lateness.
type pacer struct{}

func newPacer() *pacer { return &pacer{} }

func (*pacer) lock()   {}
func (*pacer) unlock() {}

func (*pacer) sleepUntil(t time.Time) { time.Sleep(time.Until(t)) }
