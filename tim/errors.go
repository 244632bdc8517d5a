package tim

import (
	"context"
	"errors"
	"fmt"
	"net"
)

// REST error codes timguard acts on (tencent-im.md, section 2). The UserSig
// codes (700xx) are declared beside the UserSig code.
const (
	CodeInternalError     = 10002 // internal error; retry
	CodeBadCommand        = 10003 // no such command
	CodeBadParameter      = 10004 // invalid parameter
	CodeTooManyAccounts   = 10005 // too many accounts in one request
	CodeFrequencyLimit    = 10006 // operation frequency limit
	CodeNoPermission      = 10007 // the operator may not do this
	CodeGroupNotFound     = 10010 // the group does not exist or was dismissed
	CodeAlreadyMember     = 10013 // the invitee is already a member
	CodeGroupFull         = 10014 // the group is full
	CodeBadGroupID        = 10015 // the group id is invalid
	CodeRefusedByCallback = 10016 // an app callback refused the operation
	CodeSenderMuted       = 10017 // the sender is muted
	CodeResponseTooLarge  = 10018 // the answer would exceed 1 MB
	CodeNoSuchAccount     = 10019 // the account does not exist
	CodeMsgRateLimit      = 10023 // message frequency limit
	CodeHTTPParse         = 60002 // the HTTP request does not parse
	CodeJSONParse         = 60003 // the JSON body does not parse
	CodeBadAccount        = 60004 // bad account or signature in the URL or body
	CodeBadAccountSig     = 60005 // bad account or signature in the URL or body
	CodeBadSDKAppID       = 60006 // the SDKAppID is invalid
	CodeRateLimit         = 60007 // REST calls per second over the limit
	CodeServiceTimeout    = 60008 // the service timed out; retry
	CodeNeedAdmin         = 60010 // the identifier is not an App admin
	CodeAppRateLimit      = 60011 // the app's request rate is over the limit
	CodeTooFrequent       = 60018 // requests too frequent
	CodeTooFrequent2      = 60019 // requests too frequent
)

// APIError is a call the IM server answered with a failure: an envelope
// with a non-zero ErrorCode, or a status other than 200. Code is 0 when the
// server answered a non-200 status without an envelope.
type APIError struct {
	Service    string
	Command    string
	Code       int
	Info       string
	HTTPStatus int
}

func (e *APIError) Error() string {
	if e.Code == 0 && e.HTTPStatus != 0 && e.HTTPStatus != 200 {
		return fmt.Sprintf("tim %s: HTTP %d: %s", e.Command, e.HTTPStatus, e.Info)
	}
	return fmt.Sprintf("tim %s: error %d: %s", e.Command, e.Code, e.Info)
}

// Op names the step of a call that failed before the IM server answered.
type Op string

// The steps of a call.
const (
	OpWait   Op = "wait for the rate limiter"
	OpSend   Op = "send request"
	OpRead   Op = "read response"
	OpDecode Op = "decode response"
)

// ErrResponseTooLarge is wrapped by a *TransportError when a response body
// exceeds ClientConfig.MaxResponseBytes.
var ErrResponseTooLarge = errors.New("response body too large")

// TransportError is a call that failed before a usable answer arrived:
// the rate limiter refused, the connection failed or timed out, the body
// could not be read or decoded. It never contains the request URL, whose
// query carries the UserSig.
type TransportError struct {
	Service string
	Command string
	Op      Op
	Err     error
	// CallerDone is set when the caller's context ended (canceled or past
	// its deadline) rather than the per-call timeout.
	CallerDone bool
	// Sent is set when the whole request had been written before the
	// failure (a timeout waiting for the answer, a connection broken while
	// reading it, an answer that did not decode): the server may have
	// carried the call out. See MayHaveTakenEffect.
	Sent bool
}

func (e *TransportError) Error() string {
	return fmt.Sprintf("tim %s: %s: %v", e.Command, e.Op, e.Err)
}

func (e *TransportError) Unwrap() error { return e.Err }

// RequestError is a request the client refused to send because it breaks a
// documented limit or lacks a required field.
type RequestError struct {
	Command string
	Field   string // the JSON field at fault
	Reason  string
}

func (e *RequestError) Error() string {
	return fmt.Sprintf("tim %s: %s: %s", e.Command, e.Field, e.Reason)
}

// Class says what a caller should do about an error.
type Class int

// The classes Classify returns.
const (
	// NoError is the class of a nil error.
	NoError Class = iota
	// Retryable failures may succeed when tried again after a backoff.
	Retryable
	// RateLimited failures may succeed later; back off harder than for
	// Retryable and spend less of the shared budget.
	RateLimited
	// Permanent failures will fail again in the same way; do not retry.
	Permanent
	// Canceled means the caller's context ended. It says nothing about the
	// request itself: do not retry now, and do not record the action as
	// failed either (it may be picked up again after a restart).
	Canceled
)

func (c Class) String() string {
	switch c {
	case NoError:
		return "no_error"
	case Retryable:
		return "retryable"
	case RateLimited:
		return "rate_limited"
	case Permanent:
		return "permanent"
	case Canceled:
		return "canceled"
	}
	return fmt.Sprintf("Class(%d)", int(c))
}

// Classify sorts an error from the client into one class. It is the only
// place where that decision is made.
//
//   - Network errors, timeouts of a single call, undecodable answers, HTTP
//     5xx, 10002 (internal error), 60008 (service timeout) and 70001 (UserSig
//     expired: the client regenerates it, so a later call can succeed) are
//     Retryable.
//   - 10006, 10023, 60007, 60011, 60018, 60019, HTTP 429 and a refusal by the
//     client's own Limiter are RateLimited.
//   - A canceled context, or the caller's deadline passing, is Canceled.
//   - Everything else is Permanent, including codes this function does not
//     know. An unknown code is more likely a request the server will keep
//     refusing than a passing fault, and retrying a moderation action
//     blindly can repeat it; the executor records the code so that a code
//     that turns out to be transient can be added to the list.
func Classify(err error) Class {
	if err == nil {
		return NoError
	}
	if errors.Is(err, context.Canceled) {
		return Canceled
	}
	var apiErr *APIError
	if errors.As(err, &apiErr) {
		return classifyCode(apiErr.Code, apiErr.HTTPStatus)
	}
	var tErr *TransportError
	if errors.As(err, &tErr) {
		switch {
		case tErr.CallerDone:
			return Canceled
		case errors.Is(err, ErrResponseTooLarge):
			return Permanent
		case tErr.Op == OpWait:
			return RateLimited
		}
		return Retryable
	}
	var reqErr *RequestError
	if errors.As(err, &reqErr) {
		return Permanent
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return Retryable
	}
	var netErr net.Error
	if errors.As(err, &netErr) {
		return Retryable
	}
	return Permanent
}

func classifyCode(code, httpStatus int) Class {
	switch code {
	case 0:
		switch {
		case httpStatus == 429:
			return RateLimited
		case httpStatus >= 500:
			return Retryable
		}
		return Permanent
	case CodeInternalError, CodeServiceTimeout, CodeUserSigExpired:
		return Retryable
	case CodeFrequencyLimit, CodeMsgRateLimit, CodeRateLimit, CodeAppRateLimit, CodeTooFrequent, CodeTooFrequent2:
		return RateLimited
	}
	return Permanent
}

// IsRetryable reports whether err may succeed when tried again later
// (Retryable or RateLimited).
func IsRetryable(err error) bool {
	c := Classify(err)
	return c == Retryable || c == RateLimited
}

// Code returns the IM error code carried by err, or 0 when there is none.
func Code(err error) int {
	var apiErr *APIError
	if errors.As(err, &apiErr) {
		return apiErr.Code
	}
	var sigErr *UserSigError
	if errors.As(err, &sigErr) {
		return sigErr.Code
	}
	return 0
}

// MayHaveTakenEffect reports whether a failed call may have been carried out
// all the same: the request reached the server, or a gateway in front of it,
// but no verdict came back (a TransportError with Sent, or an HTTP 5xx
// status without an IM error code). Repeating such a call is harmless for
// the idempotent commands (a mute sets the same mute again) but may deliver
// a notice or a message twice. An answer with an IM error code is a verdict:
// the call was not carried out.
func MayHaveTakenEffect(err error) bool {
	var tErr *TransportError
	if errors.As(err, &tErr) {
		return tErr.Sent
	}
	var apiErr *APIError
	if errors.As(err, &apiErr) {
		return apiErr.Code == 0 && apiErr.HTTPStatus >= 500
	}
	return false
}
