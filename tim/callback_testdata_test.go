package tim_test

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/timguard/timguard/tim"
)

// TestCallbackTestdataDecodes keeps the example bodies under
// testdata/callbacks (used by the handler tests) decodable, and checks what
// each one is meant to show.
func TestCallbackTestdataDecodes(t *testing.T) {
	tests := []struct {
		file  string
		check func(t *testing.T, ev tim.Event)
	}{
		{"BeforeApplyJoinGroup.json", func(t *testing.T, ev tim.Event) {
			e := ev.(*tim.BeforeApplyJoinGroup)
			if e.Requestor != "leckie" || e.ApplyMsg == "" {
				t.Errorf("got %+v", e)
			}
		}},
		{"BeforeInviteJoinGroup.json", func(t *testing.T, ev tim.Event) {
			e := ev.(*tim.BeforeInviteJoinGroup)
			if e.Operator != "leckie" || len(e.DestinationMembers) != 2 || e.DestinationMembers[0].Account != "jared" {
				t.Errorf("got %+v", e)
			}
		}},
		{"AfterNewMemberJoin.json", func(t *testing.T, ev tim.Event) {
			e := ev.(*tim.AfterNewMemberJoin)
			if e.JoinType != "Apply" || len(e.NewMemberList) != 2 {
				t.Errorf("got %+v", e)
			}
		}},
		{"AfterNewMemberJoinInvited.json", func(t *testing.T, ev tim.Event) {
			e := ev.(*tim.AfterNewMemberJoin)
			if e.JoinType != "Invited" || e.Type != tim.GroupPrivate {
				t.Errorf("got %+v (the SDK name Work must read as Private)", e)
			}
		}},
		{"AfterMemberExit.json", func(t *testing.T, ev tim.Event) {
			e := ev.(*tim.AfterMemberExit)
			if e.ExitType != "Kicked" || len(e.ExitMemberList) != 2 {
				t.Errorf("got %+v", e)
			}
		}},
		{"AfterMemberExitQuit.json", func(t *testing.T, ev tim.Event) {
			e := ev.(*tim.AfterMemberExit)
			if e.ExitType != "Quit" || e.ExitMemberList[0].Account != "jared" {
				t.Errorf("got %+v", e)
			}
		}},
		{"BeforeSendMsg.json", func(t *testing.T, ev tim.Event) {
			e := ev.(*tim.BeforeSendMsg)
			if want := []string{"red packet", "free crypto at t.me/example"}; !slices.Equal(tim.Texts(e.MsgBody), want) {
				t.Errorf("Texts = %q, want %q", tim.Texts(e.MsgBody), want)
			}
			if e.From != "jared" || e.Random != 123456 {
				t.Errorf("got %+v", e)
			}
		}},
		{"BeforeSendMsgMixed.json", func(t *testing.T, ev tim.Event) {
			e := ev.(*tim.BeforeSendMsg)
			var types []string
			for _, el := range e.MsgBody {
				types = append(types, el.MsgType)
			}
			if want := []string{tim.ElemFace, tim.ElemCustom, tim.ElemImage, tim.ElemText}; !slices.Equal(types, want) {
				t.Errorf("types = %q, want %q", types, want)
			}
			if e.MsgBody[1].MsgContent.Desc != "notification" {
				t.Errorf("custom element Desc = %q", e.MsgBody[1].MsgContent.Desc)
			}
		}},
		{"AfterSendMsg.json", func(t *testing.T, ev tim.Event) {
			e := ev.(*tim.AfterSendMsg)
			if e.MsgSeq != 123 || e.MsgTime != 1490686222 || len(e.GroupAtInfo) != 2 || e.GroupAtInfo[0].Account != "leckie" || e.GroupAtInfo[1].AtAllFlag != 1 {
				t.Errorf("got %+v", e)
			}
		}},
		{"AfterGroupDestroyed.json", func(t *testing.T, ev tim.Event) {
			e := ev.(*tim.AfterGroupDestroyed)
			if e.Owner != "leckie" || e.Name != "MyFirstGroup" || len(e.MemberList) != 2 {
				t.Errorf("got %+v", e)
			}
		}},
		{"AfterGroupInfoChanged.json", func(t *testing.T, ev tim.Event) {
			if _, ok := ev.(*tim.OtherCallback); !ok {
				t.Errorf("got %T, want *tim.OtherCallback", ev)
			}
		}},
		{"AfterMemberFieldChanged.json", func(t *testing.T, ev tim.Event) {
			e := ev.(*tim.AfterMemberFieldChanged)
			if e.Member != "123456" || e.Role != tim.RoleAdmin || e.NameCard != "jacky" || e.Operator != "admin" {
				t.Errorf("got %+v", e)
			}
		}},
		{"RequestOverLimit.json", func(t *testing.T, ev tim.Event) {
			e := ev.(*tim.RequestOverLimit)
			if e.ServiceName != "openim" || e.Command != "batchsendmsg" || e.Request != 510 || e.Limit != 200 {
				t.Errorf("got %+v", e)
			}
		}},
	}
	seen := map[string]bool{}
	for _, tt := range tests {
		seen[tt.file] = true
		t.Run(tt.file, func(t *testing.T) {
			body, err := os.ReadFile(filepath.Join("testdata", "callbacks", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			ev, err := tim.DecodeCallback("", body)
			if err != nil {
				t.Fatalf("DecodeCallback: %v", err)
			}
			if ev.Header().EventTime != 1670574414123 {
				t.Errorf("EventTime = %d", ev.Header().EventTime)
			}
			tt.check(t, ev)
		})
	}
	files, err := filepath.Glob(filepath.Join("testdata", "callbacks", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if !seen[filepath.Base(f)] {
			t.Errorf("%s has no case in this test", f)
		}
	}
}
