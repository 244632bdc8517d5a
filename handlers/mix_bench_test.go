package handlers

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/timguard/timguard/internal/redistest"
	"github.com/timguard/timguard/policy"
	"github.com/timguard/timguard/rules"
	"github.com/timguard/timguard/store/memory"
	"github.com/timguard/timguard/store/redis"
	"github.com/timguard/timguard/test/harness"
	"github.com/timguard/timguard/tim/timtest"
)

// BenchmarkCallbackMix sends the load generator's mix (cmd/loadgen: the
// rules of rules.example.yaml, 85% messages from 20,000 users in 1,000
// groups, spam, floods, joins and exits) through the router from parallel
// goroutines: the bot's own work per callback without the HTTP server,
// loopback TCP and the audit file. Profile it with
//
//	go test -run '^$' -bench 'CallbackMix/store=redis' -cpuprofile cpu.out ./handlers
//	go tool pprof -top -cum handlers.test cpu.out
func BenchmarkCallbackMix(b *testing.B) {
	b.Run("store=memory", func(b *testing.B) { runMix(b, memory.New(memory.Options{})) })
	b.Run("store=redis", func(b *testing.B) {
		url, prefix := redistest.URL(b), redistest.Prefix(b)
		redistest.CleanupPrefix(b, url, prefix)
		st, err := redis.New(context.Background(), redis.Options{URL: url, KeyPrefix: prefix})
		if err != nil {
			b.Fatal(err)
		}
		defer st.Close()
		runMix(b, st)
	})
}

func runMix(b *testing.B, st policy.Store) {
	set, err := rules.Parse("load.yaml", []byte(harness.LoadRules))
	if err != nil {
		b.Fatal(err)
	}
	gin.SetMode(gin.ReleaseMode)
	engine := policy.New(policy.Config{Rules: holder{set}, Store: st, Audit: discard{}, AppAdmin: timtest.DefaultAdmin})
	h := New(Config{
		CallbackPath: "/callback", SDKAppID: testAppID, Tokens: func() []string { return []string{testToken} },
		MaxClockSkew: time.Minute, MaxBodyBytes: 1 << 20, Deadline: time.Second,
	}, Deps{Decider: engine})
	mix := harness.NewLoadMix(1, 1000, 20000)
	var next atomic.Int64
	b.ReportAllocs()
	b.SetParallelism(8) // 16 goroutines on 2 CPUs: the store's round trips overlap
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			now := time.Now()
			req := mix.Request(int(next.Add(1)), now)
			url := timtest.SignedURL("http://bot", "/callback", testAppID, req.Command, testToken, now)
			w := httptest.NewRecorder()
			h.ServeHTTP(w, httptest.NewRequest(http.MethodPost, url, bytes.NewReader(req.Body)))
			if w.Code != http.StatusOK {
				b.Errorf("status %d: %s", w.Code, w.Body)
				return
			}
		}
	})
}
