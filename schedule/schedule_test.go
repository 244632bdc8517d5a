package schedule

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/timguard/timguard/audit"
	"github.com/timguard/timguard/rules"
	"github.com/timguard/timguard/store"
	"github.com/timguard/timguard/store/memory"
)

const oneSchedule = `version: 1
schedules:
  - name: %s
    cron: %q
    timezone: %s
    groups: ["@TGS#g"]
    actions: [{warn: "Quiet hours."}]
`

func TestSchedulesFireAtTheirLocalTimeAcrossSummerTime(t *testing.T) {
	tests := []struct {
		name     string
		zone     string
		cron     string
		from, to string
		want     []string
	}{
		{
			name: "quiet hours at 23:00 in Asia/Shanghai start at 15:00 UTC every day",
			zone: "Asia/Shanghai", cron: "0 23 * * *", from: "2026-03-27T00:00:00Z", to: "2026-03-31T00:00:00Z",
			want: []string{"2026-03-27T15:00:00Z", "2026-03-28T15:00:00Z", "2026-03-29T15:00:00Z", "2026-03-30T15:00:00Z"},
		},
		{
			name: "Asia/Shanghai has no summer time: 23:00 stays 15:00 UTC across Europe's October change",
			zone: "Asia/Shanghai", cron: "0 23 * * *", from: "2026-10-23T17:00:00Z", to: "2026-10-27T00:00:00Z",
			want: []string{"2026-10-24T15:00:00Z", "2026-10-25T15:00:00Z", "2026-10-26T15:00:00Z"},
		},
		{
			name: "22:00 in Europe/Berlin moves from 21:00 to 20:00 UTC on the last Sunday of March",
			zone: "Europe/Berlin", cron: "0 22 * * *", from: "2026-03-27T00:00:00Z", to: "2026-03-31T00:00:00Z",
			want: []string{"2026-03-27T21:00:00Z", "2026-03-28T21:00:00Z", "2026-03-29T20:00:00Z", "2026-03-30T20:00:00Z"},
		},
		{
			name: "22:00 in Europe/Berlin moves back to 21:00 UTC on the last Sunday of October",
			zone: "Europe/Berlin", cron: "0 22 * * *", from: "2026-10-23T00:00:00Z", to: "2026-10-27T00:00:00Z",
			want: []string{"2026-10-23T20:00:00Z", "2026-10-24T20:00:00Z", "2026-10-25T21:00:00Z", "2026-10-26T21:00:00Z"},
		},
		{
			// robfig/cron documents that jobs in the skipped hour do not run.
			name: "02:30 in Europe/Berlin does not run on the night the clocks skip from 02:00 to 03:00",
			zone: "Europe/Berlin", cron: "30 2 * * *", from: "2026-03-27T00:00:00Z", to: "2026-03-31T00:00:00Z",
			want: []string{"2026-03-27T01:30:00Z", "2026-03-28T01:30:00Z", "2026-03-30T00:30:00Z"},
		},
		{
			// Each 02:30 is its own instant, so each is claimed and run.
			name: "02:30 in Europe/Berlin runs twice on the night the hour from 02:00 repeats",
			zone: "Europe/Berlin", cron: "30 2 * * *", from: "2026-10-23T00:00:00Z", to: "2026-10-27T00:00:00Z",
			want: []string{"2026-10-23T00:30:00Z", "2026-10-24T00:30:00Z", "2026-10-25T00:30:00Z", "2026-10-25T01:30:00Z", "2026-10-26T01:30:00Z"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				sleepUntil(utc(tt.from))
				set := mustRules(t, fmt.Sprintf(oneSchedule, "quiet", tt.cron, tt.zone))
				s := &recStore{Store: memory.New(memory.Options{})}
				log := &auditLog{}
				stop := start(t, mustNew(t, Config{Rules: newHolder(set), Store: s, Audit: log, ReloadEvery: time.Hour}))
				sleepUntil(utc(tt.to))
				stop()

				var got []string
				for _, ta := range s.actions() {
					got = append(got, ta.at.UTC().Format(time.RFC3339))
					if want := FiringID("quiet", ta.at) + "|@TGS#g|0"; ta.a.ID != want {
						t.Errorf("action id %q, want %q", ta.a.ID, want)
					}
				}
				if !slices.Equal(got, tt.want) {
					t.Errorf("fired at %v, want %v", got, tt.want)
				}
				if recs := log.records(t, audit.KindSchedule); len(recs) != len(tt.want) {
					t.Errorf("%d schedule records, want %d", len(recs), len(tt.want))
				}
			})
		})
	}
}

func TestAFiringEnqueuesItsActionsAndSwitchesItsMode(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		sleepUntil(utc("2026-06-01T14:00:00Z"))
		set := mustRules(t, `version: 1
schedules:
  - name: quiet-hours
    cron: "0 23 * * *"
    timezone: Asia/Shanghai
    groups: ["@TGS#one", "@TGS#two"]
    actions: [{mute_group: 8h, announce: "Good morning!"}, {warn: "Quiet hours begin."}]
    mode: {name: night, for: 8h}
`)
		s := memory.New(memory.Options{})
		log := &auditLog{}
		obs := &observations{}
		stop := start(t, mustNew(t, Config{Rules: newHolder(set), Store: s, Audit: log, Replica: "r1", Observe: obs.observe}))
		sleepUntil(utc("2026-06-01T15:00:30Z"))
		stop()

		at := utc("2026-06-01T15:00:00Z")
		id := FiringID("quiet-hours", at)
		if id != "schedule|quiet-hours|2026-06-01T15:00:00Z" {
			t.Errorf("firing id %q", id)
		}
		pending, err := s.Pending(ctx, 10)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, a := range pending {
			if a.EventID != id || a.Rule != "quiet-hours" || a.User != "" || !a.Created.Equal(at) {
				t.Errorf("action %+v: want event id %s, rule quiet-hours, no user, created at the firing", a, id)
			}
			got = append(got, fmt.Sprintf("%s %s %s %d %s", a.ID, a.Kind, a.Group, a.Seconds, a.Text))
		}
		slices.Sort(got)
		want := []string{
			id + "|@TGS#one|0 mute_group @TGS#one 28800 Good morning!",
			id + "|@TGS#one|1 warn @TGS#one 0 Quiet hours begin.",
			id + "|@TGS#two|0 mute_group @TGS#two 28800 Good morning!",
			id + "|@TGS#two|1 warn @TGS#two 0 Quiet hours begin.",
		}
		if !slices.Equal(got, want) {
			t.Errorf("outbox:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
		res, err := s.Enrich(ctx, store.EnrichRequest{Now: time.Now(), EventID: "e", WithModes: true})
		if err != nil {
			t.Fatal(err)
		}
		if until := res.Modes["night"]; !until.Equal(at.Add(8 * time.Hour)) {
			t.Errorf("modes %v, want night until %v", res.Modes, at.Add(8*time.Hour))
		}
		recs := log.records(t, audit.KindSchedule)
		if len(recs) != 1 {
			t.Fatalf("records %+v, want one", recs)
		}
		r := recs[0]
		if r.EventID != id || r.Result != audit.ResultDone || r.Actor != "r1" || !slices.Equal(r.Rules, []string{"quiet-hours"}) ||
			len(r.Actions) != 5 || r.Actions[4].Kind != "mode" || r.Actions[4].Text != "night" || r.Error != "" {
			t.Errorf("record %+v", r)
		}
		if got := obs.get(); got["quiet-hours done"] != 1 || len(got) != 1 {
			t.Errorf("observed %v, want one quiet-hours done", got)
		}
	})
}

func TestAFiringRunsOnceAcrossReplicas(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sleepUntil(utc("2026-06-01T12:00:00Z"))
		set := mustRules(t, fmt.Sprintf(oneSchedule, "quiet", "0 23 * * *", "Asia/Shanghai"))
		s := &recStore{Store: memory.New(memory.Options{})}
		log := &auditLog{}
		obs := &observations{}
		for i := range 3 {
			start(t, mustNew(t, Config{Rules: newHolder(set), Store: s, Audit: log, Observe: obs.observe, Replica: fmt.Sprint("r", i),
				ReloadEvery: time.Hour}))
		}
		sleepUntil(utc("2026-06-03T12:00:00Z"))
		if n := len(s.actions()); n != 2 {
			t.Errorf("%d actions enqueued over two days, want 2", n)
		}
		if recs := log.records(t, audit.KindSchedule); len(recs) != 2 {
			t.Errorf("%d records, want 2 (the replicas that lost the claim do not audit)", len(recs))
		}
		if got := obs.get(); got["quiet done"] != 2 || got["quiet claimed_elsewhere"] != 4 {
			t.Errorf("observed %v, want 2 done and 4 claimed elsewhere", got)
		}
	})
}

func TestMissedFiringsAreCaughtUpOnce(t *testing.T) {
	const src = `version: 1
schedules:
  - name: quiet-hours
    cron: "0 23 * * *"
    timezone: Asia/Shanghai
    groups: ["@TGS#g"]
    actions: [{mute_group: %s}]
  - name: night-mode
    cron: "0 22 * * *"
    timezone: Europe/Berlin
    mode: {name: night, for: 8h}
`
	// 2026-06-01: 23:00 in Shanghai is 15:00 UTC, 22:00 in Berlin is 20:00 UTC.
	type run struct {
		replicas int
		from, to string
	}
	tests := []struct {
		name     string
		mute     string
		catchUp  time.Duration
		runs     []run
		seconds  []int64 // the mute_group actions enqueued
		modeTill string  // night's end, "" for off
		note     string  // in the quiet-hours record
		observed map[string]int
	}{
		{
			name: "a firing missed while every replica was down runs once, late, when three come back",
			mute: "8h",
			runs: []run{{1, "2026-06-01T14:00:00Z", "2026-06-01T14:50:00Z"}, {3, "2026-06-01T15:20:00Z", "2026-06-01T15:30:00Z"}},
			// It keeps its end: 8h from 23:00, not from 23:20.
			seconds: []int64{8*3600 - 20*60}, note: "caught up 20m0s late",
			observed: map[string]int{"quiet-hours caught_up": 1, "quiet-hours claimed_elsewhere": 2},
		},
		{
			name:     "a firing a replica ran before every replica restarted is not run again",
			mute:     "8h",
			runs:     []run{{1, "2026-06-01T14:00:00Z", "2026-06-01T15:10:00Z"}, {2, "2026-06-01T15:20:00Z", "2026-06-01T15:30:00Z"}},
			seconds:  []int64{8 * 3600},
			observed: map[string]int{"quiet-hours done": 1, "quiet-hours claimed_elsewhere": 2},
		},
		{
			name:     "a firing older than catch_up is not run",
			mute:     "8h",
			catchUp:  time.Hour,
			runs:     []run{{1, "2026-06-01T16:30:00Z", "2026-06-01T16:40:00Z"}},
			observed: map[string]int{},
		},
		{
			name:     "a longer catch_up reaches further back",
			mute:     "8h",
			catchUp:  2 * time.Hour,
			runs:     []run{{1, "2026-06-01T16:30:00Z", "2026-06-01T16:40:00Z"}},
			seconds:  []int64{8*3600 - 90*60},
			note:     "caught up 1h30m0s late",
			observed: map[string]int{"quiet-hours caught_up": 1},
		},
		{
			name:     "a late mute_group whose time has passed is not done",
			mute:     "30m",
			runs:     []run{{1, "2026-06-01T15:40:00Z", "2026-06-01T15:50:00Z"}},
			note:     "would have ended at 2026-06-01T15:30:00Z; not done",
			observed: map[string]int{"quiet-hours caught_up": 1},
		},
		{
			name:     "a mode switched on late ends when it would have",
			mute:     "8h",
			runs:     []run{{1, "2026-06-01T20:30:00Z", "2026-06-01T20:40:00Z"}},
			modeTill: "2026-06-02T04:00:00Z",
			observed: map[string]int{"night-mode caught_up": 1},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ctx := context.Background()
				set := mustRules(t, fmt.Sprintf(src, tt.mute))
				s := &recStore{Store: memory.New(memory.Options{})}
				log := &auditLog{}
				obs := &observations{}
				for _, r := range tt.runs {
					sleepUntil(utc(r.from))
					var stops []func()
					for i := range r.replicas {
						stops = append(stops, start(t, mustNew(t, Config{Rules: newHolder(set), Store: s, Audit: log,
							Observe: obs.observe, CatchUp: tt.catchUp, Replica: fmt.Sprint("r", i)})))
					}
					sleepUntil(utc(r.to))
					for _, stop := range stops {
						stop()
					}
				}
				var seconds []int64
				for _, ta := range s.actions() {
					seconds = append(seconds, ta.a.Seconds)
				}
				if !slices.Equal(seconds, tt.seconds) {
					t.Errorf("mute_group seconds %v, want %v", seconds, tt.seconds)
				}
				res, err := s.Enrich(ctx, store.EnrichRequest{Now: time.Now(), EventID: "e", WithModes: true})
				if err != nil {
					t.Fatal(err)
				}
				if got := res.Modes["night"]; (tt.modeTill == "") != got.IsZero() || (tt.modeTill != "" && !got.Equal(utc(tt.modeTill))) {
					t.Errorf("night until %v, want %q", got, tt.modeTill)
				}
				if tt.note != "" {
					recs := log.records(t, audit.KindSchedule)
					if len(recs) == 0 || !strings.Contains(recs[0].Error, tt.note) {
						t.Errorf("records %+v, want a note %q", recs, tt.note)
					}
				}
				if got := obs.get(); !mapsEqual(got, tt.observed) {
					t.Errorf("observed %v, want %v", got, tt.observed)
				}
			})
		})
	}
}

func TestReloadedSchedulesReplaceTheOldOnes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sleepUntil(utc("2026-06-01T12:00:00Z"))
		h := newHolder(mustRules(t, fmt.Sprintf(oneSchedule, "old", "0 23 * * *", "Asia/Shanghai")))
		s := &recStore{Store: memory.New(memory.Options{})}
		log := &auditLog{}
		start(t, mustNew(t, Config{Rules: h, Store: s, Audit: log}))
		sleepUntil(utc("2026-06-01T16:00:00Z")) // "old" ran at 15:00
		h.p.Store(mustRules(t, fmt.Sprintf(oneSchedule, "new", "0 23 * * *", "Asia/Shanghai")))
		sleepUntil(utc("2026-06-02T16:00:00Z"))
		var got []string
		for _, ta := range s.actions() {
			got = append(got, ta.a.Rule+" "+ta.at.UTC().Format(time.RFC3339))
		}
		want := []string{"old 2026-06-01T15:00:00Z", "new 2026-06-02T15:00:00Z"}
		if !slices.Equal(got, want) {
			t.Errorf("fired %v, want %v", got, want)
		}
	})
}

func TestEverySchedulesAreAlignedAcrossReplicas(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sleepUntil(utc("2026-06-01T12:07:13Z"))
		set := mustRules(t, fmt.Sprintf(oneSchedule, "half-hourly", "@every 30m", "UTC"))
		s := &recStore{Store: memory.New(memory.Options{})}
		log := &auditLog{}
		start(t, mustNew(t, Config{Rules: newHolder(set), Store: s, Audit: log, CatchUp: time.Minute}))
		// A second replica starts 11 minutes later: it fires at the same
		// instants, so each firing is claimed once.
		time.Sleep(11 * time.Minute)
		start(t, mustNew(t, Config{Rules: newHolder(set), Store: s, Audit: log, CatchUp: time.Minute}))
		sleepUntil(utc("2026-06-01T13:31:00Z"))
		var got []string
		for _, ta := range s.actions() {
			got = append(got, ta.a.Rule+" "+ta.at.UTC().Format("15:04:05"))
		}
		want := []string{"half-hourly 12:30:00", "half-hourly 13:00:00", "half-hourly 13:30:00"}
		if !slices.Equal(got, want) {
			t.Errorf("fired %v, want %v", got, want)
		}
	})
}

func TestNewRefusesAnIncompleteConfig(t *testing.T) {
	s := memory.New(memory.Options{})
	h := newHolder(mustRules(t, "version: 1\n"))
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"without rules", Config{Store: s, Audit: &auditLog{}}, "Rules is nil"},
		{"without a store", Config{Rules: h, Audit: &auditLog{}}, "Store is nil"},
		{"without an audit sink", Config{Rules: h, Store: s}, "Audit is nil"},
		{"with a negative interval", Config{Rules: h, Store: s, Audit: &auditLog{}, CatchUp: -time.Second}, "negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := New(tt.cfg); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("New: %v, want an error with %q", err, tt.want)
			}
		})
	}
}

func TestLastFiringLooksBackWithinTheWindow(t *testing.T) {
	ber := mustZone(t, "Europe/Berlin")
	sched, err := rules.ParseCron("0 22 * * *", ber)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		now    string
		window time.Duration
		want   string
	}{
		{"a firing at now itself counts", "2026-06-01T20:00:00Z", time.Minute, "2026-06-01T20:00:00Z"},
		{"a firing just inside the window counts", "2026-06-01T21:00:00Z", time.Hour, "2026-06-01T20:00:00Z"},
		{"a firing just outside the window does not", "2026-06-01T21:00:01Z", time.Hour, ""},
		{"the most recent of several firings is the one", "2026-06-03T21:00:00Z", 72 * time.Hour, "2026-06-03T20:00:00Z"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := lastFiring(sched, utc(tt.now), tt.window)
			if (tt.want == "") == ok || (ok && !got.Equal(utc(tt.want))) {
				t.Errorf("lastFiring = %v, %v; want %q", got, ok, tt.want)
			}
		})
	}
}

func mapsEqual(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}
