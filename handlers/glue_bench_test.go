package handlers

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/timguard/timguard/policy"
	"github.com/timguard/timguard/test/harness"
	"github.com/timguard/timguard/tim"
	"github.com/timguard/timguard/tim/timtest"
)

// okDecider answers every callback OK without deciding.
type okDecider struct{}

func (okDecider) Handle(context.Context, *policy.Event) policy.Outcome {
	return policy.Outcome{Reply: tim.OK()}
}

// BenchmarkCallbackGlue sends the load generator's mix through the router
// with a decider that answers OK at once and the metrics of the app: what
// timguard adds around the decision (query, signature, body, decoding, the
// event, the reply), compared with BenchmarkBareGin.
func BenchmarkCallbackGlue(b *testing.B) {
	gin.SetMode(gin.ReleaseMode)
	h := New(Config{
		CallbackPath: "/callback", SDKAppID: testAppID, Tokens: func() []string { return []string{testToken} },
		MaxClockSkew: time.Minute, MaxBodyBytes: 1 << 20, Deadline: time.Second,
	}, Deps{Decider: okDecider{}, Observe: NewMetrics(prometheus.NewRegistry()).Callback})
	mix := harness.NewLoadMix(1, 1000, 20000)
	now := time.Now()
	type call struct {
		url  string
		body []byte
	}
	calls := make([]call, 1000)
	for i := range calls {
		req := mix.Request(i, now)
		calls[i] = call{timtest.SignedURL("http://bot", "/callback", testAppID, req.Command, testToken, now), req.Body}
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		c := calls[i%len(calls)]
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(http.MethodPost, c.url, bytes.NewReader(c.body)))
		if w.Code != http.StatusOK {
			b.Fatalf("status %d: %s", w.Code, w.Body)
		}
		i++
	}
}
