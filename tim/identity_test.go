package tim

import "testing"

func TestIdentityNamesAnAfterEventWhateverItsBytes(t *testing.T) {
	const msg = `{"GroupId":"g","Type":"Public","From_Account":"eve","Random":7,"MsgSeq":10,"EventTime":1700000000123,"MsgBody":[{"MsgType":"TIMTextElem","MsgContent":{"Text":"hi"}}]}`
	const join = `{"GroupId":"g","Type":"Public","JoinType":"Invited","Operator_Account":"ann","EventTime":1700000000200,"NewMemberList":[{"Member_Account":"a"},{"Member_Account":"b"}]}`
	tests := []struct {
		name       string
		cmd, a, b  string
		same       bool
		bothNamed  bool
		firstNamed bool
	}{
		{"a message in other key order, EventTime as a string", CmdAfterSendMsg, msg,
			`{"EventTime":"1700000000123","MsgSeq":10,"Random":7,"From_Account":"eve","Type":"Public","GroupId":"g","MsgBody":[{"MsgContent":{"Text":"hi"},"MsgType":"TIMTextElem"}]}`, true, true, true},
		{"a message of another MsgSeq", CmdAfterSendMsg, msg, `{"GroupId":"g","Type":"Public","From_Account":"eve","Random":7,"MsgSeq":11,"EventTime":1700000000123,"MsgBody":[]}`, false, true, true},
		{"a message of another sender", CmdAfterSendMsg, msg, `{"GroupId":"g","Type":"Public","From_Account":"bob","Random":7,"MsgSeq":10,"EventTime":1700000000123,"MsgBody":[]}`, false, true, true},
		{"a message in another topic", CmdAfterSendMsg, msg, `{"GroupId":"g","TopicId":"t1","Type":"Public","From_Account":"eve","Random":7,"MsgSeq":10,"EventTime":1700000000123,"MsgBody":[]}`, false, true, true},
		{"a join with its members in another order", CmdAfterNewMemberJoin, join,
			`{"NewMemberList":[{"Member_Account":"b"},{"Member_Account":"a"}],"GroupId":"g","Type":"Public","JoinType":"Invited","Operator_Account":"ann","EventTime":"1700000000200"}`, true, true, true},
		{"a join a millisecond later", CmdAfterNewMemberJoin, join,
			`{"GroupId":"g","Type":"Public","JoinType":"Invited","Operator_Account":"ann","EventTime":1700000000201,"NewMemberList":[{"Member_Account":"a"},{"Member_Account":"b"}]}`, false, true, true},
		{"member names that look like separators", CmdAfterMemberExit,
			`{"GroupId":"g","ExitType":"Quit","EventTime":5,"ExitMemberList":[{"Member_Account":"a|1:b"}]}`,
			`{"GroupId":"g","ExitType":"Quit","EventTime":5,"ExitMemberList":[{"Member_Account":"a"},{"Member_Account":"b"}]}`, false, true, true},
		{"a join without EventTime is not named", CmdAfterNewMemberJoin,
			`{"GroupId":"g","JoinType":"Apply","NewMemberList":[{"Member_Account":"a"}]}`,
			`{"GroupId":"g","JoinType":"Apply","NewMemberList":[{"Member_Account":"a"}]}`, false, false, false},
		{"a message without EventTime is not named", CmdAfterSendMsg,
			`{"GroupId":"g","From_Account":"eve","Random":7,"MsgSeq":10,"MsgBody":[]}`, `{"GroupId":"g","From_Account":"eve","Random":7,"MsgSeq":10,"MsgBody":[]}`, false, false, false},
		{"a message without MsgSeq or Random is not named", CmdAfterSendMsg,
			`{"GroupId":"g","From_Account":"eve","EventTime":1,"MsgBody":[]}`, `{"GroupId":"g","From_Account":"eve","EventTime":1,"MsgBody":[]}`, false, false, false},
		{"a before callback is not named", CmdBeforeSendMsg, msg, msg, false, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ida, oka := identityOf(t, tt.cmd, tt.a)
			idb, okb := identityOf(t, tt.cmd, tt.b)
			if oka != tt.firstNamed || (oka && okb) != tt.bothNamed {
				t.Fatalf("named: %v and %v; want %v and both %v", oka, okb, tt.firstNamed, tt.bothNamed)
			}
			if tt.bothNamed && (string(ida) == string(idb)) != tt.same {
				t.Errorf("identities %q and %q; want same = %v", ida, idb, tt.same)
			}
		})
	}
}

func identityOf(t *testing.T, cmd, body string) ([]byte, bool) {
	t.Helper()
	ev, err := DecodeCallback(cmd, []byte(body))
	if err != nil {
		t.Fatalf("decode %s: %v", body, err)
	}
	return Identity(ev)
}

func TestAppendIdentityAppendsIdentity(t *testing.T) {
	ev := &AfterNewMemberJoin{Common: Common{CallbackCommand: CmdAfterNewMemberJoin, GroupID: "g", EventTime: 5},
		JoinType: "Apply", Operator: "op", NewMemberList: []Member{{"b"}, {"a"}}}
	id, ok := Identity(ev)
	got, ok2 := AppendIdentity([]byte("prefix"), ev)
	if !ok || !ok2 || string(got) != "prefix"+string(id) {
		t.Errorf("AppendIdentity %q, %v; want %q after the prefix", got, ok2, id)
	}
	if got, ok := AppendIdentity([]byte("prefix"), &BeforeSendMsg{}); ok || got != nil {
		t.Errorf("a before callback: %q, %v", got, ok)
	}
}
