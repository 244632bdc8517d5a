package app

// Schedules through the whole bot: a rule mode a schedule switches on seen
// through the callback router, and a raid mute ended once by three replicas
// on one Redis.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/timguard/timguard/audit"
	"github.com/timguard/timguard/internal/redistest"
	"github.com/timguard/timguard/internal/testclock"
	"github.com/timguard/timguard/mutes"
	"github.com/timguard/timguard/rules"
	"github.com/timguard/timguard/tim"
	"github.com/timguard/timguard/tim/timtest"
)

const nightRules = `version: 1
rules:
  - name: no-links-at-night
    on: message
    mode: night
    if: len(message.urls) > 0
    verdict: block
    reply: {code: 10110, text: "No links at night."}
schedules:
  - name: night-mode
    cron: "0 22 * * *"
    timezone: Europe/Berlin
    mode: {name: night, for: 8h}
`

func TestE2EANightModeScheduleSwitchesARuleOnForItsWindow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// 2026-03-29 is the first day of summer time in Berlin: 22:00 there
		// is 20:00 UTC, and the mode ends at 06:00, 04:00 UTC.
		time.Sleep(time.Until(time.Date(2026, 3, 29, 12, 0, 0, 0, time.UTC)))
		dir := t.TempDir()
		write(t, filepath.Join(dir, "rules.yaml"), nightRules)
		write(t, filepath.Join(dir, "config.yaml"), "tencent:\n  sdk_app_id: 1400000000\nrules_file: rules.yaml\naudit:\n  file: audit.jsonl\n")
		a, err := New(context.Background(), filepath.Join(dir, "config.yaml"), Options{Stdout: io.Discard, Stderr: io.Discard})
		if err != nil {
			t.Fatal(err)
		}
		defer a.close()
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- a.sched.Run(ctx) }()

		seq := 0
		send := func() tim.Reply {
			t.Helper()
			seq++
			b, _ := json.Marshal(map[string]any{
				"CallbackCommand": tim.CmdBeforeSendMsg, "GroupId": "@TGS#night", "Type": "Public",
				"From_Account": "carol", "Operator_Account": "carol", "Random": seq, "MsgId": fmt.Sprint("m", seq),
				"MsgBody":   []map[string]any{{"MsgType": "TIMTextElem", "MsgContent": map[string]any{"Text": "see https://example.com"}}},
				"EventTime": time.Now().UnixMilli(),
			})
			req := httptest.NewRequest(http.MethodPost, "/callback?SdkAppid=1400000000&CallbackCommand="+tim.CmdBeforeSendMsg+"&contenttype=json", bytes.NewReader(b))
			rec := httptest.NewRecorder()
			a.router.ServeHTTP(rec, req)
			var r tim.Reply
			if err := json.Unmarshal(rec.Body.Bytes(), &r); err != nil {
				t.Fatalf("reply %d %s: %v", rec.Code, rec.Body, err)
			}
			return r
		}
		steps := []struct {
			at   time.Time
			code int
		}{
			{time.Date(2026, 3, 29, 19, 59, 0, 0, time.UTC), 0},
			{time.Date(2026, 3, 29, 20, 0, 1, 0, time.UTC), 10110},
			{time.Date(2026, 3, 30, 3, 59, 0, 0, time.UTC), 10110},
			{time.Date(2026, 3, 30, 4, 0, 1, 0, time.UTC), 0},
		}
		for _, st := range steps {
			time.Sleep(time.Until(st.at))
			synctest.Wait()
			if r := send(); r.ErrorCode != st.code {
				t.Errorf("a link at %s answered %+v, want code %d", st.at.Format(time.RFC3339), r, st.code)
			}
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		data, err := os.ReadFile(filepath.Join(dir, "audit.jsonl"))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(data), `"event_id":"schedule|night-mode|2026-03-29T20:00:00Z"`) {
			t.Errorf("the audit log has no record of the firing:\n%s", data)
		}
	})
}

const raidRules = `version: 1
counters:
  - name: group_joins_1m
    on: [member_joined]
    key: group.id
    window: 1m
rules:
  - name: raid
    on: member_joined
    if: counters.group_joins_1m > 3
    actions: [{mute_group: 15m, announce: "The group can talk again."}]
`

// startReplica starts one bot of several sharing the fake IM server and a
// Redis key space.
func startReplica(t *testing.T, im *timtest.Server, url, prefix string, now func() time.Time) *bot {
	t.Helper()
	return startApp(t, im, botConfig{
		token: e2eToken, imURL: im.URL(), redisURL: url, prefix: prefix,
		executor: "  retry_min: 20ms\n  retry_max: 300ms\n",
	}, raidRules, nil, now)
}

func TestE2EARaidMuteEndsWithOneUnmuteAcrossThreeReplicas(t *testing.T) {
	const raid = "@TGS#raid"
	clk := &testclock.Shift{}
	im := timtest.New(timtest.Options{Now: clk.Now})
	t.Cleanup(im.Close)
	wave := []string{"r1", "r2", "r3", "r4", "r5", "r6"}
	im.AddGroup(timtest.Group{ID: raid, Type: "Public", Owner: "olga", Members: wave})
	url := redistest.URL(t)
	prefix := keyPrefix(t, url)
	var bots []*bot
	for range 3 {
		bots = append(bots, startReplica(t, im, url, prefix, clk.Now))
	}

	bots[0].joined(raid, wave)
	// The clock jumps only once the mute is recorded done: an action still
	// in flight when it jumps finds its lease passed, and another replica
	// carries it out again (a 15-minute stall, as the test tells it).
	// The wave's 4th, 5th and 6th joins each decide a mute_group: every one
	// of them must be done (none left in the outbox but the delayed ends),
	// not only the first. They share one call, and each job of it settles on
	// its own: one may still be claimed when another is recorded done and
	// its delayed unmute queued, and Pending lists only what waits. So the
	// outbox's counts, read at once, must show nothing claimed and nothing
	// waiting but those ends.
	waitFor(t, 60*time.Second, "the raid mutes done and their delayed unmute", func() bool {
		pending, err := bots[1].app.store.Pending(context.Background(), 100)
		if err != nil {
			return false
		}
		ends := 0
		for _, a := range pending {
			if !strings.HasSuffix(a.ID, mutes.EndSuffix) {
				return false
			}
			ends++
		}
		st, err := bots[1].app.store.Stats(context.Background(), clk.Now())
		if err != nil || st.Claimed != 0 || st.Ready != ends {
			return false
		}
		return ends > 0 && im.Group(raid).MuteAllMember && raidMuteDone(bots)
	})
	clk.Add(15 * time.Minute)
	waitFor(t, 60*time.Second, "the unmute and its announcement", func() bool {
		g := im.Group(raid)
		return !g.MuteAllMember && len(g.Notifications) > 0
	})
	time.Sleep(500 * time.Millisecond) // every replica polls the outbox a few more times
	for _, b := range bots {
		b.stop()
	}

	on, off := 0, 0
	for _, c := range im.EffectiveCallsTo(tim.CommandModifyGroupBaseInfo) {
		switch body(t, c)["MuteAllMember"] {
		case tim.MuteAllOn:
			on++
		case tim.MuteAllOff:
			off++
		}
	}
	if on != 1 || off != 1 {
		t.Errorf("MuteAllMember On %d and Off %d times at the IM server, want once each", on, off)
	}
	if n := len(im.Group(raid).Notifications); n != 1 {
		t.Errorf("%d announcements, want 1", n)
	}
	for _, b := range bots {
		for _, r := range b.records() {
			if r.Kind == audit.KindAction && r.Result != audit.ResultDone && r.Result != audit.ResultSkipped {
				t.Errorf("action record %+v, want every action done or skipped", r)
			}
		}
	}
}

// raidMuteDone reports whether a bot recorded the group mute action done.
func raidMuteDone(bots []*bot) bool {
	for _, b := range bots {
		for _, r := range b.records() {
			if r.Kind == audit.KindAction && r.Result == audit.ResultDone && len(r.Actions) > 0 &&
				r.Actions[0].Kind == string(rules.ActMuteGroup) && !strings.HasSuffix(r.Actions[0].ID, mutes.EndSuffix) {
				return true
			}
		}
	}
	return false
}
