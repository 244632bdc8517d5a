package tim_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"

	"github.com/timguard/timguard/tim"
)

func apiErr(code int) error {
	return &tim.APIError{Service: tim.ServiceGroup, Command: tim.CommandForbidSendMsg, Code: code, Info: "info", HTTPStatus: 200}
}

func httpErr(status int) error {
	return &tim.APIError{Service: tim.ServiceGroup, Command: tim.CommandForbidSendMsg, HTTPStatus: status, Info: "status"}
}

func transportErr(op tim.Op, err error, callerDone bool) error {
	return &tim.TransportError{Service: tim.ServiceGroup, Command: tim.CommandForbidSendMsg, Op: op, Err: err, CallerDone: callerDone}
}

func TestClassify(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want tim.Class
	}{
		{"no error is no error", nil, tim.NoError},
		{"an internal error (10002) is retryable", apiErr(10002), tim.Retryable},
		{"a service timeout (60008) is retryable", apiErr(60008), tim.Retryable},
		{"an expired UserSig (70001) is retryable because the client regenerates it", apiErr(70001), tim.Retryable},
		{"the REST rate limit (60007) is rate limited", apiErr(60007), tim.RateLimited},
		{"the app rate limit (60011) is rate limited", apiErr(60011), tim.RateLimited},
		{"too frequent (60018) is rate limited", apiErr(60018), tim.RateLimited},
		{"too frequent (60019) is rate limited", apiErr(60019), tim.RateLimited},
		{"the operation frequency limit (10006) is rate limited", apiErr(10006), tim.RateLimited},
		{"the message rate limit (10023) is rate limited", apiErr(10023), tim.RateLimited},
		{"a bad command (10003) is permanent", apiErr(10003), tim.Permanent},
		{"a bad parameter (10004) is permanent", apiErr(10004), tim.Permanent},
		{"no permission (10007) is permanent", apiErr(10007), tim.Permanent},
		{"a dismissed group (10010) is permanent", apiErr(10010), tim.Permanent},
		{"a full group (10014) is permanent", apiErr(10014), tim.Permanent},
		{"a bad group id (10015) is permanent", apiErr(10015), tim.Permanent},
		{"an unknown account (10019) is permanent", apiErr(10019), tim.Permanent},
		{"an HTTP parse error (60002) is permanent", apiErr(60002), tim.Permanent},
		{"a JSON parse error (60003) is permanent", apiErr(60003), tim.Permanent},
		{"a bad account (60004) is permanent", apiErr(60004), tim.Permanent},
		{"a bad signature (60005) is permanent", apiErr(60005), tim.Permanent},
		{"a bad SDKAppID (60006) is permanent", apiErr(60006), tim.Permanent},
		{"a non-admin identifier (60010) is permanent", apiErr(60010), tim.Permanent},
		{"an unparsable UserSig (70003) is permanent", apiErr(70003), tim.Permanent},
		{"a UserSig signed with the wrong key (70009) is permanent", apiErr(70009), tim.Permanent},
		{"a UserSig for another identifier (70013) is permanent", apiErr(70013), tim.Permanent},
		{"a UserSig for another app (70014) is permanent", apiErr(70014), tim.Permanent},
		{"an unknown code is permanent", apiErr(12345), tim.Permanent},
		{"HTTP 500 without an envelope is retryable", httpErr(500), tim.Retryable},
		{"HTTP 502 without an envelope is retryable", httpErr(502), tim.Retryable},
		{"HTTP 429 without an envelope is rate limited", httpErr(429), tim.RateLimited},
		{"HTTP 404 without an envelope is permanent", httpErr(404), tim.Permanent},
		{"a connection error is retryable", transportErr(tim.OpSend, &net.OpError{Op: "dial", Err: errors.New("connection refused")}, false), tim.Retryable},
		{"the per-call timeout is retryable", transportErr(tim.OpSend, context.DeadlineExceeded, false), tim.Retryable},
		{"a body cut short is retryable", transportErr(tim.OpRead, errors.New("unexpected EOF"), false), tim.Retryable},
		{"an answer that does not decode is retryable", transportErr(tim.OpDecode, errors.New("invalid character"), false), tim.Retryable},
		{"an answer over the size bound is permanent", transportErr(tim.OpRead, fmt.Errorf("%w: big", tim.ErrResponseTooLarge), false), tim.Permanent},
		{"a refusal by the client's limiter is rate limited", transportErr(tim.OpWait, errors.New("would exceed deadline"), false), tim.RateLimited},
		{"the caller's deadline passing is canceled", transportErr(tim.OpSend, context.DeadlineExceeded, true), tim.Canceled},
		{"the caller canceling is canceled", transportErr(tim.OpSend, context.Canceled, true), tim.Canceled},
		{"a bare context.Canceled is canceled", fmt.Errorf("mute: %w", context.Canceled), tim.Canceled},
		{"a bare deadline is retryable", context.DeadlineExceeded, tim.Retryable},
		{"a request the client refused is permanent", &tim.RequestError{Command: "forbid_send_msg", Field: "Members_Account", Reason: "too many"}, tim.Permanent},
		{"a wrapped API error keeps its class", fmt.Errorf("mute jared in @TGS#1: %w", apiErr(60007)), tim.RateLimited},
		{"an error from elsewhere is permanent", errors.New("something else"), tim.Permanent},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tim.Classify(tt.err)
			if got != tt.want {
				t.Fatalf("Classify(%v) = %v, want %v", tt.err, got, tt.want)
			}
			if want := tt.want == tim.Retryable || tt.want == tim.RateLimited; tim.IsRetryable(tt.err) != want {
				t.Errorf("IsRetryable = %v, want %v", !want, want)
			}
		})
	}
}

func TestCodeFindsTheIMCode(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want int
	}{
		{"an API error gives its code", fmt.Errorf("wrapped: %w", apiErr(10007)), 10007},
		{"a UserSig error gives its code", tim.ErrUserSigExpired, 70001},
		{"an HTTP error without an envelope gives 0", httpErr(500), 0},
		{"a transport error gives 0", transportErr(tim.OpSend, errors.New("x"), false), 0},
		{"nil gives 0", nil, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tim.Code(tt.err); got != tt.want {
				t.Errorf("Code = %d, want %d", got, tt.want)
			}
		})
	}
}

func TestErrorMessagesNameTheCommand(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want []string
	}{
		{"an API error names command, code and info", &tim.APIError{Command: "forbid_send_msg", Code: 10004, Info: "Members_Account too long"}, []string{"forbid_send_msg", "10004", "Members_Account too long"}},
		{"an HTTP error names command and status", httpErr(503), []string{"forbid_send_msg", "HTTP 503"}},
		{"a transport error names command and step", transportErr(tim.OpSend, errors.New("connection reset"), false), []string{"forbid_send_msg", "send request", "connection reset"}},
		{"a request error names command and field", &tim.RequestError{Command: "ban_group_member", Field: "Members_Account", Reason: "21 accounts"}, []string{"ban_group_member", "Members_Account", "21 accounts"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			msg := tt.err.Error()
			for _, w := range tt.want {
				if !strings.Contains(msg, w) {
					t.Errorf("%q does not contain %q", msg, w)
				}
			}
		})
	}
}
