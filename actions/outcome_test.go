package actions

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/timguard/timguard/rules"
	"github.com/timguard/timguard/store"
	"github.com/timguard/timguard/store/memory"
	"github.com/timguard/timguard/tim"
)

var errRefused = errors.New("test: enqueue refused")

// followUpRefusingStore refuses to enqueue the delayed actions a call
// leaves behind (their ids carry a suffix).
type followUpRefusingStore struct{ store.Store }

func (s followUpRefusingStore) Enqueue(ctx context.Context, as ...store.Action) error {
	for _, a := range as {
		if strings.Contains(a.ID, "/") {
			return errRefused
		}
	}
	return s.Store.Enqueue(ctx, as...)
}

func TestAFollowUpThatCannotBeQueuedSaysWhichOne(t *testing.T) {
	tests := []struct {
		name string
		j    *job
		want string
	}{
		{
			name: "the announcement at the end of a member mute",
			j:    &job{c: store.Claimed{Action: act("m", string(rules.ActMute), grp, tim.GroupPublic, "carol", 600, "Back.")}, op: opMute, seconds: 600, announce: "Back."},
			want: "queue the announcement of the end of the mute of carol in " + grp + ": ",
		},
		{
			name: "the unmute at the end of a group mute",
			j:    &job{c: store.Claimed{Action: act("g", string(rules.ActMuteGroup), grp, tim.GroupPublic, "", 900, "")}, op: opMuteAll, seconds: 900},
			want: "queue the end of the group mute of " + grp + ": ",
		},
		{
			name: "the announcement after a group unmute",
			j:    &job{c: store.Claimed{Action: act("u", string(rules.ActUnmuteGroup), grp, tim.GroupPublic, "", 0, "Talk again.")}, op: opUnmuteAll, announce: "Talk again."},
			want: "queue the announcement of the group unmute of " + grp + ": ",
		},
		{
			name: "the announcement at the end of a ban",
			j:    &job{c: store.Claimed{Action: act("b", string(rules.ActBan), grp, tim.GroupAVChatRoom, "carol", 600, "Back.")}, op: opBan, seconds: 600, announce: "Back."},
			want: "queue the announcement of the end of the ban of carol in " + grp + ": ",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := followUpRefusingStore{memory.New(memory.Options{})}
			e := newTestExecutor(t, s, nil, &auditLog{}, nil)
			err := e.followUps(context.Background(), tt.j, time.Now())
			if !errors.Is(err, errRefused) || !strings.HasPrefix(err.Error(), tt.want) {
				t.Errorf("followUps: %v; want %q wrapping the store's error", err, tt.want)
			}
		})
	}
}

func TestRetryStoreRetriesOnlyAnUnavailableStore(t *testing.T) {
	unavailable := fmt.Errorf("test: %w", store.ErrUnavailable)
	tests := []struct {
		name    string
		errs    []error // op's answers in turn; the last one repeats
		timeout time.Duration
		calls   int
		want    error
	}{
		{"a store back after two failures is used at the third attempt", []error{unavailable, unavailable, nil}, time.Hour, 3, nil},
		{"another error is returned at once", []error{errRefused}, time.Hour, 1, errRefused},
		// Attempts at 0, 100ms, 300ms and 700ms; the next would be at 1.1s.
		{"an outage longer than the context ends with the store's error", []error{unavailable}, time.Second, 4, store.ErrUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ctx, cancel := context.WithTimeout(context.Background(), tt.timeout)
				defer cancel()
				calls := 0
				err := RetryStore(ctx, 100*time.Millisecond, 400*time.Millisecond, func(context.Context) error {
					calls++
					return tt.errs[min(calls, len(tt.errs))-1]
				})
				if calls != tt.calls || !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
					t.Errorf("%d calls, error %v; want %d calls, error %v", calls, err, tt.calls, tt.want)
				}
			})
		})
	}
}
