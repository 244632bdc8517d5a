package lazyctx

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

// long bounds waits for something that must happen: it fails a test that
// hangs, it is no measure of speed.
const long = 30 * time.Second

type key struct{}

func waitDone(t *testing.T, done <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-done:
	case <-time.After(long):
		t.Fatalf("%s: not done after %v", what, long)
	}
}

// Every way a context ends gives the same Err as context.WithDeadline's,
// whether Done was called before (the real context) or not (computed).
func TestErrIsContextWithDeadlines(t *testing.T) {
	past := func() time.Time { return time.Now().Add(-time.Millisecond) }
	future := func() time.Time { return time.Now().Add(time.Hour) }
	cases := []struct {
		name     string
		deadline func() time.Time
		// end ends the parent (cancelParent) or the context (cancel).
		end  func(cancelParent, cancel context.CancelFunc)
		want error
	}{
		{"running", future, func(_, _ context.CancelFunc) {}, nil},
		{"deadline passed", past, func(_, _ context.CancelFunc) {}, context.DeadlineExceeded},
		{"cancelled", future, func(_, cancel context.CancelFunc) { cancel() }, context.Canceled},
		{"cancelled after the deadline", past, func(_, cancel context.CancelFunc) { cancel() }, context.DeadlineExceeded},
		{"parent cancelled", future, func(cancelParent, _ context.CancelFunc) { cancelParent() }, context.Canceled},
	}
	for _, tc := range cases {
		for _, doneFirst := range []bool{false, true} {
			name := tc.name
			if doneFirst {
				name += ", Done called first"
			}
			t.Run(name, func(t *testing.T) {
				d := tc.deadline()
				for _, impl := range []struct {
					name string
					with func(context.Context, time.Time) (context.Context, context.CancelFunc)
				}{{"context", context.WithDeadline}, {"lazyctx", WithDeadline}} {
					parent, cancelParent := context.WithCancel(context.Background())
					c, cancel := impl.with(parent, d)
					if doneFirst {
						_ = c.Done()
					}
					tc.end(cancelParent, cancel)
					if tc.want != nil && doneFirst {
						waitDone(t, c.Done(), impl.name)
					}
					if err := c.Err(); !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
						t.Errorf("%s: Err = %v, want %v", impl.name, err, tc.want)
					}
					cancel()
					cancelParent()
				}
			})
		}
	}
}

func TestDeadlineIsTheEarlierOfParentsAndOwn(t *testing.T) {
	now := time.Now()
	early, late := now.Add(time.Minute), now.Add(time.Hour)
	for _, tc := range []struct {
		name         string
		parent, own  time.Time
		want         time.Time
		parentHasOne bool
	}{
		{"no parent deadline", time.Time{}, late, late, false},
		{"parent's later", late, early, early, true},
		{"parent's earlier", early, late, early, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			parent := context.Background()
			if tc.parentHasOne {
				var cancel context.CancelFunc
				parent, cancel = context.WithDeadline(parent, tc.parent)
				defer cancel()
			}
			c, cancel := WithDeadline(parent, tc.own)
			defer cancel()
			got, ok := c.Deadline()
			if !ok || !got.Equal(tc.want) {
				t.Errorf("Deadline = %v, %v; want %v, true", got, ok, tc.want)
			}
		})
	}
}

// Done closes at the deadline, also when it is called long before it.
func TestDoneClosesAtTheDeadline(t *testing.T) {
	c, cancel := WithDeadline(context.Background(), time.Now().Add(20*time.Millisecond))
	defer cancel()
	if err := c.Err(); err != nil {
		t.Fatalf("Err before the deadline = %v", err)
	}
	waitDone(t, c.Done(), "context")
	if err := c.Err(); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Err = %v, want DeadlineExceeded", err)
	}
}

// A context derived from it with a later deadline of its own ends at this
// one's: context.WithTimeout trusts the parent's Done to close at the
// parent's deadline and makes no timer of its own.
func TestAChildWithALaterDeadlineEndsAtThisOne(t *testing.T) {
	c, cancel := WithDeadline(context.Background(), time.Now().Add(20*time.Millisecond))
	defer cancel()
	child, cancelChild := context.WithTimeout(c, time.Hour)
	defer cancelChild()
	waitDone(t, child.Done(), "child")
	if err := child.Err(); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("child's Err = %v, want DeadlineExceeded", err)
	}
}

func TestChildrenEndWithIt(t *testing.T) {
	for _, tc := range []struct {
		name string
		end  func(cancelParent, cancel context.CancelFunc)
		want error
	}{
		{"cancel", func(_, cancel context.CancelFunc) { cancel() }, context.Canceled},
		{"parent cancelled", func(cancelParent, _ context.CancelFunc) { cancelParent() }, context.Canceled},
	} {
		t.Run(tc.name, func(t *testing.T) {
			parent, cancelParent := context.WithCancel(context.Background())
			defer cancelParent()
			c, cancel := WithDeadline(parent, time.Now().Add(time.Hour))
			defer cancel()
			child, cancelChild := context.WithCancel(c)
			defer cancelChild()
			stopped := make(chan struct{})
			stop := context.AfterFunc(c, func() { close(stopped) })
			defer stop()
			tc.end(cancelParent, cancel)
			waitDone(t, child.Done(), "child")
			if err := child.Err(); !errors.Is(err, tc.want) {
				t.Errorf("child's Err = %v, want %v", err, tc.want)
			}
			select {
			case <-stopped:
			case <-time.After(long):
				t.Fatal("AfterFunc never ran")
			}
		})
	}
}

func TestCancelBeforeDoneGivesAClosedDone(t *testing.T) {
	c, cancel := WithDeadline(context.Background(), time.Now().Add(time.Hour))
	cancel()
	select {
	case <-c.Done():
	default:
		t.Fatal("Done is open after cancel")
	}
	if err := c.Err(); !errors.Is(err, context.Canceled) {
		t.Errorf("Err = %v, want Canceled", err)
	}
}

func TestValuesPassThrough(t *testing.T) {
	parent := context.WithValue(context.Background(), key{}, "v")
	c, cancel := WithDeadline(parent, time.Now().Add(time.Hour))
	defer cancel()
	if got := c.Value(key{}); got != "v" {
		t.Errorf("before Done: Value = %v, want v", got)
	}
	_ = c.Done()
	if got := c.Value(key{}); got != "v" {
		t.Errorf("after Done: Value = %v, want v", got)
	}
	if got := context.WithoutCancel(c).Value(key{}); got != "v" {
		t.Errorf("WithoutCancel: Value = %v, want v", got)
	}
}

// Done called at once from many goroutines makes one context: every caller
// gets the same channel, and cancel closes it.
func TestDoneFromManyGoroutinesIsOneChannel(t *testing.T) {
	c, cancel := WithDeadline(context.Background(), time.Now().Add(time.Hour))
	const n = 16
	chans := make([]<-chan struct{}, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			chans[i] = c.Done()
			_ = c.Err()
			_ = c.Value(key{})
		})
	}
	wg.Wait()
	for i, ch := range chans {
		if ch != chans[0] {
			t.Fatalf("goroutine %d got another channel", i)
		}
	}
	cancel()
	waitDone(t, c.Done(), "context")
}

// A context whose Done nobody calls costs the context and its cancel func,
// where context.WithDeadline's makes a timer and a done channel too, and
// registers with a parent that can be cancelled (its done channel, a map of
// children).
func TestNoDoneNoAllocationBeyondTheContext(t *testing.T) {
	parent, cancelParent := context.WithCancel(context.Background())
	defer cancelParent()
	d := time.Now().Add(time.Hour)
	lazy := testing.AllocsPerRun(100, func() {
		c, cancel := WithDeadline(parent, d)
		_ = c.Err()
		_, _ = c.Deadline()
		cancel()
	})
	std := testing.AllocsPerRun(100, func() {
		c, cancel := context.WithDeadline(parent, d)
		_ = c.Err()
		_ = c.Done() // what the batch sender's wait did
		cancel()
	})
	if lazy > 2 || lazy >= std {
		t.Errorf("%v allocations per context nobody waits on (context.WithDeadline's: %v), want 2", lazy, std)
	}
}

// Err, once it is not nil, stays what it was (context.Context's contract):
// whatever comes after, a Done called late or the parent ending late.
func TestErrDoesNotChangeOnceSet(t *testing.T) {
	t.Run("cancelled, then Done after the deadline", func(t *testing.T) {
		d := time.Now().Add(5 * time.Millisecond)
		c, cancel := WithDeadline(context.Background(), d)
		cancel()
		first := c.Err()
		for time.Now().Before(d) {
			time.Sleep(time.Millisecond)
		}
		<-c.Done()
		if err := c.Err(); !errors.Is(err, first) {
			t.Errorf("Err = %v after Done, %v before", err, first)
		}
	})
	t.Run("deadline passed, then the parent cancelled", func(t *testing.T) {
		parent, cancelParent := context.WithCancel(context.Background())
		c, cancel := WithDeadline(parent, time.Now().Add(-time.Millisecond))
		defer cancel()
		first := c.Err()
		if !errors.Is(first, context.DeadlineExceeded) {
			t.Fatalf("Err = %v, want DeadlineExceeded", first)
		}
		cancelParent()
		if err := c.Err(); !errors.Is(err, first) {
			t.Errorf("Err = %v after the parent ended, %v before", err, first)
		}
		<-c.Done()
		if err := c.Err(); !errors.Is(err, first) {
			t.Errorf("Err = %v after Done, %v before", err, first)
		}
	})
	t.Run("a child made late ends with the same error", func(t *testing.T) {
		parent, cancelParent := context.WithCancel(context.Background())
		c, cancel := WithDeadline(parent, time.Now().Add(-time.Millisecond))
		defer cancel()
		first := c.Err()
		cancelParent()
		child, cancelChild := context.WithCancel(c)
		defer cancelChild()
		<-child.Done()
		if err := child.Err(); !errors.Is(err, first) {
			t.Errorf("child's Err = %v, the context's %v", err, first)
		}
	})
}

// FuzzActsLikeContextWithDeadline runs a sequence of operations (Done, Err,
// cancel, the parent's cancel, a child derived) on a context of this
// package and on context.WithDeadline's side by side, with a deadline
// passed or an hour away, and compares them after every step: the same
// Err (but for the one difference the package documents), an Err that
// never changes once set, a Done closed exactly when Err is set, and
// children that end as the standard library's do.
func FuzzActsLikeContextWithDeadline(f *testing.F) {
	f.Add(false, []byte{0, 1, 2, 1})
	f.Add(true, []byte{3, 1, 0, 1})
	f.Add(true, []byte{1, 3, 1, 0, 4, 1})
	f.Add(false, []byte{4, 3, 1, 5})
	f.Add(false, []byte{2, 0, 4, 5, 3})
	f.Add(true, []byte{0, 2, 4, 1})
	f.Fuzz(func(t *testing.T, past bool, ops []byte) {
		if len(ops) > 64 {
			ops = ops[:64]
		}
		d := time.Now().Add(time.Hour)
		if past {
			d = time.Now().Add(-time.Millisecond)
		}
		parent, cancelParent := context.WithCancel(context.Background())
		defer cancelParent()
		lazy, cancelLazy := WithDeadline(parent, d)
		defer cancelLazy()
		std, cancelStd := context.WithDeadline(parent, d)
		defer cancelStd()

		// exempt: the parent ended, with the deadline passed, before the
		// lazy context first looked: its Err is then the parent's.
		looked, exempt := false, false
		var first error
		type pair struct{ lazy, std context.Context }
		var children []pair
		check := func(step int) {
			t.Helper()
			got, want := lazy.Err(), std.Err()
			looked = true
			if !exempt && !errors.Is(got, want) || (got == nil) != (want == nil) {
				t.Fatalf("step %d (%v): Err = %v, context.WithDeadline's %v", step, ops[:step+1], got, want)
			}
			if first != nil && !errors.Is(got, first) {
				t.Fatalf("step %d (%v): Err changed from %v to %v", step, ops[:step+1], first, got)
			}
			if got != nil {
				first = got
			}
			select {
			case <-lazy.Done():
				if got == nil {
					t.Fatalf("step %d (%v): Done closed while Err is nil", step, ops[:step+1])
				}
			default:
				if got != nil {
					t.Fatalf("step %d (%v): Err %v but Done open", step, ops[:step+1], got)
				}
			}
			for i, c := range children {
				if cg, cw := c.lazy.Err(), c.std.Err(); (cg == nil) != (cw == nil) || !exempt && !errors.Is(cg, cw) {
					t.Fatalf("step %d (%v): child %d's Err = %v, context.WithDeadline's child's %v", step, ops[:step+1], i, cg, cw)
				}
			}
		}
		for i, op := range ops {
			switch op % 6 {
			case 0:
				_, _ = lazy.Done(), std.Done()
				looked = true
			case 1:
				check(i)
			case 2:
				cancelLazy()
				cancelStd()
				looked = true
			case 3:
				if !looked && past {
					exempt = true
				}
				cancelParent()
			case 4:
				lc, lcancel := context.WithCancel(lazy)
				sc, scancel := context.WithCancel(std)
				defer lcancel()
				defer scancel()
				children = append(children, pair{lc, sc})
				looked = true
			case 5:
				check(i)
			}
		}
		check(len(ops) - 1)
	})
}
