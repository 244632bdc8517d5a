package tim_test

import (
	"testing"
	"time"

	"github.com/timguard/timguard/test/harness"
	"github.com/timguard/timguard/tim"
)

// TestMessageDecoderReadsTheLoadMix checks that the messages of the load
// generator's mix (the bodies the benchmarks and cmd/loadgen send) are read
// by the message decoder itself, not left to encoding/json.
func TestMessageDecoderReadsTheLoadMix(t *testing.T) {
	mix := harness.NewLoadMix(1, 1000, 20000)
	now := time.Unix(1700000000, 0)
	messages := 0
	for i := range 2000 {
		req := mix.Request(i, now)
		if req.Command != tim.CmdBeforeSendMsg && req.Command != tim.CmdAfterSendMsg {
			continue
		}
		messages++
		if _, ok := tim.DecodeMessage(req.Command, req.Body); !ok {
			t.Fatalf("request %d (%s) was left to encoding/json: %s", i, req.Class, req.Body)
		}
	}
	if messages < 1000 {
		t.Fatalf("only %d of 2000 requests were messages", messages)
	}
}

// TestMemberEventDecoderReadsTheLoadMix checks the same of the mix's join
// requests, joins and exits.
func TestMemberEventDecoderReadsTheLoadMix(t *testing.T) {
	mix := harness.NewLoadMix(1, 1000, 20000)
	now := time.Unix(1700000000, 0)
	events := 0
	for i := range 4000 {
		req := mix.Request(i, now)
		switch req.Command {
		case tim.CmdBeforeApplyJoinGroup, tim.CmdAfterNewMemberJoin, tim.CmdAfterMemberExit:
		default:
			continue
		}
		events++
		if _, ok := tim.DecodeMemberEvent(req.Command, req.Body); !ok {
			t.Fatalf("request %d (%s) was left to encoding/json: %s", i, req.Class, req.Body)
		}
	}
	if events < 200 {
		t.Fatalf("only %d of 4000 requests were join requests, joins or exits", events)
	}
}
