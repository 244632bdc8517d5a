package redis

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/timguard/timguard/store"
	"github.com/timguard/timguard/store/internal/storeutil"
)

// capture records the pipelines a client would send, as the strings
// go-redis writes for their arguments, and sends none of them.
type capture struct {
	mu   sync.Mutex
	sent [][]string
	err  error
}

func (c *capture) DialHook(next goredis.DialHook) goredis.DialHook          { return next }
func (c *capture) ProcessHook(next goredis.ProcessHook) goredis.ProcessHook { return next }
func (c *capture) ProcessPipelineHook(next goredis.ProcessPipelineHook) goredis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []goredis.Cmder) error {
		c.mu.Lock()
		defer c.mu.Unlock()
		for _, cmd := range cmds {
			var args []string
			for _, a := range cmd.Args() {
				s, err := wire(a)
				if err != nil && c.err == nil {
					c.err = fmt.Errorf("%s: %w", cmd.Name(), err)
				}
				args = append(args, s)
			}
			c.sent = append(c.sent, args)
		}
		return nil
	}
}

func (c *capture) take(t *testing.T) [][]string {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		t.Fatal(c.err)
	}
	sent := c.sent
	c.sent = nil
	return sent
}

// wire is the bulk string go-redis' proto.Writer.WriteArg sends for the
// argument types the store uses.
func wire(a any) (string, error) {
	switch v := a.(type) {
	case string:
		return v, nil
	case *string:
		return *v, nil
	case int:
		return strconv.FormatInt(int64(v), 10), nil
	case int64:
		return strconv.FormatInt(v, 10), nil
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64), nil
	default:
		return "", fmt.Errorf("argument %v of type %T", a, a)
	}
}

// typedEnrich queues a one-part Enrich's commands (no activity) as go-redis'
// typed methods make them: what the store sent before cmdBuf.
func typedEnrich(ctx context.Context, pipe goredis.Pipeliner, k keys, req store.EnrichRequest) {
	now := storeutil.Ms(req.Now)
	nowS := ms(now)
	for _, c := range req.Counters {
		typedTouch(ctx, pipe, k.window(c.Key), req.EventID, c.Add, c.Window, now, nowS, true)
	}
	if req.Dedupe != "" {
		pipe.SetNX(ctx, k.dedupe(req.Dedupe), "1", req.DedupeTTL)
	}
	if req.WithModes {
		pipe.HGetAll(ctx, k.modes)
	}
	from := "(" + ms(now-req.StrikeDecay.Milliseconds())
	for _, u := range req.Strikes {
		pipe.ZCount(ctx, k.strikes(u.Group, u.User), from, nowS)
	}
	if req.RoleGroup != "" {
		pipe.HMGet(ctx, k.roles(req.RoleGroup), append([]string{roleMarker}, req.RoleUsers...)...)
	}
}

func typedTouch(ctx context.Context, pipe goredis.Pipeliner, key, id string, add int, span time.Duration, now int64, nowS string, read bool) {
	trim := add > 0 && trims(id)
	var fromS string
	if read || trim {
		fromS = ms(now - span.Milliseconds())
	}
	if add > 0 {
		if trim {
			pipe.ZRemRangeByScore(ctx, key, "-inf", fromS)
		}
		zs := make([]goredis.Z, add)
		for i := range zs {
			zs[i] = goredis.Z{Score: float64(now), Member: storeutil.Member(id, i)}
		}
		pipe.ZAddNX(ctx, key, zs...)
		pipe.PExpire(ctx, key, span+storeutil.ExpirySlack)
	}
	if read {
		pipe.ZCount(ctx, key, "("+fromS, nowS)
	}
}

// typedCommit is typedEnrich for a Commit without actions and decisions.
func typedCommit(ctx context.Context, pipe goredis.Pipeliner, k keys, req store.CommitRequest) {
	now := storeutil.Ms(req.Now)
	for _, st := range req.Strikes {
		key := k.strikes(st.Group, st.User)
		pipe.ZRemRangeByScore(ctx, key, "-inf", ms(now-req.StrikeDecay.Milliseconds()))
		if st.N > 0 {
			zs := make([]goredis.Z, st.N)
			for i := range zs {
				zs[i] = goredis.Z{Score: float64(now), Member: storeutil.Member(st.ID, i)}
			}
			pipe.ZAddNX(ctx, key, zs...)
			pipe.PExpire(ctx, key, req.StrikeDecay+storeutil.ExpirySlack)
		}
	}
	for _, c := range req.Touch {
		typedTouch(ctx, pipe, k.window(c.Key), req.EventID, c.Add, c.Window, now, "", false)
	}
}

// eventIDs returns an event id whose touches trim their windows and one
// whose touches do not.
func eventIDs() (trimming, keeping string) {
	for i := 0; trimming == "" || keeping == ""; i++ {
		id := "ev" + strconv.Itoa(i)
		if trims(id) {
			trimming = id
		} else {
			keeping = id
		}
	}
	return trimming, keeping
}

// The commands cmdBuf builds are, byte for byte, those go-redis' typed
// methods build for the same calls.
func TestBuiltCommandsAreTheTypedOnes(t *testing.T) {
	trimming, keeping := eventIDs()
	now := time.UnixMilli(1764871234567)
	alice, bob := store.UserRef{Group: "@TGS#1abc", User: "alice"}, store.UserRef{Group: "g:x", User: "b:ob"}
	counters := func(adds ...int) []store.CounterTouch {
		var cs []store.CounterTouch
		for i, add := range adds {
			cs = append(cs, store.CounterTouch{Key: "c" + strconv.Itoa(i) + "|@TGS#1abc/alice", Window: time.Duration(i+1) * 10 * time.Second, Add: add})
		}
		return cs
	}
	enrich := []struct {
		name string
		req  store.EnrichRequest
	}{
		{"counters that add and trim", store.EnrichRequest{Now: now, EventID: trimming, Counters: counters(1, 0, 3, 1)}},
		{"counters that add and keep", store.EnrichRequest{Now: now, EventID: keeping, Counters: counters(1, 1, 0, 2)}},
		{"counters that only read", store.EnrichRequest{Now: now, Counters: counters(0, 0)}},
		{"dedupe in whole seconds", store.EnrichRequest{Now: now, EventID: keeping, Dedupe: "d1", DedupeTTL: time.Minute}},
		{"dedupe in milliseconds", store.EnrichRequest{Now: now, EventID: keeping, Dedupe: "d2", DedupeTTL: 1500 * time.Millisecond}},
		{"dedupe under a second", store.EnrichRequest{Now: now, EventID: keeping, Dedupe: "d3", DedupeTTL: 10 * time.Millisecond}},
		{"everything", store.EnrichRequest{Now: now, EventID: trimming, Counters: counters(1, 0, 2),
			Strikes: []store.UserRef{alice, bob}, StrikeDecay: 24 * time.Hour, Dedupe: trimming, DedupeTTL: 2 * time.Minute,
			RoleGroup: "@TGS#1abc", RoleUsers: []string{"alice", "bob", ""}, WithModes: true}},
		{"roles of nobody", store.EnrichRequest{Now: now, RoleGroup: "@TGS#1abc"}},
	}
	commit := []struct {
		name string
		req  store.CommitRequest
	}{
		{"strikes", store.CommitRequest{Now: now, StrikeDecay: time.Hour, Strikes: []store.StrikeAdd{
			{UserRef: alice, N: 1, ID: trimming}, {UserRef: bob, N: 0, ID: "x"}, {UserRef: bob, N: 3, ID: keeping}}}},
		{"touches", store.CommitRequest{Now: now, EventID: trimming, Touch: counters(1, 0, 2)}},
		{"touches that keep", store.CommitRequest{Now: now, EventID: keeping, Touch: counters(2, 1)}},
	}
	// Every buffer is sized right: no command, argument, string or byte
	// more than init was told. (Activity and other typed commands are
	// counted by cmds only.)
	var sizes sync.Mutex
	var wrong []string
	built := func(got, sized bufSize) {
		if got.cmds > sized.cmds || got.args > sized.args || got.strs > sized.strs || got.bytes > sized.bytes {
			sizes.Lock()
			wrong = append(wrong, fmt.Sprintf("built %+v in a buffer sized %+v", got, sized))
			sizes.Unlock()
		}
	}
	t.Cleanup(func() {
		for _, w := range wrong {
			t.Error(w)
		}
	})
	for _, batch := range []BatchOptions{{MaxSize: 1}, {}} {
		t.Run(fmt.Sprintf("batch size %d", batch.MaxSize), func(t *testing.T) {
			// Nothing reaches this address: capture sends nothing.
			rdb := goredis.NewClient(&goredis.Options{Addr: "127.0.0.1:1"})
			c := &capture{}
			rdb.AddHook(c)
			s, err := NewFromClient(rdb, Options{KeyPrefix: "timguard-test:", Batch: batch})
			if err != nil {
				t.Fatal(err)
			}
			s.built = built
			t.Cleanup(func() { _ = s.Close() })
			ctx := t.Context()
			check := func(t *testing.T, call func() error, typed func(goredis.Pipeliner)) {
				t.Helper()
				if err := call(); err != nil {
					t.Fatal(err)
				}
				got := c.take(t)
				pipe := rdb.Pipeline()
				typed(pipe)
				if _, err := pipe.Exec(ctx); err != nil {
					t.Fatal(err)
				}
				want := c.take(t)
				if fmt.Sprint(got) != fmt.Sprint(want) {
					t.Errorf("sent\n%q\nwant\n%q", got, want)
				}
			}
			for _, e := range enrich {
				t.Run("enrich "+e.name, func(t *testing.T) {
					check(t, func() error { _, err := s.Enrich(ctx, e.req); return err },
						func(p goredis.Pipeliner) { typedEnrich(ctx, p, s.k, e.req) })
				})
			}
			for _, e := range commit {
				t.Run("commit "+e.name, func(t *testing.T) {
					check(t, func() error { return s.Commit(ctx, e.req) },
						func(p goredis.Pipeliner) { typedCommit(ctx, p, s.k, e.req) })
				})
			}
		})
	}
}

// Integer commands past the size init was given go in a new array: each
// command handed out keeps its own arguments and reads its own reply.
func TestIntCommandsPastTheSizeHintReadTheirOwnReplies(t *testing.T) {
	s := freshStore(t, Options{})
	for _, hint := range []int{0, 1, 3, 16} {
		t.Run(fmt.Sprintf("hint %d", hint), func(t *testing.T) {
			var b cmdBuf
			b.init(t.Context(), s.rdb, bufSize{cmds: hint})
			const n = 9
			key := b.cat(s.k.w, "hint"+strconv.Itoa(hint))
			cmds := make([]*goredis.IntCmd, n)
			for i := range n {
				start := len(b.args)
				b.args = append(b.args, "incrby", key, b.num("", int64(i+1)))
				cmds[i] = b.intCmd(start)
			}
			if len(b.cmds) != n {
				t.Fatalf("%d commands queued, want %d", len(b.cmds), n)
			}
			if _, err := s.run(t.Context(), b.cmds); err != nil {
				t.Fatal(err)
			}
			sum := int64(0)
			for i, c := range cmds {
				sum += int64(i + 1)
				if b.cmds[i] != goredis.Cmder(c) {
					t.Errorf("command %d queued is not the one handed out", i)
				}
				if got := c.Val(); got != sum {
					t.Errorf("command %d (%v) read %d, want %d", i, c.Args(), got, sum)
				}
			}
		})
	}
}

// A released buffer serves the next part with its arrays, emptied: the
// next part's commands read their own replies, and a string the last part
// cut (a key kept in an error, say) keeps its bytes.
func TestReleasedBufferServesTheNextPart(t *testing.T) {
	s := freshStore(t, Options{})
	var kept string
	var arrays *goredis.IntCmd
	for round := range 3 {
		b := newCmdBuf(t.Context(), s.rdb, bufSize{cmds: 4, args: 12, strs: 4, bytes: 64})
		if len(b.cmds) != 0 || len(b.args) != 0 || len(b.strs) != 0 || len(b.ints) != 0 || b.typed != nil || b.member0 != nil {
			t.Fatalf("round %d: the buffer is not empty: %d commands, %d arguments, %d strings, %d integer commands", round, len(b.cmds), len(b.args), len(b.strs), len(b.ints))
		}
		key := b.cat(s.k.w, "released"+strconv.Itoa(round))
		if round == 0 {
			kept = *key.(*string)
		}
		start := len(b.args)
		b.args = append(b.args, "incrby", key, b.num("", int64(round+5)))
		c := b.intCmd(start)
		if round == 0 {
			arrays = &b.ints[0]
		} else if &b.ints[0] != arrays {
			// sync.Pool may drop what it holds (a collection); the reuse
			// is what the test is about, so it says so.
			t.Logf("round %d: the pool gave a new buffer", round)
		}
		if _, err := s.run(t.Context(), b.cmds); err != nil {
			t.Fatal(err)
		}
		if got := c.Val(); got != int64(round+5) {
			t.Errorf("round %d: INCRBY read %d, want %d", round, got, round+5)
		}
		b.release()
		if len(b.cmds) != 0 || b.ctx != nil {
			t.Errorf("round %d: release left %d commands and the context", round, len(b.cmds))
		}
	}
	if want := s.k.w + "released0"; kept != want {
		t.Errorf("the first part's key reads %q after two reuses, want %q", kept, want)
	}
}
