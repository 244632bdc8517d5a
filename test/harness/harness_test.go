package harness

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/timguard/timguard/config"
	"github.com/timguard/timguard/rules"
	"github.com/timguard/timguard/tim"
)

func TestRuleFilesCompile(t *testing.T) {
	for name, src := range map[string]string{"LoadRules": LoadRules, "ResilienceRules": ResilienceRules} {
		if _, err := rules.Parse(name+".yaml", []byte(src)); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestTheBotAcceptsTheConfigTheHarnessWrites(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "rules.yaml"), []byte(ResilienceRules), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := BotConfig{
		Port: 8080, Token: "t", IMURL: "http://127.0.0.1:1", RedisURL: "redis://127.0.0.1:6379/0", KeyPrefix: "x:",
		RESTTimeout: time.Second, Lease: 3 * time.Second, RetryMin: 20 * time.Millisecond, RetryMax: 300 * time.Millisecond,
		MaxAttempts: 60, Workers: 4, FailMode: map[string]string{"join_request": "closed", "message": "open"},
	}
	path := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(path, []byte(cfg.YAML()), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := config.Load(path)
	if err != nil {
		t.Fatalf("%v\n%s", err, cfg.YAML())
	}
	if got.Executor.Lease.D() != 3*time.Second || got.Store.FailMode["join_request"] != "closed" || got.Tencent.Timeout.D() != time.Second {
		t.Errorf("config read back as %+v", got)
	}
}

func TestMixIsDeterministicAndDecodes(t *testing.T) {
	for name, m := range map[string]*Mix{"load": NewLoadMix(7, 50, 300), "resilience": NewResilienceMix(7, 16)} {
		t.Run(name, func(t *testing.T) {
			now := time.UnixMilli(1_700_000_000_123)
			seen := map[Class]int{}
			const n = 10000
			for i := range n {
				a, b := m.Request(i, now), m.Request(i, now)
				if !bytes.Equal(a.Body, b.Body) || a.Command != b.Command {
					t.Fatalf("request %d differs between two calls", i)
				}
				cb, err := tim.DecodeCallback(a.Command, a.Body)
				if err != nil {
					t.Fatalf("request %d (%s) does not decode: %v\n%s", i, a.Class, err, a.Body)
				}
				if cb.Header().GroupID != a.Group || len(a.Users) == 0 {
					t.Fatalf("request %d: group %q, users %v", i, cb.Header().GroupID, a.Users)
				}
				seen[a.Class]++
			}
			for c, share := range m.Shares {
				want := float64(share) / 10000 * n
				if got := float64(seen[Class(c)]); got < want*0.8-20 || got > want*1.2+20 {
					t.Errorf("%s: %v of %d requests, want about %v", Class(c), got, n, want)
				}
			}
		})
	}
}

func TestResilienceMixGivesEveryTriggerItsOwnUser(t *testing.T) {
	m := NewResilienceMix(3, 16)
	owner := map[string]int{}
	for i := range 20000 {
		r := m.Request(i, time.Now())
		switch r.Class {
		case ClassMuteWord, ClassKickWord, ClassKicked, ClassJoined, ClassSpam, ClassJoinRequest:
			for _, u := range r.Users {
				if j, ok := owner[u]; ok {
					t.Fatalf("user %s triggers requests %d and %d", u, j, i)
				}
				owner[u] = i
			}
		}
	}
}

func TestParseEnvelope(t *testing.T) {
	tests := []struct {
		body     string
		code     int
		envelope bool
	}{
		{`{"ActionStatus":"OK","ErrorInfo":"","ErrorCode":0}`, 0, true},
		{`{"ActionStatus":"OK","ErrorInfo":"Blocked words are not allowed here.","ErrorCode":10101}`, 10101, true},
		{`{"ActionStatus":"OK","ErrorInfo":"","ErrorCode":2,"MsgBody":[]}`, 2, true},
		{`{"ActionStatus":"FAIL","ErrorInfo":"","ErrorCode":0}`, 0, false},
		{`{"error":"Sign does not match the callback token","code":"bad_sign"}`, 0, false},
		{`{"ActionStatus":"OK","ErrorInfo":""}`, 0, false},
		{``, 0, false},
	}
	for _, tt := range tests {
		for _, strict := range []bool{false, true} {
			code, ok := parseEnvelope([]byte(tt.body), strict)
			if ok != tt.envelope || (ok && code != tt.code) {
				t.Errorf("parseEnvelope(%s, strict %v) = %d, %v; want %d, %v", tt.body, strict, code, ok, tt.code, tt.envelope)
			}
		}
	}
}

func TestPercentilesUseTheNearestRank(t *testing.T) {
	ds := make([]time.Duration, 1000)
	for i := range ds {
		ds[len(ds)-1-i] = time.Duration(i+1) * time.Millisecond
	}
	p := percentiles(ds)
	want := Percentiles{P50: 500 * time.Millisecond, P90: 900 * time.Millisecond, P99: 990 * time.Millisecond, P999: 999 * time.Millisecond, Max: time.Second}
	if p != want {
		t.Errorf("percentiles = %+v, want %+v", p, want)
	}
	if (percentiles(nil) != Percentiles{}) {
		t.Error("percentiles of nothing are not zero")
	}
}
