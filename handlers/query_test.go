package handlers

import (
	"net/url"
	"strings"
	"testing"
)

// stdCallbackQuery is what the callback read before parseCallbackQuery.
func stdCallbackQuery(raw string) callbackQuery {
	v, _ := url.ParseQuery(raw)
	return callbackQuery{
		command: v.Get("CallbackCommand"), appID: v.Get("SdkAppid"), requestTime: v.Get("RequestTime"),
		sign: v.Get("Sign"), platform: v.Get("OptPlatform"),
	}
}

var querySeeds = []string{
	"",
	"SdkAppid=1400000000&CallbackCommand=Group.CallbackBeforeSendMsg&contenttype=json&ClientIP=127.0.0.1&OptPlatform=RESTAPI&RequestTime=1670574414&Sign=0f3d",
	"CallbackCommand=Group.CallbackAfterSendMsg&CallbackCommand=Other",
	"CallbackCommand=%zz&CallbackCommand=Second",
	"CallbackCommand=a;b&CallbackCommand=c",
	"Callback%43ommand=escaped+key&SdkAppid=%31%34",
	"Sign&Sign=late",
	"Sign=&Sign=late",
	"OptPlatform=iOS+13%20x&&&",
	"=x&&=&RequestTime=12%",
	"SdkAppid=1;2&SdkAppid=3",
	"CallbackCommand=%E4%BD%A0%e5%a5%bd",
	"Call+backCommand=x&Callback+Command=y",
	"RequestTime=1%2",
	"sign=lower&SIGN=upper&Sign=right",
	"CallbackCommand=a=b=c",
	strings.Repeat("x=1&", 70) + "Sign=past-the-fast-limit",
	strings.Repeat("x=1&", 63) + "Sign=at-the-fast-limit",
}

func TestParseCallbackQueryReadsAsURLParseQuery(t *testing.T) {
	for _, raw := range querySeeds {
		if got, want := parseCallbackQuery(raw), stdCallbackQuery(raw); got != want {
			t.Errorf("query %q:\n got %+v\nwant %+v", raw, got, want)
		}
	}
}

func FuzzParseCallbackQuery(f *testing.F) {
	for _, s := range querySeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		if got, want := parseCallbackQuery(raw), stdCallbackQuery(raw); got != want {
			t.Errorf("query %q:\n got %+v\nwant %+v", raw, got, want)
		}
	})
}
