package handlers

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/timguard/timguard/internal/redistest"
	"github.com/timguard/timguard/policy"
	"github.com/timguard/timguard/rules"
	"github.com/timguard/timguard/store/memory"
	"github.com/timguard/timguard/store/redis"
	"github.com/timguard/timguard/tim"
	"github.com/timguard/timguard/tim/timtest"
)

// envMemoryCallbacks sets how many callbacks TestMemoryStaysFlat sends
// through each router (a long run: TIMGUARD_MEMORY_CALLBACKS=1000000).
const envMemoryCallbacks = "TIMGUARD_MEMORY_CALLBACKS"

// memoryRules count and look up state for every event but match none of
// the generated ones, so that no action waits in an outbox that no
// executor drains: what is measured is the callback path alone.
const memoryRules = `version: 1
lists: {banned: [mallory], spam_words: ["free crypto", "airdrop"]}
counters:
  - {name: user_msgs_10s, on: [message], key: 'group.id + "/" + user.id', window: 10s}
  - {name: group_msgs_1m, on: [message], key: group.id, window: 1m}
  - {name: group_joins_1m, on: [member_joined], key: group.id, window: 1m}
rules:
  - {name: spam, on: message, if: 'any(lists.spam_words, {lower(message.text) contains #})', verdict: block, actions: [{strike: 1}]}
  - {name: flood, on: message, if: 'counters.user_msgs_10s > 5', actions: [{mute: 10m}]}
  - {name: banned, on: message, if: 'user.id in lists.banned', verdict: block}
  - {name: noted, on: message_sent, if: 'user.strikes > 100', actions: [{warn: "noted"}]}
  - {name: raid, on: member_joined, if: 'counters.group_joins_1m > 100000', actions: [{mute_group: 15m}]}
`

// simClock is the clock of the router, the engine and the memory store
// under test: each callback moves it forward by step, so that a run covers
// far more time than it takes and every key with a time to live (counter
// windows of 10s and 1m, "after" dedupe marks of 10m, the store's sweep)
// reaches its steady state: what is alive then is what a bot that has run
// for hours holds.
type simClock struct {
	base time.Time
	ns   atomic.Int64
}

func (c *simClock) Now() time.Time { return c.base.Add(time.Duration(c.ns.Load())) }

func (c *simClock) tick(step time.Duration) time.Time {
	return c.base.Add(time.Duration(c.ns.Add(int64(step))))
}

// memoryBody returns callback i: 85% BeforeSendMsg, 10% AfterSendMsg (each
// leaves a dedupe mark), 5% AfterNewMemberJoin; every one from a user never
// seen before, in one of 2000 groups.
func memoryBody(i int, now time.Time) (string, []byte) {
	group := "@TGS#m" + strconv.Itoa(i%2000)
	user := "u" + strconv.Itoa(i)
	ms := now.UnixMilli()
	switch i % 20 {
	case 0:
		return tim.CmdAfterNewMemberJoin, fmt.Appendf(nil, `{"CallbackCommand":%q,"GroupId":%q,"Type":"Public","JoinType":"Apply","Operator_Account":%q,"NewMemberList":[{"Member_Account":%q}],"EventTime":%d}`,
			tim.CmdAfterNewMemberJoin, group, user, user, ms)
	case 1, 2:
		return tim.CmdAfterSendMsg, fmt.Appendf(nil, `{"CallbackCommand":%q,"GroupId":%q,"Type":"Public","From_Account":%q,"Operator_Account":%q,"Random":%d,"MsgSeq":%d,"MsgTime":%d,"MsgBody":[{"MsgType":"TIMTextElem","MsgContent":{"Text":"see you at the meeting"}}],"EventTime":%d}`,
			tim.CmdAfterSendMsg, group, user, user, i, i, now.Unix(), ms)
	}
	return tim.CmdBeforeSendMsg, fmt.Appendf(nil, `{"CallbackCommand":%q,"GroupId":%q,"Type":"Public","From_Account":%q,"Operator_Account":%q,"Random":%d,"MsgId":"m%d","MsgBody":[{"MsgType":"TIMTextElem","MsgContent":{"Text":"good morning everyone, number %d"}}],"EventTime":%d}`,
		tim.CmdBeforeSendMsg, group, user, user, i, i, i, ms)
}

// TestMemoryStaysFlat sends callbacks from ever new users through the whole
// callback path (router, signature, decoding, engine, store) and samples the
// live heap (HeapInuse after a GC) as it goes. Once every time-to-live has
// passed on the simulated clock, the heap must stop growing: no callback
// may leave memory behind.
//
// The default run is short (40,000 callbacks per store, 10,000 under the
// race detector); set TIMGUARD_MEMORY_CALLBACKS for a long one.
func TestMemoryStaysFlat(t *testing.T) {
	n := 40_000
	if raceEnabled {
		n = 10_000
	}
	if v := os.Getenv(envMemoryCallbacks); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 4000 {
			t.Fatalf("%s=%q: want a number of at least 4000", envMemoryCallbacks, v)
		}
	}
	t.Run("store=memory", func(t *testing.T) {
		clock := &simClock{base: time.Now()}
		checkFlatHeap(t, memory.New(memory.Options{Now: clock.Now}), clock, n)
	})
	t.Run("store=redis", func(t *testing.T) {
		url, prefix := redistest.URL(t), redistest.Prefix(t)
		redistest.CleanupPrefix(t, url, prefix)
		st, err := redis.New(context.Background(), redis.Options{URL: url, KeyPrefix: prefix, Timeout: 2 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		checkFlatHeap(t, st, &simClock{base: time.Now()}, n)
	})
}

// checkFlatHeap sends n callbacks through a router on st, 4 at a time, and
// checks the heap after the first third (the warm-up) against the rest.
func checkFlatHeap(t *testing.T, st policy.Store, clock *simClock, n int) {
	set, err := rules.Parse("memory.yaml", []byte(memoryRules))
	if err != nil {
		t.Fatal(err)
	}
	// 50 ms of simulated time per callback: the warm-up (a third of the
	// run, at least 13,000 callbacks) covers the 10-minute dedupe marks.
	const step = 50 * time.Millisecond
	gin.SetMode(gin.ReleaseMode)
	engine := policy.New(policy.Config{Rules: holder{set}, Store: st, Audit: discard{}, Now: clock.Now, StoreTimeout: 2 * time.Second})
	h := New(Config{
		CallbackPath: "/callback", SDKAppID: testAppID, Tokens: func() []string { return []string{testToken} },
		MaxClockSkew: time.Minute, MaxBodyBytes: 1 << 20, Deadline: 5 * time.Second,
	}, Deps{Decider: engine, Now: clock.Now})

	const workers = 4
	warm := max(n/3, 13_000)
	if warm >= n {
		warm = n / 3 // a short run: the dedupe marks are still filling up
	}
	const samples = 8
	var next atomic.Int64
	var failed atomic.Bool
	send := func(upto int) {
		var wg sync.WaitGroup
		for range workers {
			wg.Go(func() {
				for !failed.Load() {
					i := int(next.Add(1) - 1)
					if i >= upto {
						next.Add(-1)
						return
					}
					now := clock.tick(step)
					cmd, body := memoryBody(i, now)
					url := timtest.SignedURL("http://bot", "/callback", testAppID, cmd, testToken, now)
					req := httptest.NewRequest(http.MethodPost, url, bytes.NewReader(body))
					w := httptest.NewRecorder()
					h.ServeHTTP(w, req)
					if w.Code != http.StatusOK || !bytes.HasPrefix(w.Body.Bytes(), []byte(`{"ActionStatus":"OK"`)) {
						failed.Store(true)
						t.Errorf("callback %d (%s) answered %d: %s", i, cmd, w.Code, w.Body)
						return
					}
				}
			})
		}
		wg.Wait()
	}
	heap := func() uint64 {
		runtime.GC()
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapInuse
	}

	send(warm)
	base := heap()
	var peak uint64
	var trace []string
	for k := 1; k <= samples; k++ {
		upto := warm + (n-warm)*k/samples
		send(upto)
		if failed.Load() {
			return
		}
		h := heap()
		peak = max(peak, h)
		trace = append(trace, fmt.Sprintf("%d: %.1f MiB", upto, float64(h)/(1<<20)))
	}
	sent := int(next.Load())
	grew := int64(peak) - int64(base)
	perCallback := float64(grew) / float64(sent-warm)
	t.Logf("%d callbacks over %v simulated; heap after %d (warm-up): %.1f MiB; then %v; growth %+.2f MiB (%.1f bytes per callback)",
		sent, time.Duration(sent)*step, warm, float64(base)/(1<<20), trace, float64(grew)/(1<<20), perCallback)
	// A leak of a few dozen bytes per callback would pass 2 MiB well
	// within the run; what stays under it is allocator and GC noise.
	const bound = 2 << 20
	if grew > bound {
		t.Errorf("the heap grew by %.1f MiB after the warm-up (%.1f bytes per callback): memory is kept per callback",
			float64(grew)/(1<<20), perCallback)
	}
}
