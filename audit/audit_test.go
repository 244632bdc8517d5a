package audit

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// stalledOutput is an output whose Write waits until release is closed, as
// standard output does when nobody reads the pipe.
type stalledOutput struct {
	release chan struct{}
	mu      sync.Mutex
	buf     bytes.Buffer
	writes  int
}

func newStalledOutput() *stalledOutput { return &stalledOutput{release: make(chan struct{})} }

func (s *stalledOutput) Write(p []byte) (int, error) {
	<-s.release
	s.mu.Lock()
	defer s.mu.Unlock()
	s.writes++
	return s.buf.Write(p)
}

func (s *stalledOutput) lines() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	text := strings.TrimSuffix(s.buf.String(), "\n")
	if text == "" {
		return nil
	}
	return strings.Split(text, "\n")
}

func record(i int) []byte { return fmt.Appendf(nil, `{"kind":"decision","event_id":"ev%04d"}`, i) }

func TestWriteLineNeverWaitsForAStalledOutput(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		out := newStalledOutput()
		w := New(out, nil)
		// Were WriteLine to wait for the output, this goroutine would
		// block for good and synctest would report a deadlock.
		for i := range 200 {
			w.WriteLine(record(i))
		}
		close(out.release)
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		got := out.lines()
		if len(got) != 200 {
			t.Fatalf("the output got %d records, want the 200 written", len(got))
		}
		for i, l := range got {
			if l != string(record(i)) {
				t.Fatalf("record %d is %q, want %q", i, l, record(i))
			}
		}
	})
}

func TestAFullBufferDropsCountsAndReportsRecordsUntilTheOutputCatchesUp(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		out := newStalledOutput()
		var onDrop atomic.Int64
		w := NewWithOptions(out, Options{Buffer: 4096, OnDrop: func() { onDrop.Add(1) }})
		if err := w.Ready(); err != nil {
			t.Fatalf("a new writer is not ready: %v", err)
		}
		const n = 1000 // 41 bytes each: ten times the buffer
		for i := range n {
			w.WriteLine(record(i))
		}
		synctest.Wait()
		dropped := w.Dropped()
		if dropped == 0 || dropped >= n {
			t.Fatalf("%d of %d records dropped with a 4 KiB buffer and a stalled output; want some but not all", dropped, n)
		}
		if got := onDrop.Load(); uint64(got) != dropped {
			t.Errorf("OnDrop heard of %d drops, Dropped says %d", got, dropped)
		}
		if err := w.Ready(); err == nil || !strings.Contains(err.Error(), fmt.Sprint(dropped)) {
			t.Errorf("Ready while dropping = %v, want an error naming the %d records dropped", err, dropped)
		}

		close(out.release)
		synctest.Wait()
		if err := w.Ready(); err != nil {
			t.Errorf("Ready after the output caught up = %v, want nil", err)
		}
		w.WriteLine(record(n))
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		got := out.lines()
		if want := n - int(dropped) + 1; len(got) != want {
			t.Fatalf("the output got %d records, want %d (written less dropped, plus one after)", len(got), want)
		}
		// What was kept is whole, in order, the oldest first.
		prev := -1
		for _, l := range got {
			var i int
			if _, err := fmt.Sscanf(l, `{"kind":"decision","event_id":"ev%04d"}`, &i); err != nil || i <= prev {
				t.Fatalf("record %q out of order or cut (previous %d): %v", l, prev, err)
			}
			prev = i
		}
		if got[len(got)-1] != string(record(n)) {
			t.Errorf("the record written after the output caught up is missing")
		}
	})
}

func TestCloseGivesUpOnAStalledOutput(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		out := newStalledOutput()
		w := New(out, nil)
		w.WriteLine(record(1))
		err := w.Close()
		if err == nil || !strings.Contains(err.Error(), "lost") {
			t.Errorf("Close with a stalled output = %v, want an error saying records are lost", err)
		}
		close(out.release)
		synctest.Wait()
		w.WriteLine(record(2)) // after Close: dropped, no panic
		if w.Dropped() != 1 {
			t.Errorf("a record written after Close: %d dropped, want 1", w.Dropped())
		}
	})
}

func TestLinesNeverInterleave(t *testing.T) {
	var buf lockedBuffer
	w := New(&buf, nil)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 500 {
				w.WriteLine(record(g*1000 + i))
			}
		})
	}
	wg.Wait()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	if len(lines) != 8*500 {
		t.Fatalf("%d lines, want %d", len(lines), 8*500)
	}
	for _, l := range lines {
		if !strings.HasPrefix(l, `{"kind":"decision"`) || !strings.HasSuffix(l, `"}`) {
			t.Fatalf("line %q is cut or mixed", l)
		}
	}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func TestFlushWaitsUntilTheOutputHasTheRecords(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		out := newStalledOutput()
		w := New(out, nil)
		for i := range 3 {
			w.WriteLine(record(i))
		}
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		err := w.Flush(ctx)
		cancel()
		if err == nil {
			t.Fatal("Flush returned nil while the output was stalled")
		}
		close(out.release)
		if err := w.Flush(t.Context()); err != nil {
			t.Fatalf("Flush after the output took the records: %v", err)
		}
		if got := out.lines(); len(got) != 3 {
			t.Errorf("after Flush the output has %d records, want 3", len(got))
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		if err := w.Flush(t.Context()); err != nil {
			t.Errorf("Flush after Close = %v, want nil", err)
		}
	})
}

// With Linger, the writer woken by a record waits for more before it
// writes: one Write serves them all. Flush, Close and a quarter-full queue
// end the wait at once (the bubble's clock shows no time passed).
func TestLingerGathersRecordsIntoOneWrite(t *testing.T) {
	const linger = 10 * time.Millisecond
	newOut := func() *stalledOutput {
		out := newStalledOutput()
		close(out.release)
		return out
	}
	writes := func(out *stalledOutput) int {
		out.mu.Lock()
		defer out.mu.Unlock()
		return out.writes
	}
	t.Run("the linger passes", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			out := newOut()
			w := NewWithOptions(out, Options{Linger: linger})
			defer w.Close()
			for i := range 50 {
				w.WriteLine(record(i))
			}
			synctest.Wait()
			if n := writes(out); n != 0 {
				t.Fatalf("%d writes before the linger passed, want 0", n)
			}
			time.Sleep(linger)
			synctest.Wait()
			if n, lines := writes(out), len(out.lines()); n != 1 || lines != 50 {
				t.Errorf("after the linger: %d writes of %d records, want 1 of 50", n, lines)
			}
		})
	})
	for _, tc := range []struct {
		name  string
		opts  Options
		lines int
		end   func(w *Writer) error
	}{
		{"Flush", Options{Linger: time.Hour}, 3, func(w *Writer) error { return w.Flush(context.Background()) }},
		{"Close", Options{Linger: time.Hour}, 3, (*Writer).Close},
		// 25 records of 40 bytes fill a quarter of 4,000 bytes with the
		// last one.
		{"a quarter-full queue", Options{Linger: time.Hour, Buffer: 4000}, 25, func(*Writer) error { synctest.Wait(); return nil }},
	} {
		t.Run(tc.name+" ends the linger", func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				out := newOut()
				w := NewWithOptions(out, tc.opts)
				defer w.Close()
				start := time.Now()
				for i := range tc.lines {
					w.WriteLine(record(i))
				}
				if err := tc.end(w); err != nil {
					t.Fatal(err)
				}
				if n, lines := writes(out), len(out.lines()); n != 1 || lines != tc.lines {
					t.Errorf("%d writes of %d records, want 1 of %d", n, lines, tc.lines)
				}
				if waited := time.Since(start); waited != 0 {
					t.Errorf("the records waited %v", waited)
				}
			})
		})
	}
}

// A record that arrives while the writer lingers leaves a wake-up behind;
// Close must not start a second linger on it.
func TestCloseEndsEveryLinger(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		out := newStalledOutput()
		close(out.release)
		w := NewWithOptions(out, Options{Linger: time.Hour})
		start := time.Now()
		w.WriteLine(record(1))
		synctest.Wait() // the writer lingers
		w.WriteLine(record(2))
		if err := w.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		if got := len(out.lines()); got != 2 {
			t.Errorf("%d records written, want 2", got)
		}
		if waited := time.Since(start); waited != 0 {
			t.Errorf("Close waited %v", waited)
		}
	})
}
