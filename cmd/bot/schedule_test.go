package main

// Schedules through the whole bot: bot check on bad schedules, a rule mode a
// schedule switches on seen through the callback router, and a raid mute
// ended once by three replicas on one Redis.

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

	"github.com/timguard/timguard/actions"
	"github.com/timguard/timguard/audit"
	"github.com/timguard/timguard/internal/redistest"
	"github.com/timguard/timguard/internal/testclock"
	"github.com/timguard/timguard/tim"
	"github.com/timguard/timguard/tim/timtest"
)

func TestCheckNamesTheScheduleOfABadCronOrTimezone(t *testing.T) {
	const file = `version: 1
schedules:
  - name: %s
    cron: %q
    timezone: %s
    groups: ["@TGS#1abc"]
    actions: [{mute_group: 8h}]
`
	tests := []struct {
		name     string
		schedule string
		cron     string
		zone     string
		want     string
	}{
		{"an hour of 25 is refused", "quiet-hours", "0 25 * * *", "Asia/Shanghai",
			`schedule "quiet-hours": cron: "0 25 * * *" is not a cron expression`},
		{"words are not a cron expression", "quiet-hours", "every night at eleven", "Asia/Shanghai",
			`schedule "quiet-hours": cron: "every night at eleven" is not a cron expression`},
		{"a descriptor robfig/cron does not know is refused", "boot", "@reboot", "UTC",
			`schedule "boot": cron: "@reboot" is not a cron expression`},
		{"an unknown timezone is refused", "night", "0 22 * * *", "Mars/Olympus",
			`schedule "night": timezone: "Mars/Olympus" is not an IANA timezone`},
		{"the machine's Local zone is refused", "night", "0 22 * * *", "Local",
			`schedule "night": timezone: "Local" depends on the machine`},
		{"a timezone inside the cron expression is refused", "night", "CRON_TZ=Nope/Nope 0 22 * * *", "UTC",
			`schedule "night": cron: "CRON_TZ=Nope/Nope 0 22 * * *": give the timezone in timezone:`},
		{"a bad TZ= prefix is refused", "night", "TZ=Nope/Nope 0 22 * * *", "UTC",
			`schedule "night": cron: "TZ=Nope/Nope 0 22 * * *": give the timezone in timezone:`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "rules.yaml")
			write(t, path, fmt.Sprintf(file, tt.schedule, tt.cron, tt.zone))
			var stdout, stderr bytes.Buffer
			code := run([]string{"check", "--rules", path}, &stdout, &stderr)
			if code != 1 {
				t.Errorf("exit code %d, want 1", code)
			}
			if !strings.Contains(stderr.String(), path+":3: "+tt.want) {
				t.Errorf("stderr:\n%s\nwant the file, line and %q", stderr.String(), tt.want)
			}
			if strings.Contains(stderr.String(), "panic") {
				t.Errorf("stderr mentions a panic:\n%s", stderr.String())
			}
		})
	}
}

func TestCheckNamesABadScheduleSetting(t *testing.T) {
	tests := []struct {
		name, section, want string
	}{
		{"a catch_up below a minute is refused", "schedule:\n  catch_up: 10s\n", "schedule.catch_up: 10s must be between 1m and 24h"},
		{"a reconcile_every above a day is refused", "schedule:\n  reconcile_every: 48h\n", "schedule.reconcile_every: 48h0m0s must be between 30s and 24h"},
		{"an unknown key is refused", "schedule:\n  catchup: 1h\n", "catchup"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			write(t, filepath.Join(dir, "rules.yaml"), "version: 1\n")
			write(t, filepath.Join(dir, "config.yaml"), "tencent:\n  sdk_app_id: 1400000000\nrules_file: rules.yaml\n"+tt.section)
			var stdout, stderr bytes.Buffer
			if code := run([]string{"check", "--config", filepath.Join(dir, "config.yaml")}, &stdout, &stderr); code != 1 {
				t.Errorf("exit code %d, want 1", code)
			}
			if !strings.Contains(stderr.String(), tt.want) {
				t.Errorf("stderr:\n%s\nwant %q", stderr.String(), tt.want)
			}
		})
	}
}

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
		a, err := newApp(context.Background(), filepath.Join(dir, "config.yaml"), appOptions{Stdout: io.Discard, Stderr: io.Discard})
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
	waitFor(t, 10*time.Second, "the raid mute and its delayed unmute", func() bool {
		pending, _ := bots[1].app.store.Pending(context.Background(), 100)
		for _, a := range pending {
			if strings.HasSuffix(a.ID, actions.EndSuffix) {
				return im.Group(raid).MuteAllMember
			}
		}
		return false
	})
	clk.Add(15 * time.Minute)
	waitFor(t, 10*time.Second, "the unmute and its announcement", func() bool {
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
