package handlers

import (
	"net/url"
	"strings"
	"sync"
)

// callbackQuery holds the query parameters a callback is answered by.
type callbackQuery struct {
	command, appID, requestTime, sign, platform string
}

// parseCallbackQuery reads the callback's parameters from a raw query as
// url.ParseQuery followed by Values.Get does (the first valid value of
// each), without building the map of every parameter: the IM server sends
// about eight and the callback reads five.
//
// Pairs are split at '&'; a pair holding ';' is skipped, as is one whose
// key or value is not valid percent-encoding; '+' reads as a space. A
// query of more parameters than fastQueryMax (or than the limit of a
// GODEBUG urlmaxqueryparams lower than that) goes to url.ParseQuery, which
// applies its limit.
func parseCallbackQuery(raw string) callbackQuery {
	var q callbackQuery
	if strings.Count(raw, "&") >= fastQueryMax || !fastQueryAllowed() {
		v, _ := url.ParseQuery(raw)
		return callbackQuery{
			command: v.Get("CallbackCommand"), appID: v.Get("SdkAppid"), requestTime: v.Get("RequestTime"),
			sign: v.Get("Sign"), platform: v.Get("OptPlatform"),
		}
	}
	var seen uint8
	for raw != "" {
		var pair string
		pair, raw, _ = strings.Cut(raw, "&")
		if pair == "" || strings.IndexByte(pair, ';') >= 0 {
			continue
		}
		key, value, _ := strings.Cut(pair, "=")
		if needsUnescape(key) {
			k, err := url.QueryUnescape(key)
			if err != nil {
				continue
			}
			key = k
		}
		var dst *string
		var bit uint8
		switch key {
		case "CallbackCommand":
			dst, bit = &q.command, 1
		case "SdkAppid":
			dst, bit = &q.appID, 2
		case "RequestTime":
			dst, bit = &q.requestTime, 4
		case "Sign":
			dst, bit = &q.sign, 8
		case "OptPlatform":
			dst, bit = &q.platform, 16
		default:
			continue
		}
		if seen&bit != 0 {
			continue
		}
		if needsUnescape(value) {
			v, err := url.QueryUnescape(value)
			if err != nil {
				// url.ParseQuery drops the pair: a later one may
				// still give the parameter its value.
				continue
			}
			value = v
		}
		*dst = value
		seen |= bit
	}
	return q
}

// needsUnescape reports whether s has a byte url.QueryUnescape changes (or
// refuses); without one it returns s itself.
func needsUnescape(s string) bool {
	return strings.ContainsAny(s, "%+")
}

// fastQueryMax bounds the parameters parseCallbackQuery reads itself. It is
// far below url.ParseQuery's default limit (10,000), and
// fastQueryAllowed checks once that the limit in force is not lower.
const fastQueryMax = 64

// fastQueryAllowed reports whether url.ParseQuery accepts a query of
// fastQueryMax parameters: it does unless GODEBUG urlmaxqueryparams sets a
// lower limit, and then every query goes to it.
var fastQueryAllowed = sync.OnceValue(func() bool {
	_, err := url.ParseQuery(strings.Repeat("a&", fastQueryMax-1) + "a")
	return err == nil
})
