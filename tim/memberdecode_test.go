package tim

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

var memberCommands = []string{CmdBeforeApplyJoinGroup, CmdAfterNewMemberJoin, CmdAfterMemberExit}

// memberBodies are join requests, joins and exits: as the IM server and the
// load generator send them, and unusual in the ways decodeMemberEvent
// leaves to encoding/json.
var memberBodies = []struct{ command, body string }{
	{CmdBeforeApplyJoinGroup, `{"CallbackCommand":"Group.CallbackBeforeApplyJoinGroup","GroupId":"@TGS#1","Type":"Work","Requestor_Account":"u1","ApplyMsg":"hi \u4f60\n","EventTime":"1670574414123"}`},
	{CmdBeforeApplyJoinGroup, `{"GroupId":"g","Requestor_Account":"u1"}`},
	{CmdBeforeApplyJoinGroup, `{"GroupId":"g","Requestor_Account":""}`},
	{CmdBeforeApplyJoinGroup, `{"GroupId":"g","requestor_account":"u1"}`},
	{CmdBeforeApplyJoinGroup, `{"GroupId":"g","Requestor_Account":"u1","Requestor_Account":"u2"}`},
	{CmdBeforeApplyJoinGroup, `{"GroupId":"g","Requestor_Account":"u1","NewMemberList":[{"Member_Account":"x"}],"Extra":{"a":[1,2,{"b":null}]}}`},
	{CmdAfterNewMemberJoin, `{"CallbackCommand":"Group.CallbackAfterNewMemberJoin","GroupId":"@TGS#2","Type":"Public","JoinType":"Invited","Operator_Account":"op","NewMemberList":[{"Member_Account":"a"},{"Member_Account":"b","Extra":1}],"EventTime":1670574414123}`},
	{CmdAfterNewMemberJoin, `{"GroupId":"g","NewMemberList":[]}`},
	{CmdAfterNewMemberJoin, `{"GroupId":"g","NewMemberList":null}`},
	{CmdAfterNewMemberJoin, `{"GroupId":"g","NewMemberList":[null]}`},
	{CmdAfterNewMemberJoin, `{"GroupId":"g","NewMemberList":[{}]}`},
	{CmdAfterNewMemberJoin, `{"GroupId":"g","NewMemberList":[{"member_account":"a"}]}`},
	{CmdAfterNewMemberJoin, `{"GroupId":"g","NewMemberList":[{"Member_Account":"a","Member_Account":"b"}]}`},
	{CmdAfterNewMemberJoin, `{"GroupId":"g","ExitMemberList":[{"Member_Account":"a"}],"TopicId":"t"}`},
	{CmdAfterNewMemberJoin, `{"GroupId":"","NewMemberList":[{"Member_Account":"a"}]}`},
	{CmdAfterNewMemberJoin, `{"CallbackCommand":"Group.CallbackAfterMemberExit","GroupId":"g"}`},
	{CmdAfterMemberExit, `{"CallbackCommand":"Group.CallbackAfterMemberExit","GroupId":"@TGS#3","Type":"Live","ExitType":"Kicked","Operator_Account":"admin","ExitMemberList":[{"Member_Account":"spammer"}],"EventTime":1670574414123}`},
	{CmdAfterMemberExit, `{"CallbackCommand":"","GroupId":"g","ExitType":"Quit","ExitMemberList":[{"Member_Account":"a\"b"}],"EventTime":"1.5"}`},
	{CmdAfterMemberExit, `{"GroupId":"g","EventTime":-1,"Type":"Meeting"}`},
	{CmdAfterMemberExit, `{"GroupId":"g","EventTime":null}`},
	{CmdAfterMemberExit, `{"GroupId":"g","ExitMemberList":[{"Member_Account":"\ud800"}]}`},
	{CmdAfterMemberExit, ` {"GroupId":"g","ExitMemberList":{"Member_Account":"a"}} `},
	{CmdAfterMemberExit, `{"GroupId":"g"} x`},
}

func memberSeeds(t testing.TB) []struct{ command, body string } {
	out := append([]struct{ command, body string }(nil), memberBodies...)
	for _, name := range []string{"BeforeApplyJoinGroup", "AfterNewMemberJoin", "AfterNewMemberJoinInvited", "AfterMemberExit", "AfterMemberExitQuit"} {
		body, err := os.ReadFile(filepath.Join("testdata", "callbacks", name+".json"))
		if err != nil {
			t.Fatal(err)
		}
		cmd := map[string]string{
			"BeforeApplyJoinGroup": CmdBeforeApplyJoinGroup, "AfterNewMemberJoin": CmdAfterNewMemberJoin,
			"AfterNewMemberJoinInvited": CmdAfterNewMemberJoin, "AfterMemberExit": CmdAfterMemberExit, "AfterMemberExitQuit": CmdAfterMemberExit,
		}[name]
		out = append(out, struct{ command, body string }{cmd, string(body)})
	}
	return out
}

func TestMemberEventDecoderAgreesWithEncodingJSON(t *testing.T) {
	fast := 0
	for _, b := range memberSeeds(t) {
		body := bytes.TrimSpace([]byte(b.body))
		want, wantErr := decodeStd(b.command, body)
		if ev, ok := decodeMemberEvent(b.command, body); ok {
			fast++
			if wantErr != nil {
				t.Fatalf("accepted %q, which encoding/json refuses: %v", b.body, wantErr)
			}
			sameEvent(t, ev, want)
		}
		got, err := DecodeCallback(b.command, []byte(b.body))
		sameResult(t, got, err, want, wantErr)
	}
	// The IM server's bodies (the testdata) and the plain ones are read
	// without encoding/json.
	if fast < 12 {
		t.Errorf("the member decoder read %d bodies itself; want at least 12", fast)
	}
}

// FuzzDecodeMemberEvent holds the member event decoder to encoding/json as
// FuzzDecodeMessage does the message decoder.
func FuzzDecodeMemberEvent(f *testing.F) {
	for _, b := range memberSeeds(f) {
		for i, c := range memberCommands {
			if c == b.command {
				f.Add(uint8(i), []byte(b.body))
			}
		}
	}
	f.Fuzz(func(t *testing.T, which uint8, body []byte) {
		command := memberCommands[int(which)%len(memberCommands)]
		trimmed := bytes.TrimSpace(body)
		if len(trimmed) == 0 || trimmed[0] != '{' {
			return
		}
		want, wantErr := decodeStd(command, bytes.Clone(trimmed))
		if fast, ok := decodeMemberEvent(command, bytes.Clone(trimmed)); ok {
			if wantErr != nil {
				t.Fatalf("the member decoder accepted a body encoding/json refuses (%v): %q", wantErr, body)
			}
			sameEvent(t, fast, want)
		}
		own := bytes.Clone(body)
		got, err := DecodeCallback(command, own)
		for i := range own {
			own[i] = 0
		}
		sameResult(t, got, err, want, wantErr)
	})
}
