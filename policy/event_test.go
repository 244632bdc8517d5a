package policy

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/timguard/timguard/tim"
)

func TestAMessageEventReadsItsTextsAndTypesAsBefore(t *testing.T) {
	text := func(s string) tim.MsgElem { return tim.MsgElem{MsgType: tim.ElemText, MsgContent: tim.TextContent(s)} }
	other := func(typ string) tim.MsgElem { return tim.MsgElem{MsgType: typ, MsgContent: tim.MsgContent{Data: "x"}} }
	bodies := [][]tim.MsgElem{
		nil,
		{},
		{text("hello")},
		{text("")},
		{other(tim.ElemImage)},
		{text("a"), text("b")},
		{text(""), text("b")},
		{text("a"), other(tim.ElemFace), text(""), text("c")},
		{other(tim.ElemCustom), text("only")},
		{other(tim.ElemCustom), other(tim.ElemFile), other(tim.ElemSound)},
	}
	for _, body := range bodies {
		cb := &tim.BeforeSendMsg{Common: tim.Common{CallbackCommand: tim.CmdBeforeSendMsg, GroupID: "g"}, From: "u", MsgBody: body}
		ev := NewEvent(cb, []byte("{}"), time.Unix(1, 0))
		wantTypes := make([]string, len(body))
		for i, el := range body {
			wantTypes[i] = el.MsgType
		}
		if want := strings.Join(tim.Texts(body), "\n"); ev.Base.Text != want {
			t.Errorf("body %v: text %q; want %q", body, ev.Base.Text, want)
		}
		if !slices.Equal(ev.Base.Types, wantTypes) || len(ev.Base.Types) != cap(ev.Base.Types) {
			t.Errorf("body %v: types %q (cap %d); want %q", body, ev.Base.Types, cap(ev.Base.Types), wantTypes)
		}
		if !slices.Equal(ev.Subjects, []string{"u"}) || cap(ev.Subjects) != 1 || ev.Base.OperatorID != "u" {
			t.Errorf("body %v: subjects %q, operator %q", body, ev.Subjects, ev.Base.OperatorID)
		}
	}
}

// An event's ID hashes the identity of an "after" callback as it did when
// the identity was built on the heap.
func TestAnAfterEventIsNamedByItsIdentity(t *testing.T) {
	cb := &tim.AfterSendMsg{
		BeforeSendMsg: tim.BeforeSendMsg{Common: tim.Common{CallbackCommand: tim.CmdAfterSendMsg, GroupID: "g", EventTime: 1670574414123},
			From: "u", Random: 7, MsgID: strings.Repeat("m", 300)},
		MsgSeq: 9,
	}
	id, ok := tim.Identity(cb)
	if !ok {
		t.Fatal("no identity")
	}
	if got, want := NewEvent(cb, []byte("{}"), time.Unix(1, 0)).ID, EventID(tim.CmdAfterSendMsg, id); got != want {
		t.Errorf("ID %s; want %s", got, want)
	}
}
