package actions

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/timguard/timguard/rules"
	"github.com/timguard/timguard/store"
	"github.com/timguard/timguard/tim"
	"github.com/timguard/timguard/tim/timtest"
)

// BenchmarkExecutorBatch measures one join wave: 300 mutes of one group
// enqueued, claimed, sent as one forbid_send_msg to the fake IM server (over
// loopback HTTP, through the shared rate limiter), recorded as mutes,
// completed and audited. Linger is off so that the figure is the work, not
// the wait.
func BenchmarkExecutorBatch(b *testing.B) {
	for _, sk := range storeKinds() {
		b.Run(sk.name, func(b *testing.B) {
			s, _ := sk.open(b)
			rig := newIMRig(b, 100000, timtest.Options{})
			wave := members("u", 300)
			rig.im.AddGroup(timtest.Group{ID: grp, Type: "Public", Owner: "olga", Members: wave})
			log := &auditLog{}
			e := rig.executor(b, s, log, func(c *Config) { c.Linger = -1 })
			ctx := context.Background()
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				b.StopTimer()
				as := many(string(rules.ActMute), grp, tim.GroupPublic, wave, 600, "")
				for k := range as {
					as[k].ID = fmt.Sprintf("%d/%s", i, as[k].ID)
				}
				enqueue(b, s, time.Now(), as...)
				log.lines = log.lines[:0]
				b.StartTimer()
				if n, err := e.RunOnce(ctx); err != nil || n != 300 {
					b.Fatalf("RunOnce = %d, %v", n, err)
				}
			}
			b.StopTimer()
			if n := len(rig.im.CallsTo(tim.CommandForbidSendMsg)); n == 0 {
				b.Fatal("no forbid_send_msg call")
			}
		})
	}
}

// BenchmarkExecutorSpread measures the load generator's kind of actions:
// few per group, over many groups. Each of 60 groups gets two mutes of one
// flooder (the second longer), a kick of a spammer and a notice to all
// members, 240 actions in all, claimed in one batch and carried out through
// the fake IM server and the shared rate limiter.
func BenchmarkExecutorSpread(b *testing.B) {
	const groups = 60
	for _, sk := range storeKinds() {
		b.Run(sk.name, func(b *testing.B) {
			s, _ := sk.open(b)
			rig := newIMRig(b, 100000, timtest.Options{})
			for g := range groups {
				id := fmt.Sprintf("@TGS#spread%d", g)
				rig.im.AddGroup(timtest.Group{ID: id, Type: "Public", Owner: "olga", Members: []string{"flooder", "spammer", "x"}})
			}
			log := &auditLog{}
			e := rig.executor(b, s, log, func(c *Config) { c.Linger = -1 })
			ctx := context.Background()
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				b.StopTimer()
				var as []store.Action
				for g := range groups {
					id := fmt.Sprintf("@TGS#spread%d", g)
					p := fmt.Sprintf("%d/%d/", i, g)
					as = append(as,
						act(p+"mute1", string(rules.ActMute), id, tim.GroupPublic, "flooder", 600, ""),
						act(p+"mute2", string(rules.ActMute), id, tim.GroupPublic, "flooder", 1200, ""),
						act(p+"kick", string(rules.ActKick), id, tim.GroupPublic, "spammer", 0, "Repeated violations"),
						act(p+"warn", string(rules.ActWarn), id, tim.GroupPublic, "", 0, "A member was removed by the moderators."))
				}
				enqueue(b, s, time.Now(), as...)
				log.lines = log.lines[:0]
				b.StartTimer()
				if n, err := e.RunOnce(ctx); err != nil || n != len(as) {
					b.Fatalf("RunOnce = %d, %v", n, err)
				}
			}
		})
	}
}
