package tim

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// FuzzDecodeCallback feeds arbitrary bodies and commands to DecodeCallback.
// It must never panic; what it accepts must carry the command and, for
// group callbacks rules evaluate, a group; and a reply built from a decoded
// message must encode.
func FuzzDecodeCallback(f *testing.F) {
	files, err := filepath.Glob(filepath.Join("testdata", "callbacks", "*.json"))
	if err != nil {
		f.Fatal(err)
	}
	for _, file := range files {
		body, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		var head struct{ CallbackCommand string }
		_ = json.Unmarshal(body, &head)
		f.Add(head.CallbackCommand, body)
		f.Add("", body)
	}
	f.Add(CmdBeforeSendMsg, []byte(`{"GroupId":"g","From_Account":"a","MsgBody":[{"MsgType":"TIMTextElem","MsgContent":{"Text":1}}]}`))
	f.Add(CmdBeforeSendMsg, []byte(`{"GroupId":"g","From_Account":"a","EventTime":"12.5e3"}`))
	f.Add(CmdAfterNewMemberJoin, []byte(`{"GroupId":"g","NewMemberList":null}`))
	f.Add("", []byte(`{}`))
	f.Add("Group.Unknown", []byte(`{"GroupId":[]}`))
	f.Add(CmdAfterSendMsg, []byte(`{"GroupId":"g","From_Account":"a","Random":1,"MsgSeq":9,"EventTime":"17","MsgBody":[]}`))
	f.Add(CmdAfterMemberExit, []byte(`{"GroupId":"g","ExitType":"Kicked","EventTime":5,"ExitMemberList":[{"Member_Account":"b"},{"Member_Account":"a|1:x"}]}`))
	f.Fuzz(func(t *testing.T, command string, body []byte) {
		ev, err := DecodeCallback(command, body)
		if err != nil {
			var de *DecodeError
			if !errors.As(err, &de) || de.Error() == "" {
				t.Fatalf("error %v is not a *DecodeError with a reason", err)
			}
			return
		}
		h := ev.Header()
		if h.CallbackCommand == "" {
			t.Fatalf("accepted a callback without a command: %q", body)
		}
		if command != "" && h.CallbackCommand != command {
			t.Fatalf("command %q became %q", command, h.CallbackCommand)
		}
		switch e := ev.(type) {
		case *BeforeSendMsg:
			if e.GroupID == "" || e.From == "" {
				t.Fatalf("accepted a message without group or sender: %q", body)
			}
			r := Reply{ActionStatus: "OK", MsgBody: e.MsgBody}
			if _, err := r.Encode(); err != nil {
				t.Fatalf("a decoded message body does not encode back: %v", err)
			}
		case *BeforeApplyJoinGroup:
			if e.GroupID == "" || e.Requestor == "" {
				t.Fatalf("accepted a join request without group or applicant: %q", body)
			}
		}
		// An event written out again in other bytes keeps its identity.
		id, ok := Identity(ev)
		if !ok {
			return
		}
		again, err := json.Marshal(ev)
		if err != nil {
			t.Fatalf("a decoded event does not encode: %v", err)
		}
		ev2, err := DecodeCallback(h.CallbackCommand, again)
		if err != nil {
			t.Fatalf("a decoded event, encoded again, does not decode: %v\n%s", err, again)
		}
		if id2, ok2 := Identity(ev2); !ok2 || string(id2) != string(id) {
			t.Fatalf("identity %q became %q (%v) when the event was written again as %s", id, id2, ok2, again)
		}
	})
}

// FuzzVerifySign feeds arbitrary RequestTime and Sign values to the
// signature check. It must never panic, must accept exactly the signature
// the token makes, and must refuse everything else.
func FuzzVerifySign(f *testing.F) {
	f.Add("1669872112", "17773bc39a671d7b9aa835458704d2a6db81360a5940292b587d6d760d484061")
	f.Add("1669872112", "17773BC39A671D7B9AA835458704D2A6DB81360A5940292B587D6D760D484061")
	f.Add("", "")
	f.Add("-1", "zz")
	f.Add("99999999999999999999", "00")
	f.Add("1669872112 ", "17773bc39a671d7b9aa835458704d2a6db81360a5940292b587d6d760d48406")
	now := time.Unix(1669872112, 0)
	v := SignVerifier{Tokens: []string{"xxxxyyyy"}, MaxSkew: time.Minute}
	f.Fuzz(func(t *testing.T, requestTime, sign string) {
		err := v.Verify(requestTime, sign, now)
		if err == nil {
			want := Sign("xxxxyyyy", requestTime)
			got, perr := ParseSign(sign)
			wantSum, _ := ParseSign(want)
			if perr != nil || got != wantSum {
				t.Fatalf("accepted sign %q for RequestTime %q; the token makes %q", sign, requestTime, want)
			}
			at, terr := ParseRequestTime(requestTime)
			if terr != nil || at.Sub(now) > time.Minute || now.Sub(at) > time.Minute {
				t.Fatalf("accepted RequestTime %q outside the skew window", requestTime)
			}
			return
		}
		var ae *AuthError
		if !errors.As(err, &ae) || ae.Code == "" {
			t.Fatalf("error %v is not an *AuthError with a code", err)
		}
	})
}

func TestSignMatchesTencentsTestVector(t *testing.T) {
	const want = "17773bc39a671d7b9aa835458704d2a6db81360a5940292b587d6d760d484061"
	if got := Sign("xxxxyyyy", "1669872112"); got != want {
		t.Fatalf("Sign = %s, want %s", got, want)
	}
}

func TestVerifySign(t *testing.T) {
	now := time.Unix(1669872112, 0)
	rt := func(d time.Duration) string { return strconv.FormatInt(now.Add(d).Unix(), 10) }
	v := SignVerifier{Tokens: []string{"new-token", "old-token"}, MaxSkew: time.Minute}
	tests := []struct {
		name        string
		requestTime string
		sign        string
		want        error
	}{
		{"the current token signs", rt(0), Sign("new-token", rt(0)), nil},
		{"the previous token still signs during a rotation", rt(0), Sign("old-token", rt(0)), nil},
		{"upper-case hex is accepted", rt(0), upper(Sign("new-token", rt(0))), nil},
		{"59 seconds late is inside the window", rt(-59 * time.Second), Sign("new-token", rt(-59*time.Second)), nil},
		{"61 seconds late is stale", rt(-61 * time.Second), Sign("new-token", rt(-61*time.Second)), ErrStaleRequestTime},
		{"61 seconds early is stale too", rt(61 * time.Second), Sign("new-token", rt(61*time.Second)), ErrStaleRequestTime},
		{"another token does not sign", rt(0), Sign("guess", rt(0)), ErrBadSign},
		{"a sign for another time does not match", rt(0), Sign("new-token", rt(-time.Second)), ErrBadSign},
		{"a truncated sign is malformed", rt(0), Sign("new-token", rt(0))[:63], ErrMalformedSign},
		{"a missing sign", rt(0), "", ErrMissingSign},
		{"a missing RequestTime", "", Sign("new-token", ""), ErrMissingSign},
		{"a RequestTime that is not a number", "now", Sign("new-token", "now"), ErrMalformedTime},
		{"a negative RequestTime", "-5", Sign("new-token", "-5"), ErrMalformedTime},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := v.Verify(tt.requestTime, tt.sign, now); !errors.Is(err, tt.want) {
				t.Errorf("Verify = %v, want %v", err, tt.want)
			}
		})
	}
	if err := (SignVerifier{}).Verify(rt(0), Sign("x", rt(0)), now); err == nil {
		t.Errorf("a verifier without tokens accepted a callback")
	}
}

func upper(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'a' && c <= 'f' {
			b[i] = c - 'a' + 'A'
		}
	}
	return string(b)
}

func TestEventTimeAcceptsNumberAndString(t *testing.T) {
	tests := []struct {
		in      string
		want    EventTime
		wantErr bool
	}{
		{`1670574414123`, 1670574414123, false},
		{`"1670574414123"`, 1670574414123, false},
		{`null`, 0, false},
		{`""`, 0, false},
		{`1.670574414123e12`, 1670574414123, false},
		{`"soon"`, 0, true},
		{`true`, 0, true},
		{`-5e100`, 0, true},
	}
	for _, tt := range tests {
		var got EventTime
		err := json.Unmarshal([]byte(tt.in), &got)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("EventTime from %s = %d, %v; want %d, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestMsgContentPassesUnknownFieldsThrough(t *testing.T) {
	in := `[{"MsgType":"TIMImageElem","MsgContent":{"UUID":"x","ImageFormat":1,"ImageInfoArray":[{"Type":1}]}},{"MsgType":"TIMTextElem","MsgContent":{"Text":"hi"}}]`
	var body []MsgElem
	if err := json.Unmarshal([]byte(in), &body); err != nil {
		t.Fatal(err)
	}
	if body[1].MsgContent.Text != "hi" {
		t.Errorf("text = %q", body[1].MsgContent.Text)
	}
	body = append(body, MsgElem{MsgType: ElemText, MsgContent: TextContent("new")})
	out, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	want := in[:len(in)-1] + `,{"MsgType":"TIMTextElem","MsgContent":{"Text":"new"}}]`
	if string(out) != want {
		t.Errorf("round trip:\n got %s\nwant %s", out, want)
	}
}

func TestDecodeCallbackRefusals(t *testing.T) {
	tests := []struct {
		name, command, body, reason string
	}{
		{"a join request without an applicant", CmdBeforeApplyJoinGroup, `{"GroupId":"g"}`, "Requestor_Account is missing"},
		{"an invite without invitees", CmdBeforeInviteJoinGroup, `{"GroupId":"g","Operator_Account":"o"}`, "DestinationMembers is empty"},
		{"a message element without a type", CmdBeforeSendMsg, `{"GroupId":"g","From_Account":"a","MsgBody":[{"MsgContent":{}}]}`, "MsgBody[0].MsgType is missing"},
		{"no command anywhere", "", `{"GroupId":"g"}`, "CallbackCommand is missing"},
		{"a string where a list belongs", CmdAfterMemberExit, `{"GroupId":"g","ExitMemberList":"x"}`, "ExitMemberList"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := DecodeCallback(tt.command, []byte(tt.body))
			if err == nil || !strings.Contains(err.Error(), tt.reason) {
				t.Errorf("error %v, want one mentioning %q", err, tt.reason)
			}
		})
	}
}

func TestMsgContentReadsStringsAndIgnoresOtherTypes(t *testing.T) {
	tests := []struct {
		in                    string
		text, data, desc, ext string
	}{
		{`{"Text":"hi"}`, "hi", "", "", ""},
		{`{"Data":"d","Desc":"x","Ext":"e"}`, "", "d", "x", "e"},
		{`{"Index":1,"Data":"smile"}`, "", "smile", "", ""},
		{`{"Text":5,"Data":"kept"}`, "", "kept", "", ""},
		{`{"Data":{"a":1},"Desc":"kept","Ext":[1]}`, "", "", "kept", ""},
		{`{"Text":null}`, "", "", "", ""},
	}
	for _, tt := range tests {
		var c MsgContent
		if err := json.Unmarshal([]byte(tt.in), &c); err != nil {
			t.Errorf("%s: %v", tt.in, err)
			continue
		}
		if c.Text != tt.text || c.Data != tt.data || c.Desc != tt.desc || c.Ext != tt.ext {
			t.Errorf("%s: got %q %q %q %q", tt.in, c.Text, c.Data, c.Desc, c.Ext)
		}
		if out, _ := json.Marshal(c); string(out) != tt.in {
			t.Errorf("%s: passes through as %s", tt.in, out)
		}
	}
}
