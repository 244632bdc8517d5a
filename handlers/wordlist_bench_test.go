package handlers

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/timguard/timguard/internal/redistest"
	"github.com/timguard/timguard/policy"
	"github.com/timguard/timguard/rules"
	"github.com/timguard/timguard/rules/wordlist"
	"github.com/timguard/timguard/rules/wordlist/wordlisttest"
	"github.com/timguard/timguard/store/memory"
	"github.com/timguard/timguard/store/redis"
	"github.com/timguard/timguard/tim"
	"github.com/timguard/timguard/tim/timtest"
)

// wordListRules is a realistic rule set around a word list read from a
// file: the list through contains_any and through the any() form the
// patcher turns into contains_any, matched_words, list lookups, counters.
const wordListRules = `version: 1
lists:
  banned: [mallory, trudy]
  spam_words: {file: spam_words.txt}
counters:
  - {name: user_msgs_10s, on: [message], key: 'group.id + "/" + user.id', window: 10s}
rules:
  - {name: banned, on: message, if: 'user.id in lists.banned', verdict: block}
  - {name: flood, on: message, if: 'counters.user_msgs_10s > 50', actions: [{mute: 10m}]}
  - {name: spam, on: message, if: 'contains_any(message.text, lists.spam_words)', verdict: block, actions: [{strike: 1}]}
  - {name: spam-any, on: message, if: 'any(lists.spam_words, {lower(message.text) contains #})', verdict: block}
  - {name: spam-many, on: message, if: 'len(matched_words(message.text, lists.spam_words)) > 2', actions: [{mute: 1h}]}
  - {name: spam-newcomer, on: message, if: 'user.strikes > 0 && contains_any(message.text, lists.spam_words)', verdict: drop}
  - {name: links, on: message, if: 'len(message.urls) > 10', verdict: block}
`

// wordListRouter builds the router over a memory or Redis store with the
// rules above and a spam_words file holding words.
func wordListRouter(b *testing.B, st policy.Store, words []string) http.Handler {
	dir := b.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "spam_words.txt"), []byte(strings.Join(words, "\n")+"\n"), 0o644); err != nil {
		b.Fatal(err)
	}
	set, err := rules.Parse(filepath.Join(dir, "rules.yaml"), []byte(wordListRules))
	if err != nil {
		b.Fatal(err)
	}
	if got := len(set.Lists["spam_words"]); got != len(words) {
		b.Fatalf("the list holds %d words, want %d", got, len(words))
	}
	engine := policy.New(policy.Config{Rules: holder{set}, Store: st, Audit: discard{}})
	gin.SetMode(gin.ReleaseMode)
	return New(Config{
		CallbackPath: "/callback", SDKAppID: testAppID, Tokens: func() []string { return []string{testToken} },
		MaxClockSkew: time.Minute, MaxBodyBytes: 1 << 20, Deadline: time.Second,
	}, Deps{Decider: engine})
}

// noMatchWords returns n generated words, none of which any message holds
// under the default normalization.
func noMatchWords(b *testing.B, n int, messages []string) []string {
	words := wordlisttest.Words(n+n/5, 3)
	l, _, err := wordlist.Compile(words, wordlist.NewNormalizer(wordlist.Defaults()))
	if err != nil {
		b.Fatal(err)
	}
	var sc wordlist.Scratch
	found := map[string]bool{}
	for _, m := range messages {
		for _, w := range l.Matched(&sc, m) {
			found[w] = true
		}
	}
	words = slices.DeleteFunc(words, func(w string) bool { return found[w] })
	if len(words) < n {
		b.Fatalf("only %d words are in no message", len(words))
	}
	return words[:n]
}

// BenchmarkCallbackWordList answers the same signed BeforeSendMsg callbacks
// (1,000-character chat messages from 50 senders, none holding a listed
// word) with a bot whose spam list has 3 words and one whose list has
// 50,000, alternately in one run, and reports each bot's median latency and
// their ratio. One op is one callback to each bot.
func BenchmarkCallbackWordList(b *testing.B) {
	b.Run("store=memory", func(b *testing.B) {
		runWordListPair(b, func() policy.Store { return memory.New(memory.Options{}) })
	})
	b.Run("store=redis", func(b *testing.B) {
		url, prefix := redistest.URL(b), redistest.Prefix(b)
		redistest.CleanupPrefix(b, url, prefix)
		n := 0
		runWordListPair(b, func() policy.Store {
			n++
			st, err := redis.New(context.Background(), redis.Options{URL: url, KeyPrefix: fmt.Sprintf("%s%d:", prefix, n)})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { st.Close() })
			return st
		})
	})
}

func runWordListPair(b *testing.B, newStore func() policy.Store) {
	messages := make([]string, 50)
	bodies := make([][]byte, len(messages))
	for i := range messages {
		messages[i] = wordlisttest.Message(1000, uint64(i))
		text, _ := json.Marshal(messages[i])
		bodies[i] = []byte(fmt.Sprintf(`{"CallbackCommand":"Group.CallbackBeforeSendMsg","GroupId":"@TGS#2J4SZEAEL","Type":"Public","From_Account":"user%d","Operator_Account":"user%d","Random":%d,"OnlineOnlyFlag":0,"MsgBody":[{"MsgType":"TIMTextElem","MsgContent":{"Text":%s}}],"EventTime":1670574414123}`, i, i, i, text))
	}
	bots := []http.Handler{
		wordListRouter(b, newStore(), []string{"free crypto", "t.me/", "airdrop"}),
		wordListRouter(b, newStore(), noMatchWords(b, 50000, messages)),
	}
	url := timtest.SignedURL("http://bot", "/callback", testAppID, tim.CmdBeforeSendMsg, testToken, time.Now())
	call := func(h http.Handler, i int) time.Duration {
		req := httptest.NewRequest(http.MethodPost, url, bytes.NewReader(bodies[i%len(bodies)]))
		w := httptest.NewRecorder()
		start := time.Now()
		h.ServeHTTP(w, req)
		d := time.Since(start)
		var got tim.Reply
		if w.Code != http.StatusOK || json.Unmarshal(w.Body.Bytes(), &got) != nil || got.ErrorCode != 0 || got.MsgBody != nil {
			b.Fatalf("status %d: %s (want the plain OK: no message holds a listed word)", w.Code, w.Body)
		}
		return d
	}
	for i := range 200 { // warm up: pools, buffers, the first store round trips
		call(bots[0], i)
		call(bots[1], i)
	}
	var took [2][]time.Duration
	b.ReportAllocs()
	b.ResetTimer()
	i := 0
	for b.Loop() {
		// Alternate which bot goes first, so neither always follows the
		// other's garbage.
		first := i % 2
		took[first] = append(took[first], call(bots[first], i))
		took[1-first] = append(took[1-first], call(bots[1-first], i))
		i++
	}
	small, large := median(took[0]), median(took[1])
	b.ReportMetric(float64(small.Nanoseconds()), "median-3-words-ns")
	b.ReportMetric(float64(large.Nanoseconds()), "median-50k-words-ns")
	b.ReportMetric(float64(large)/float64(small), "median-ratio")
}

func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}
