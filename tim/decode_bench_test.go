package tim

import (
	"strconv"
	"strings"
	"testing"
)

// typicalMessage is a BeforeSendMsg of about 300 bytes, shaped like the IM
// server's and the load generator's: one text element, no escapes.
const typicalMessage = `{"CallbackCommand":"Group.CallbackBeforeSendMsg","GroupId":"@TGS#2J4SZEAEL","Type":"Public","From_Account":"user_01234","Operator_Account":"user_01234","Random":2873455,"MsgId":"144115233406643804-1670574414-2873455","OnlineOnlyFlag":0,"MsgBody":[{"MsgType":"TIMTextElem","MsgContent":{"Text":"see you at the meeting tomorrow"}}],"EventTime":1670574414123}`

// largeMessage returns a BeforeSendMsg of about 4 KB: a long multi-line
// text in Chinese and English (newlines escaped as \n), an image element
// with its three sizes, a custom element and mentions.
func largeMessage() string {
	var text strings.Builder
	for i := 0; text.Len() < 2800; i++ {
		text.WriteString("第" + strconv.Itoa(i) + "行：今天的会议改到下午三点，请大家准时参加 meeting moved to 3pm\\n")
	}
	img := `{"MsgType":"TIMImageElem","MsgContent":{"UUID":"1853095_D61040894AC3DE44CDFFFB3EC7EB720F","ImageFormat":1,"ImageInfoArray":[` +
		`{"Type":1,"Size":1853095,"Width":2448,"Height":3264,"URL":"http://example.com/3200490432214177468_144115198371610486_D61040894AC3DE44CDFFFB3EC7EB720F/0"},` +
		`{"Type":2,"Size":2781,"Width":720,"Height":960,"URL":"http://example.com/3200490432214177468_144115198371610486_D61040894AC3DE44CDFFFB3EC7EB720F/720"},` +
		`{"Type":3,"Size":3279,"Width":150,"Height":200,"URL":"http://example.com/3200490432214177468_144115198371610486_D61040894AC3DE44CDFFFB3EC7EB720F/198"}]}}`
	custom := `{"MsgType":"TIMCustomElem","MsgContent":{"Data":"{\"kind\":\"vote\",\"options\":[\"a\",\"b\"]}","Desc":"a vote","Ext":"https://example.com/vote/42","Sound":"dingdong.aiff"}}`
	return `{"CallbackCommand":"Group.CallbackBeforeSendMsg","GroupId":"@TGS#2J4SZEAEL","Type":"Public","From_Account":"user_01234","Operator_Account":"user_01234","Random":2873455,"MsgId":"144115233406643804-1670574414-2873455","OnlineOnlyFlag":0,` +
		`"MsgBody":[{"MsgType":"TIMTextElem","MsgContent":{"Text":"` + text.String() + `"}},` + img + `,` + custom + `],` +
		`"CloudCustomData":"{\"level\":3}","GroupAtInfo":[{"GroupAtAllFlag":0,"GroupAt_Account":"leckie"},{"GroupAtAllFlag":1}],"EventTime":"1670574414123"}`
}

func BenchmarkDecodeCallback(b *testing.B) {
	bodies := []struct {
		name string
		body []byte
	}{
		{"typical", []byte(typicalMessage)},
		{"4KB", []byte(largeMessage())},
	}
	for _, bb := range bodies {
		// encoding-json is the decoder used for every body before the
		// message decoder: the figure to compare DecodeCallback with.
		b.Run(bb.name+"/encoding-json", func(b *testing.B) {
			b.SetBytes(int64(len(bb.body)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := decodeStd(CmdBeforeSendMsg, bb.body); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(bb.name+"/DecodeCallback", func(b *testing.B) {
			b.SetBytes(int64(len(bb.body)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := DecodeCallback(CmdBeforeSendMsg, bb.body); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// typicalJoin is an AfterNewMemberJoin as the IM server sends it.
const typicalJoin = `{"CallbackCommand":"Group.CallbackAfterNewMemberJoin","GroupId":"@TGS#2J4SZEAEL","Type":"Public","JoinType":"Apply","Operator_Account":"user_01234","NewMemberList":[{"Member_Account":"user_01234"}],"EventTime":1670574414123}`

func BenchmarkDecodeMemberEvent(b *testing.B) {
	body := []byte(typicalJoin)
	b.Run("encoding-json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := decodeStd(CmdAfterNewMemberJoin, body); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("DecodeCallback", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := DecodeCallback(CmdAfterNewMemberJoin, body); err != nil {
				b.Fatal(err)
			}
		}
	})
}
