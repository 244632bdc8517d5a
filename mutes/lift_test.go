package mutes

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/timguard/timguard/store"
	"github.com/timguard/timguard/store/memory"
	"github.com/timguard/timguard/tim"
)

type liftCalls struct{ forbid, modify int }

func (l *liftCalls) ForbidSendMsg(context.Context, tim.ForbidSendMsgRequest) error {
	l.forbid++
	return nil
}
func (l *liftCalls) ModifyGroupBaseInfo(context.Context, tim.ModifyGroupBaseInfoRequest) error {
	l.modify++
	return nil
}

func TestALiftNowMarksTheMuteAsLiftedEarly(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	st := memory.New(memory.Options{Now: func() time.Time { return now }})
	member := store.Mute{Group: "g", User: "u", Since: now, Until: now.Add(time.Hour)}
	group := store.Mute{Group: "g", Since: now, Until: now.Add(15 * time.Minute)}
	for _, m := range []store.Mute{member, group} {
		if err := st.SetMute(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	calls := &liftCalls{}
	l := Lifter{Client: calls, Store: st, Now: func() time.Time { return now }}
	if err := l.Unmute(ctx, "g", "u"); err != nil {
		t.Fatal(err)
	}
	if err := l.UnmuteGroup(ctx, "g"); err != nil {
		t.Fatal(err)
	}
	if calls.forbid != 1 || calls.modify != 1 {
		t.Errorf("REST calls forbid=%d modify=%d, want 1 each", calls.forbid, calls.modify)
	}
	for _, m := range []store.Mute{member, group} {
		lifted, err := WasLifted(ctx, st, LiftedKey(m.Group, m.User, m.Until))
		if err != nil || !lifted {
			t.Errorf("mute of %q: lifted mark = %v (%v), want set so its delayed end is skipped", m.User, lifted, err)
		}
	}
	t.Run("lifting a mute timguard did not record marks nothing", func(t *testing.T) {
		if err := l.Unmute(ctx, "g", "stranger"); err != nil {
			t.Fatal(err)
		}
	})
}

func TestAMarkSetWhileAProbeHoldsItsKeyIsKept(t *testing.T) {
	t.Run("memory", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			checkMarkAfterProbe(t, memory.New(memory.Options{}))
		})
	})
	t.Run("redis", func(t *testing.T) {
		checkMarkAfterProbe(t, openRedis(t))
	})
}

// checkMarkAfterProbe lifts a mute right after the check of its delayed
// announcement probed the mark (within the probe's lifetime), and checks
// that the mark is set, and that marking it again is not an error.
func checkMarkAfterProbe(t *testing.T, s store.Store) {
	t.Helper()
	ctx := context.Background()
	now := time.Now()
	m := store.Mute{Group: grp, User: "carol", Since: now, Until: now.Add(10 * time.Minute)}
	key := LiftedKey(m.Group, m.User, m.Until)
	if lifted, err := WasLifted(ctx, s, key); err != nil || lifted {
		t.Fatalf("probe before any lift: lifted=%v, err=%v; want not lifted", lifted, err)
	}
	if err := MarkLifted(ctx, s, m, now); err != nil {
		t.Fatalf("mark lifted: %v", err)
	}
	if err := MarkLifted(ctx, s, m, now); err != nil {
		t.Fatalf("mark lifted again: %v", err)
	}
	time.Sleep(10 * time.Millisecond) // long past any probe's lifetime
	if lifted, err := WasLifted(ctx, s, key); err != nil || !lifted {
		t.Errorf("probe after the lift: lifted=%v, err=%v; want the mark set while the probe held the key", lifted, err)
	}
}
