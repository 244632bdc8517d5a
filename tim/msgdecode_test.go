package tim

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// messageBodies are message callbacks the message decoder must read itself
// (and read as encoding/json does).
var messageBodies = []struct {
	name, command, body string
}{
	{"the typical message", CmdBeforeSendMsg, typicalMessage},
	{"a 4 KB message", CmdBeforeSendMsg, largeMessage()},
	{"a message sent, with mentions", CmdAfterSendMsg, `{"CallbackCommand":"Group.CallbackAfterSendMsg","GroupId":"g","Type":"Public","From_Account":"a","Operator_Account":"a","Random":7,"MsgSeq":18446744073709551,"MsgTime":1490686222,"MsgId":"m","OnlineOnlyFlag":0,"MsgBody":[{"MsgType":"TIMTextElem","MsgContent":{"Text":"@b @all hi"}}],"GroupAtInfo":[{"GroupAtAllFlag":0,"GroupAt_Account":"b"},{"GroupAtAllFlag":1}],"EventTime":1670574414123}`},
	{"no command in the body, EventTime as a string", CmdBeforeSendMsg, `{"GroupId":"g","From_Account":"a","Random":1,"EventTime":"1670574414123","MsgBody":[]}`},
	{"EventTime as an empty string", CmdBeforeSendMsg, `{"GroupId":"g","From_Account":"a","EventTime":"","MsgBody":[]}`},
	{"a negative EventTime and MsgTime", CmdAfterSendMsg, `{"GroupId":"g","From_Account":"a","EventTime":-5,"MsgTime":-0,"MsgSeq":0,"Random":0}`},
	{"the SDK's group type name", CmdBeforeSendMsg, `{"GroupId":"g","Type":"Work","From_Account":"a"}`},
	{"an unknown group type", CmdBeforeSendMsg, `{"GroupId":"g","Type":"Forum","From_Account":"a"}`},
	{"a topic", CmdBeforeSendMsg, `{"GroupId":"@TGS#_@TGS#cQVLVHIM62CJ","TopicId":"@TGS#_@TGS#cQVLVHIM62CJ@TOPIC#_TestTopic","From_Account":"a","MsgBody":[{"MsgType":"TIMTextElem","MsgContent":{"Text":"x"}}]}`},
	{"escapes in the text", CmdBeforeSendMsg, `{"GroupId":"g","From_Account":"a","MsgBody":[{"MsgType":"TIMTextElem","MsgContent":{"Text":"line one\nline \"two\"\t\\ \/ \b\f\r \u4e2d\u6587 \ud83d\ude00 \u0000 end"}}]}`},
	{"raw Chinese and an emoji", CmdBeforeSendMsg, `{"GroupId":"群","From_Account":"用户","MsgBody":[{"MsgType":"TIMTextElem","MsgContent":{"Text":"你好 😀"}}]}`},
	{"whitespace everywhere", CmdBeforeSendMsg, "{ \"GroupId\" :\t\"g\" ,\r\n \"From_Account\" : \"a\" , \"MsgBody\" : [ { \"MsgType\" : \"TIMTextElem\" , \"MsgContent\" : { \"Text\" : \"x\" , \"Other\" : [ 1 , { } ] } } ] , \"Random\" : 5 }"},
	{"unknown fields of every kind", CmdBeforeSendMsg, `{"GroupId":"g","From_Account":"a","Extra":{"a":[1,-2.5e+3,0.1,true,false,null,"s\u00e9\n",{}],"b":[]},"msgseq":1,"X":"\ud800","MsgBody":[{"MsgType":"TIMFaceElem","Extra":null,"MsgContent":{"Index":1,"Data":"smile","text2":{"x":[]}}}]}`},
	{"invalid UTF-8 in a field nobody reads", CmdBeforeSendMsg, "{\"GroupId\":\"g\",\"From_Account\":\"a\",\"Junk\":\"\xff\xfe\",\"MsgBody\":[{\"MsgType\":\"TIMImageElem\",\"MsgContent\":{\"UUID\":\"\xff\"}}]}"},
	{"an element without content", CmdBeforeSendMsg, `{"GroupId":"g","From_Account":"a","MsgBody":[{"MsgType":"TIMTextElem"},{"MsgContent":{},"MsgType":"TIMCustomElem"}]}`},
	{"the operator differs from the sender", CmdBeforeSendMsg, `{"Operator_Account":"admin","GroupId":"g","From_Account":"a"}`},
	{"the largest Random", CmdBeforeSendMsg, `{"GroupId":"g","From_Account":"a","Random":4294967295,"OnlineOnlyFlag":-1}`},
}

// unusualBodies are message callbacks the message decoder leaves to
// encoding/json, which accepts some and refuses others.
var unusualBodies = []struct {
	name, command, body string
}{
	{"a field given twice", CmdBeforeSendMsg, `{"GroupId":"g","From_Account":"a","GroupId":"h"}`},
	{"a content field given twice", CmdBeforeSendMsg, `{"GroupId":"g","From_Account":"a","MsgBody":[{"MsgType":"TIMTextElem","MsgContent":{"Text":"a","Text":"b"}}]}`},
	{"a key in another case", CmdBeforeSendMsg, `{"groupid":"g","From_Account":"a"}`},
	{"a content key in another case", CmdBeforeSendMsg, `{"GroupId":"g","From_Account":"a","MsgBody":[{"MsgType":"TIMTextElem","MsgContent":{"TEXT":"x"}}]}`},
	{"a key spelled with an escape", CmdBeforeSendMsg, `{"\u0047roupId":"g","From_Account":"a"}`},
	{"a key with a long s that folds to MsgSeq", CmdAfterSendMsg, `{"GroupId":"g","From_Account":"a","Random":1,"Mſgſeq":5,"EventTime":9}`},
	{"EventTime as a float", CmdBeforeSendMsg, `{"GroupId":"g","From_Account":"a","EventTime":1.670574414123e12}`},
	{"EventTime as a signed string", CmdBeforeSendMsg, `{"GroupId":"g","From_Account":"a","EventTime":"+5"}`},
	{"EventTime as words", CmdBeforeSendMsg, `{"GroupId":"g","From_Account":"a","EventTime":"soon"}`},
	{"EventTime null", CmdBeforeSendMsg, `{"GroupId":"g","From_Account":"a","EventTime":null}`},
	{"Random as a string", CmdBeforeSendMsg, `{"GroupId":"g","From_Account":"a","Random":"5"}`},
	{"a negative Random", CmdBeforeSendMsg, `{"GroupId":"g","From_Account":"a","Random":-1}`},
	{"Random past 32 bits", CmdBeforeSendMsg, `{"GroupId":"g","From_Account":"a","Random":4294967296}`},
	{"Random with a fraction", CmdBeforeSendMsg, `{"GroupId":"g","From_Account":"a","Random":1.0}`},
	{"a number with a leading zero", CmdBeforeSendMsg, `{"GroupId":"g","From_Account":"a","Random":01}`},
	{"MsgSeq of 20 digits", CmdAfterSendMsg, `{"GroupId":"g","From_Account":"a","MsgSeq":18446744073709551615}`},
	{"invalid UTF-8 in the text", CmdBeforeSendMsg, "{\"GroupId\":\"g\",\"From_Account\":\"a\",\"MsgBody\":[{\"MsgType\":\"TIMTextElem\",\"MsgContent\":{\"Text\":\"a\xffb\"}}]}"},
	{"a lone surrogate in the text", CmdBeforeSendMsg, `{"GroupId":"g","From_Account":"a","MsgBody":[{"MsgType":"TIMTextElem","MsgContent":{"Text":"a\ud800b"}}]}`},
	{"a text that is a number", CmdBeforeSendMsg, `{"GroupId":"g","From_Account":"a","MsgBody":[{"MsgType":"TIMTextElem","MsgContent":{"Text":5,"Data":"kept"}}]}`},
	{"a null text", CmdBeforeSendMsg, `{"GroupId":"g","From_Account":"a","MsgBody":[{"MsgType":"TIMTextElem","MsgContent":{"Text":null}}]}`},
	{"a null content", CmdBeforeSendMsg, `{"GroupId":"g","From_Account":"a","MsgBody":[{"MsgType":"TIMTextElem","MsgContent":null}]}`},
	{"a null body", CmdBeforeSendMsg, `{"GroupId":"g","From_Account":"a","MsgBody":null}`},
	{"a body that is a string", CmdBeforeSendMsg, `{"GroupId":"g","From_Account":"a","MsgBody":"x"}`},
	{"a null element", CmdBeforeSendMsg, `{"GroupId":"g","From_Account":"a","MsgBody":[null]}`},
	{"an element without a type", CmdBeforeSendMsg, `{"GroupId":"g","From_Account":"a","MsgBody":[{"MsgContent":{}}]}`},
	{"no sender", CmdBeforeSendMsg, `{"GroupId":"g","MsgBody":[]}`},
	{"no group", CmdAfterSendMsg, `{"From_Account":"a"}`},
	{"another command in the body", CmdBeforeSendMsg, `{"CallbackCommand":"Group.CallbackAfterSendMsg","GroupId":"g","From_Account":"a"}`},
	{"a trailing comma", CmdBeforeSendMsg, `{"GroupId":"g","From_Account":"a",}`},
	{"a second value after the object", CmdBeforeSendMsg, `{"GroupId":"g","From_Account":"a"} {}`},
	{"a cut body", CmdBeforeSendMsg, `{"GroupId":"g","From_Account":"a","MsgBody":[{"MsgType":"TIMTextElem","MsgContent":{"Text":"x"`},
	{"a control character in a string", CmdBeforeSendMsg, "{\"GroupId\":\"g\",\"From_Account\":\"a\",\"X\":\"a\tb\"}"},
	{"a bad escape in a skipped string", CmdBeforeSendMsg, `{"GroupId":"g","From_Account":"a","X":"\x41"}`},
	{"a bare word", CmdBeforeSendMsg, `{"GroupId":"g","From_Account":"a","X":nul}`},
	{"nesting deeper than the decoder follows", CmdBeforeSendMsg, `{"GroupId":"g","From_Account":"a","X":` + strings.Repeat("[", 40) + strings.Repeat("]", 40) + `}`},
	{"a mention flag as a bool", CmdAfterSendMsg, `{"GroupId":"g","From_Account":"a","GroupAtInfo":[{"GroupAtAllFlag":true}]}`},
}

func commandBodies(t testing.TB) (out []struct{ command, body string }) {
	for _, b := range messageBodies {
		out = append(out, struct{ command, body string }{b.command, b.body})
	}
	for _, b := range unusualBodies {
		out = append(out, struct{ command, body string }{b.command, b.body})
	}
	for _, name := range []string{"BeforeSendMsg", "BeforeSendMsgMixed", "AfterSendMsg"} {
		body, err := os.ReadFile(filepath.Join("testdata", "callbacks", name+".json"))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, struct{ command, body string }{"Group.Callback" + strings.TrimSuffix(name, "Mixed"), string(body)})
	}
	return out
}

func TestMessageDecoderReadsCommonBodiesAsEncodingJSONDoes(t *testing.T) {
	bodies := messageBodies
	for _, name := range []string{"BeforeSendMsg", "BeforeSendMsgMixed", "AfterSendMsg"} {
		body, err := os.ReadFile(filepath.Join("testdata", "callbacks", name+".json"))
		if err != nil {
			t.Fatal(err)
		}
		bodies = append(bodies, struct{ name, command, body string }{"testdata " + name, "Group.Callback" + strings.TrimSuffix(name, "Mixed"), string(body)})
	}
	for _, tt := range bodies {
		t.Run(tt.name, func(t *testing.T) {
			body := bytes.TrimSpace([]byte(tt.body))
			want, err := decodeStd(tt.command, body)
			if err != nil {
				t.Fatalf("encoding/json refuses the body: %v", err)
			}
			got, ok := decodeMessage(tt.command, body)
			if !ok {
				t.Fatalf("the message decoder left the body to encoding/json")
			}
			sameEvent(t, got, want)
		})
	}
}

func TestMessageDecoderLeavesUnusualBodiesToEncodingJSON(t *testing.T) {
	for _, tt := range unusualBodies {
		t.Run(tt.name, func(t *testing.T) {
			body := []byte(tt.body)
			if ev, ok := decodeMessage(tt.command, body); ok {
				t.Fatalf("the message decoder read the body itself: %+v", ev)
			}
			want, wantErr := decodeStd(tt.command, body)
			got, err := DecodeCallback(tt.command, body)
			sameResult(t, got, err, want, wantErr)
		})
	}
}

// TestDecodeCallbackFoldsKeysAsEncodingJSONDoes shows why a key in another
// spelling is left to encoding/json: it matches the field.
func TestDecodeCallbackFoldsKeysAsEncodingJSONDoes(t *testing.T) {
	ev, err := DecodeCallback(CmdAfterSendMsg, []byte(`{"groupid":"g","From_Account":"a","Mſgſeq":5}`))
	if err != nil {
		t.Fatal(err)
	}
	if e := ev.(*AfterSendMsg); e.GroupID != "g" || e.MsgSeq != 5 {
		t.Errorf("GroupId %q, MsgSeq %d; want g and 5", e.GroupID, e.MsgSeq)
	}
}

func TestMessageDecoderKeepsNothingOfTheBody(t *testing.T) {
	body := []byte(largeMessage())
	want, err := decodeStd(CmdBeforeSendMsg, body)
	if err != nil {
		t.Fatal(err)
	}
	got, ok := decodeMessage(CmdBeforeSendMsg, body)
	if !ok {
		t.Fatal("the message decoder left the body to encoding/json")
	}
	for i := range body {
		body[i] = 'x'
	}
	sameEvent(t, got, want)
}

// FuzzDecodeMessage holds the message decoder to encoding/json: whatever
// the body, DecodeCallback gives what encoding/json gives (the same event,
// or the same refusal), and a body the message decoder reads itself is one
// encoding/json accepts, decoded to the same event, identity included.
func FuzzDecodeMessage(f *testing.F) {
	for _, b := range commandBodies(f) {
		f.Add(b.command == CmdAfterSendMsg, []byte(b.body))
	}
	f.Fuzz(func(t *testing.T, after bool, body []byte) {
		command := CmdBeforeSendMsg
		if after {
			command = CmdAfterSendMsg
		}
		trimmed := bytes.TrimSpace(body)
		if len(trimmed) == 0 || trimmed[0] != '{' {
			return
		}
		want, wantErr := decodeStd(command, bytes.Clone(trimmed))
		fast, ok := decodeMessage(command, bytes.Clone(trimmed))
		if ok {
			if wantErr != nil {
				t.Fatalf("the message decoder accepted a body encoding/json refuses (%v): %q", wantErr, body)
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

func sameResult(t *testing.T, got Event, err error, want Event, wantErr error) {
	t.Helper()
	if (err == nil) != (wantErr == nil) {
		t.Fatalf("error %v, encoding/json's %v", err, wantErr)
	}
	if err != nil {
		if err.Error() != wantErr.Error() {
			t.Fatalf("error %q, encoding/json's %q", err, wantErr)
		}
		return
	}
	sameEvent(t, got, want)
}

// sameEvent compares two decoded events field by field, unexported ones
// (the raw contents) included, and what is built from them: the identity
// and the texts.
func sameEvent(t *testing.T, got, want Event) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("decoded\n %#v\nencoding/json decoded\n %#v", got, want)
	}
	gotID, gotOK := Identity(got)
	wantID, wantOK := Identity(want)
	if gotOK != wantOK || !bytes.Equal(gotID, wantID) {
		t.Fatalf("identity %q (%v), encoding/json's %q (%v)", gotID, gotOK, wantID, wantOK)
	}
}
