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
	"github.com/timguard/timguard/store"
	"github.com/timguard/timguard/store/memory"
)

// outageStore fails the scheduler's writes with store.ErrUnavailable from
// from until to, by the bubble's clock. only, when set, names the one
// method that fails ("ClaimOnce", "Enqueue" or "SetMode").
type outageStore struct {
	store.Store
	from, to time.Time
	only     string
}

func (s *outageStore) down(op string) error {
	now := time.Now()
	if (s.only == "" || s.only == op) && !now.Before(s.from) && now.Before(s.to) {
		return fmt.Errorf("test %s: %w: outage", op, store.ErrUnavailable)
	}
	return nil
}

func (s *outageStore) ClaimOnce(ctx context.Context, key string, ttl time.Duration) (bool, error) {
	if err := s.down("ClaimOnce"); err != nil {
		return false, err
	}
	return s.Store.ClaimOnce(ctx, key, ttl)
}

func (s *outageStore) Enqueue(ctx context.Context, as ...store.Action) error {
	if err := s.down("Enqueue"); err != nil {
		return err
	}
	return s.Store.Enqueue(ctx, as...)
}

func (s *outageStore) SetMode(ctx context.Context, name string, until time.Time) error {
	if err := s.down("SetMode"); err != nil {
		return err
	}
	return s.Store.SetMode(ctx, name, until)
}

func TestAFiringMissedDuringAStoreOutageRunsOnceWhenTheStoreIsBack(t *testing.T) {
	// 23:00 in Shanghai is 15:00 UTC.
	const src = `version: 1
schedules:
  - name: quiet-hours
    cron: "0 23 * * *"
    timezone: Asia/Shanghai
    groups: ["@TGS#g"]
    actions: [{mute_group: 8h}]
    mode: {name: night, for: 8h}
`
	at := utc("2026-06-01T15:00:00Z")
	tests := []struct {
		name     string
		replicas int
		catchUp  time.Duration
		outage   [2]string
		only     string
		enqueued []string // "time seconds" of the mute_group actions enqueued
		modeTill string   // night's end, "" for off
		results  []string // the schedule records' results, in order (a late run's is done, with a note)
		note     string   // in the last record
		observed map[string]int
	}{
		{
			name:     "a firing during a two-minute outage runs at the first retry after it, keeping its end",
			replicas: 1,
			outage:   [2]string{"2026-06-01T14:59:00Z", "2026-06-01T15:02:00Z"},
			enqueued: []string{"15:02:00 28680"},
			modeTill: "2026-06-01T23:00:00Z",
			results:  []string{ResultFailed, audit.ResultDone},
			note:     "caught up 2m0s late: the store was unavailable",
			observed: map[string]int{"quiet-hours failed": 1, "quiet-hours caught_up": 1},
		},
		{
			name:     "three replicas that all missed a firing run it once between them",
			replicas: 3,
			outage:   [2]string{"2026-06-01T14:59:00Z", "2026-06-01T15:02:00Z"},
			enqueued: []string{"15:02:00 28680"},
			modeTill: "2026-06-01T23:00:00Z",
			results:  []string{ResultFailed, ResultFailed, ResultFailed, audit.ResultDone},
			observed: map[string]int{"quiet-hours failed": 3, "quiet-hours caught_up": 1, "quiet-hours claimed_elsewhere": 2},
		},
		{
			name:     "the replica that claimed a firing but could not enqueue its actions enqueues them later",
			replicas: 2,
			outage:   [2]string{"2026-06-01T14:59:00Z", "2026-06-01T15:02:00Z"},
			only:     "Enqueue",
			enqueued: []string{"15:02:00 28680"},
			modeTill: "2026-06-01T23:00:00Z",
			results:  []string{ResultFailed, audit.ResultDone},
			observed: map[string]int{"quiet-hours failed": 1, "quiet-hours caught_up": 1, "quiet-hours claimed_elsewhere": 1},
		},
		{
			name:     "a firing the store was unavailable for until catch_up passed is given up",
			replicas: 1,
			catchUp:  10 * time.Minute,
			outage:   [2]string{"2026-06-01T14:59:00Z", "2026-06-01T15:20:00Z"},
			results:  []string{ResultFailed, ResultFailed},
			note:     "not run: the store was unavailable until catch_up (10m0s) had passed",
			observed: map[string]int{"quiet-hours failed": 1},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				sleepUntil(utc("2026-06-01T14:00:00Z"))
				rec := &recStore{Store: memory.New(memory.Options{})}
				s := &outageStore{Store: rec, from: utc(tt.outage[0]), to: utc(tt.outage[1]), only: tt.only}
				log := &auditLog{}
				obs := &observations{}
				set := mustRules(t, src)
				for i := range tt.replicas {
					start(t, mustNew(t, Config{Rules: newHolder(set), Store: s, Audit: log, Observe: obs.observe,
						CatchUp: tt.catchUp, Replica: fmt.Sprint("r", i)}))
				}
				sleepUntil(utc("2026-06-01T15:30:00Z"))

				var enqueued []string
				for _, ta := range rec.actions() {
					enqueued = append(enqueued, fmt.Sprintf("%s %d", ta.at.UTC().Format("15:04:05"), ta.a.Seconds))
					if want := FiringID("quiet-hours", at) + "|@TGS#g|0"; ta.a.ID != want {
						t.Errorf("action id %q, want %q", ta.a.ID, want)
					}
				}
				if !slices.Equal(enqueued, tt.enqueued) {
					t.Errorf("enqueued %v, want %v", enqueued, tt.enqueued)
				}
				res, err := rec.Enrich(context.Background(), store.EnrichRequest{Now: time.Now(), EventID: "e", WithModes: true})
				if err != nil {
					t.Fatal(err)
				}
				if got := res.Modes["night"]; (tt.modeTill == "") != got.IsZero() || (tt.modeTill != "" && !got.Equal(utc(tt.modeTill))) {
					t.Errorf("night until %v, want %q", got, tt.modeTill)
				}
				recs := log.records(t, audit.KindSchedule)
				var results []string
				for _, r := range recs {
					results = append(results, r.Result)
					if r.EventID != FiringID("quiet-hours", at) {
						t.Errorf("record %+v: want the firing's event id", r)
					}
				}
				if !slices.Equal(results, tt.results) {
					t.Errorf("results %v, want %v", results, tt.results)
				}
				if len(recs) > 0 {
					if first := recs[0].Error; !strings.Contains(first, "tried again every 1m0s while within catch_up") {
						t.Errorf("first record's error %q, want it to say the firing is tried again", first)
					}
					if last := recs[len(recs)-1].Error; tt.note != "" && !strings.Contains(last, tt.note) {
						t.Errorf("last record's error %q, want %q", last, tt.note)
					}
				}
				if got := obs.get(); !mapsEqual(got, tt.observed) {
					t.Errorf("observed %v, want %v", got, tt.observed)
				}
			})
		})
	}
}
