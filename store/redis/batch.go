package redis

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	goredis "github.com/redis/go-redis/v9"
)

// BatchOptions configure how the Enrich and Commit calls of concurrent
// callers, and the scripts the executor runs one call at a time
// (completions, mutes, the shared REST budget's limiter), share pipelines.
// Zero values take the defaults.
//
// Each call builds its commands on its own, then hands them to a sender
// goroutine (Senders of them). A sender takes the first call waiting and every other
// call already waiting, up to MaxSize, and sends them all in one pipeline:
// one write, one read and one connection from the pool for all of them,
// and for Redis one read event instead of one per call. While pipelines are
// out, new calls wait, so under load pipelines fill without any delay; a
// call that finds a sender free goes at once.
//
// A call waits for its pipeline no longer than its own deadline (that of its
// context, bounded by Options.Timeout): one slow pipeline never holds a
// callback past it, and other senders, if any, go on meanwhile. The wait is
// on the call's own channel, which the sender or, at the deadline, a timer
// the call reuses signals, whichever settles the call first: a receive on
// one channel costs less than a select over two, and a callback's context
// (lazyctx) makes its own timer and done channel only for what waits on
// Done. A call whose context is cancelled before its pipeline is
// sent is left out of it and fails with the context's error; once sent, its
// caller waits for the pipeline, up to its deadline, as for one of its own.
// A call whose commands fail (a wrong type, a missing script) fails alone;
// one that cannot reach Redis fails with store.ErrUnavailable, as without
// batching.
type BatchOptions struct {
	// MaxSize is the most calls one pipeline carries. Default 32; 1 turns
	// batching off: each call sends its own pipeline.
	MaxSize int
	// MaxWait is how long a sender whose pipeline is not full keeps
	// gathering calls, yielding the CPU to the goroutines about to make
	// them. Default 0: only calls already waiting join. A wait costs CPU
	// (the sender spins) and adds up to MaxWait to a call's latency.
	MaxWait time.Duration
	// Senders is the most pipelines out at once. Default 1: every call
	// made while the pipeline is out joins the next, so pipelines carry
	// about half again as many calls as with two out, and each pipeline
	// costs the bot and Redis a write and a read on the socket (on
	// loopback, about as much CPU as its commands). A call waits for at
	// most the pipeline out and its own.
	Senders int
}

// Batch defaults.
const (
	DefaultBatchMaxSize = 32
	DefaultBatchSenders = 1
)

func (o *BatchOptions) defaults() {
	if o.MaxSize <= 0 {
		o.MaxSize = DefaultBatchMaxSize
	}
	if o.Senders <= 0 {
		o.Senders = DefaultBatchSenders
	}
	o.MaxWait = max(o.MaxWait, 0)
}

// batchMaxCommands is the most commands a call may have to be batched;
// larger calls (an event with very many subjects) send their own pipeline,
// so that a batch stays small enough to answer quickly.
const batchMaxCommands = 64

// call is one Enrich or Commit part waiting for a pipeline.
type call struct {
	ctx context.Context
	// deadline is the call's, which ctx may not carry: the caller waits
	// no longer, on timer.
	deadline time.Time
	// timer runs expire at the deadline.
	timer *time.Timer
	cmds  []goredis.Cmder
	// state says who settled the call: no one yet (callWaiting), the
	// sender (callRan: its pipeline ran or failed, or the sender left it
	// out because its context or deadline ended first) or the timer
	// (callExpired).
	state atomic.Int32
	// done receives once, when the call is settled.
	done chan struct{}
	// err is a failure of the whole pipeline that go-redis set on none of
	// its commands.
	err error
}

// A call's states.
const (
	callWaiting int32 = iota
	callRan
	callExpired
)

// settle tells the waiter that the sender is done with c, unless its
// deadline came first.
func (c *call) settle() {
	if c.state.CompareAndSwap(callWaiting, callRan) {
		c.done <- struct{}{}
	}
}

// expire ends the wait at the deadline, unless the sender settled c first.
func (c *call) expire() {
	if c.state.CompareAndSwap(callWaiting, callExpired) {
		c.done <- struct{}{}
	}
}

// batcher runs the senders.
type batcher struct {
	rdb     goredis.UniversalClient
	opts    BatchOptions
	queue   chan *call
	stop    chan struct{}
	stopOne sync.Once
	stopped sync.WaitGroup
	sizes   prometheus.Observer
	calls   sync.Pool
}

func newBatcher(rdb goredis.UniversalClient, opts BatchOptions, reg prometheus.Registerer) *batcher {
	b := &batcher{
		rdb:   rdb,
		opts:  opts,
		queue: make(chan *call, opts.MaxSize*opts.Senders*4),
		stop:  make(chan struct{}),
		calls: sync.Pool{New: func() any {
			c := &call{done: make(chan struct{}, 1)}
			c.timer = time.AfterFunc(time.Hour, c.expire)
			c.timer.Stop()
			return c
		}},
	}
	h := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "timguard_store_batch_size",
		Help:    "Store calls (Enrich, Commit, the executor's scripts) sent to Redis in one pipeline.",
		Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 128},
	})
	if reg != nil {
		if err := reg.Register(h); err != nil {
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				if existing, ok := are.ExistingCollector.(prometheus.Histogram); ok {
					h = existing
				}
			}
		}
	}
	b.sizes = h
	for range opts.Senders {
		b.stopped.Go(b.send)
	}
	return b
}

// close stops the senders once the calls they hold are sent.
func (b *batcher) close() {
	b.stopOne.Do(func() { close(b.stop) })
	b.stopped.Wait()
}

// do sends cmds in a shared pipeline and waits for it until deadline (ctx's
// cancellation leaves cmds out of a pipeline not yet sent, with ctx's
// error, but does not end the wait: see BatchOptions). It returns the
// first error of cmds other than goredis.Nil, as Exec would for a pipeline
// of their own, and whether they ran: when the wait ends first, cmds may
// still be in use and must not be read.
func (b *batcher) do(ctx context.Context, deadline time.Time, cmds []goredis.Cmder) (bool, error) {
	c := b.calls.Get().(*call)
	c.ctx, c.deadline, c.cmds, c.err = ctx, deadline, cmds, nil
	c.state.Store(callWaiting)
	c.timer.Reset(time.Until(deadline))
	// The queue has room but when Redis falls behind: try it first, on
	// its own, which costs less than the select over every case below.
	select {
	case <-b.stop:
		b.release(c)
		return false, goredis.ErrClosed
	default:
	}
	select {
	case b.queue <- c:
	default:
		select {
		case b.queue <- c:
		case <-b.stop:
			b.release(c)
			return false, goredis.ErrClosed
		case <-c.done:
			// Expired before a sender took it: no one holds c, but
			// its timer has run, and c is left to the collector.
			return false, context.DeadlineExceeded
		}
	}
	<-c.done
	if c.state.Load() == callExpired {
		// The sender still holds c: it is not reused.
		return false, context.DeadlineExceeded
	}
	err := c.err
	b.release(c)
	if err != nil {
		return false, err
	}
	return true, firstErr(cmds)
}

// release puts back a call no sender holds. A call whose timer has
// started expire (which may still be running) is left to the collector:
// reused, it could be expired by its previous deadline.
func (b *batcher) release(c *call) {
	c.ctx, c.cmds, c.err = nil, nil, nil
	if c.timer.Stop() {
		b.calls.Put(c)
	}
}

// firstErr is the first error of cmds other than goredis.Nil.
func firstErr(cmds []goredis.Cmder) error {
	for _, c := range cmds {
		if err := c.Err(); err != nil && !errors.Is(err, goredis.Nil) {
			return err
		}
	}
	return nil
}

// send is one sender: it gathers calls and sends them until close. Its
// pipeline and the list of commands are reused from batch to batch.
func (b *batcher) send() {
	batch := make([]*call, 0, b.opts.MaxSize)
	x := &sender{pipe: b.rdb.Pipeline()}
	for {
		var first *call
		select {
		case first = <-b.queue:
		case <-b.stop:
			// Send what is still waiting, then stop.
			for {
				batch = b.gather(batch[:0])
				if len(batch) == 0 {
					return
				}
				b.exec(x, batch)
				clear(batch)
			}
		}
		batch = b.gather(append(batch[:0], first))
		b.exec(x, batch)
		clear(batch)
	}
}

// sender is what one sender reuses.
type sender struct {
	pipe goredis.Pipeliner
	cmds []goredis.Cmder
}

// gather adds the calls waiting, up to MaxSize, and with MaxWait keeps
// gathering for that long while the pipeline is not full.
func (b *batcher) gather(batch []*call) []*call {
	var start time.Time
	for len(batch) < b.opts.MaxSize {
		select {
		case c := <-b.queue:
			batch = append(batch, c)
			continue
		default:
		}
		if b.opts.MaxWait <= 0 || len(batch) == 0 {
			break
		}
		if start.IsZero() {
			start = time.Now()
		} else if time.Since(start) >= b.opts.MaxWait {
			break
		}
		runtime.Gosched()
	}
	return batch
}

// exec sends the calls of batch whose callers still wait in one pipeline,
// bounded by the latest of their deadlines, and tells each caller.
func (b *batcher) exec(x *sender, batch []*call) {
	now := time.Now()
	var deadline time.Time
	live := 0
	for _, c := range batch {
		if err := c.ctx.Err(); err != nil {
			c.err = err // its caller has gone, or goes now
			continue
		}
		if !now.Before(c.deadline) {
			c.err = context.DeadlineExceeded
			continue
		}
		if c.deadline.After(deadline) {
			deadline = c.deadline
		}
		x.cmds = append(x.cmds, c.cmds...)
		live++
	}
	if live > 0 {
		b.sizes.Observe(float64(live))
		ctx, cancel := context.WithDeadline(context.Background(), deadline)
		// The pipeline takes a copy of the list, which Exec hands on.
		_ = x.pipe.BatchProcess(ctx, x.cmds...)
		clear(x.cmds)
		x.cmds = x.cmds[:0]
		if cmds, err := x.pipe.Exec(ctx); err != nil && firstErr(cmds) == nil {
			// go-redis sets a failure of the whole pipeline on each of its
			// commands; should it not, every caller gets it.
			for _, c := range batch {
				if c.err == nil {
					c.err = err
				}
			}
		}
		cancel()
	}
	for _, c := range batch {
		c.settle()
	}
}
