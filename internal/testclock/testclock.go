// Package testclock has the clocks tests hand to code that takes a
// func() time.Time: a Clock that stands still until the test moves or sets
// it, and a Shift, the real clock moved ahead by the time a test skips.
// Both are safe for concurrent use.
package testclock

import (
	"sync"
	"sync/atomic"
	"time"
)

// Clock is a settable clock.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// New returns a Clock that reads t.
func New(t time.Time) *Clock { return &Clock{t: t} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Add moves the clock by d.
func (c *Clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// Set sets the clock to t.
func (c *Clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

// Shift is the real clock moved ahead by what Add skipped. Its zero value
// reads the real time.
type Shift struct{ off atomic.Int64 }

// Now returns the real time plus the skipped time.
func (s *Shift) Now() time.Time { return time.Now().Add(time.Duration(s.off.Load())) }

// Add skips d.
func (s *Shift) Add(d time.Duration) { s.off.Add(int64(d)) }
