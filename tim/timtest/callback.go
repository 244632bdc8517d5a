package timtest

import (
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/timguard/timguard/tim"
)

// SignedURL builds the URL the IM server posts a callback to: base and path
// followed by SdkAppid, CallbackCommand, contenttype, ClientIP and
// OptPlatform, and, when token is not empty, RequestTime (now in Unix
// seconds) and Sign (tim.Sign of token and RequestTime), in that order.
// base may be empty to get a path for httptest.NewRequest.
func SignedURL(base, path string, sdkAppID uint64, command, token string, now time.Time) string {
	var b strings.Builder
	b.WriteString(strings.TrimRight(base, "/"))
	if !strings.HasPrefix(path, "/") {
		b.WriteString("/")
	}
	b.WriteString(path)
	b.WriteString("?SdkAppid=")
	b.WriteString(strconv.FormatUint(sdkAppID, 10))
	b.WriteString("&CallbackCommand=")
	b.WriteString(url.QueryEscape(command))
	b.WriteString("&contenttype=json&ClientIP=127.0.0.1&OptPlatform=RESTAPI")
	if token != "" {
		rt := strconv.FormatInt(now.Unix(), 10)
		b.WriteString("&RequestTime=")
		b.WriteString(rt)
		b.WriteString("&Sign=")
		b.WriteString(tim.Sign(token, rt))
	}
	return b.String()
}
