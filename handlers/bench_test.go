package handlers

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/timguard/timguard/internal/redistest"
	"github.com/timguard/timguard/policy"
	"github.com/timguard/timguard/rules"
	"github.com/timguard/timguard/store"
	"github.com/timguard/timguard/store/memory"
	"github.com/timguard/timguard/store/redis"
	"github.com/timguard/timguard/tim"
	"github.com/timguard/timguard/tim/timtest"
)

func TestMain(m *testing.M) { redistest.Main(m) }

// twentyRules is a realistic rule set: two counters, list lookups, text and
// link checks, strikes and roles.
func twentyRules() string {
	var b strings.Builder
	b.WriteString(`version: 1
lists:
  banned: [mallory, trudy]
  spam_words: ["free crypto", "t.me/", "airdrop"]
counters:
  - {name: user_msgs_10s, on: [message], key: 'group.id + "/" + user.id', window: 10s}
  - {name: group_msgs_1m, on: [message], key: group.id, window: 1m}
rules:
`)
	conds := []string{
		`user.id in lists.banned`,
		`counters.user_msgs_10s > 50`,
		`user.strikes >= 30`,
		`'any(lists.spam_words, {lower(message.text) contains #})'`,
		`len(message.urls) > 10`,
	}
	for i := 0; i < 20; i++ {
		c := conds[i%len(conds)]
		if !strings.HasPrefix(c, "'") {
			c = "'" + c + "'"
		}
		fmt.Fprintf(&b, "  - {name: r%02d, on: message, if: %s, verdict: block, actions: [{mute: 10m}]}\n", i, c)
	}
	return b.String()
}

type discard struct{}

func (discard) WriteLine([]byte) {}

func benchRouter(b *testing.B, st policy.Store) http.Handler {
	set, err := rules.Parse("bench.yaml", []byte(twentyRules()))
	if err != nil {
		b.Fatal(err)
	}
	engine := policy.New(policy.Config{Rules: holder{set}, Store: st, Audit: discard{}})
	gin.SetMode(gin.ReleaseMode)
	return New(Config{
		CallbackPath: "/callback", SDKAppID: testAppID, Tokens: func() []string { return []string{testToken} },
		MaxClockSkew: time.Minute, MaxBodyBytes: 1 << 20, Deadline: time.Second,
	}, Deps{Decider: engine})
}

const benchBody = `{"CallbackCommand":"Group.CallbackBeforeSendMsg","GroupId":"@TGS#2J4SZEAEL","Type":"Public","From_Account":"user%d","Operator_Account":"user%d","Random":%d,"OnlineOnlyFlag":0,"MsgBody":[{"MsgType":"TIMTextElem","MsgContent":{"Text":"good morning everyone, see you at the meeting"}}],"EventTime":1670574414123}`

// runCallbacks posts signed BeforeSendMsg callbacks from 50 senders to h.
func runCallbacks(b *testing.B, h http.Handler) {
	url := timtest.SignedURL("http://bot", "/callback", testAppID, tim.CmdBeforeSendMsg, testToken, time.Now())
	bodies := make([][]byte, 50)
	for i := range bodies {
		bodies[i] = []byte(fmt.Sprintf(benchBody, i, i, i))
	}
	b.ReportAllocs()
	b.ResetTimer()
	i := 0
	for b.Loop() {
		req := httptest.NewRequest(http.MethodPost, url, bytes.NewReader(bodies[i%len(bodies)]))
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != http.StatusOK {
			b.Fatalf("status %d: %s", w.Code, w.Body)
		}
		i++
	}
}

// BenchmarkCallback20Rules is one signed BeforeSendMsg callback through the
// router: authentication, decoding, one store round trip, 20 rules, one
// commit of the decision, the reply.
func BenchmarkCallback20Rules(b *testing.B) {
	b.Run("store=memory", func(b *testing.B) {
		runCallbacks(b, benchRouter(b, memory.New(memory.Options{})))
	})
	b.Run("store=redis", func(b *testing.B) {
		st, err := redis.New(context.Background(), redis.Options{URL: redistest.URL(b), KeyPrefix: redistest.Prefix(b)})
		if err != nil {
			b.Fatal(err)
		}
		defer st.Close()
		runCallbacks(b, benchRouter(b, st))
	})
}

// BenchmarkBareGin is a gin handler that answers the same OK envelope and
// does nothing else: the floor the callback path is compared with.
func BenchmarkBareGin(b *testing.B) {
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	ok := []byte(`{"ActionStatus":"OK","ErrorInfo":"","ErrorCode":0}`)
	r.POST("/callback", func(c *gin.Context) {
		_, _ = io.Copy(io.Discard, c.Request.Body)
		c.Data(http.StatusOK, "application/json; charset=utf-8", ok)
	})
	runCallbacks(b, r)
}

var _ store.Store = (*redis.Store)(nil)
