package tim

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"strconv"
	"time"
)

// Reasons a callback fails authentication. Each is an *AuthError so callers
// can answer with the reason.
var (
	ErrMissingSign        = &AuthError{Code: "missing_sign", Reason: "Sign or RequestTime is missing"}
	ErrMalformedSign      = &AuthError{Code: "bad_sign", Reason: "Sign is not a 64-character hex SHA-256"}
	ErrBadSign            = &AuthError{Code: "bad_sign", Reason: "Sign does not match the callback token"}
	ErrMalformedTime      = &AuthError{Code: "bad_request_time", Reason: "RequestTime is not Unix seconds"}
	ErrStaleRequestTime   = &AuthError{Code: "stale_request_time", Reason: "RequestTime is too far from now"}
	ErrWrongSdkAppID      = &AuthError{Code: "wrong_sdkappid", Reason: "SdkAppid does not match this bot's app"}
	ErrMissingSdkAppID    = &AuthError{Code: "wrong_sdkappid", Reason: "SdkAppid is missing"}
	errAuthNoTokensConfig = errors.New("no callback token configured")
)

// AuthError is a failed callback authentication. Code is a stable
// machine-readable name; Reason is for people.
type AuthError struct {
	Code   string
	Reason string
}

func (e *AuthError) Error() string { return e.Reason }

// Sign computes the callback signature: the lowercase hex SHA-256 of the
// token immediately followed by the RequestTime string.
func Sign(token, requestTime string) string {
	sum := signSum(token, requestTime)
	return hex.EncodeToString(sum[:])
}

func signSum(token, requestTime string) [sha256.Size]byte {
	h := sha256.New()
	h.Write([]byte(token))
	h.Write([]byte(requestTime))
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	return sum
}

// SignVerifier checks the Sign and RequestTime query parameters. Several
// tokens may be accepted at once so that a token can be rotated without
// downtime.
type SignVerifier struct {
	Tokens  []string
	MaxSkew time.Duration
}

// ParseSign decodes a Sign parameter. Uppercase hex is accepted.
func ParseSign(sign string) ([sha256.Size]byte, error) {
	var out [sha256.Size]byte
	if len(sign) != hex.EncodedLen(sha256.Size) {
		return out, ErrMalformedSign
	}
	if _, err := hex.Decode(out[:], []byte(sign)); err != nil {
		return out, ErrMalformedSign
	}
	return out, nil
}

// ParseRequestTime decodes a RequestTime parameter (Unix seconds).
func ParseRequestTime(s string) (time.Time, error) {
	if s == "" || len(s) > 12 {
		return time.Time{}, ErrMalformedTime
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return time.Time{}, ErrMalformedTime
	}
	return time.Unix(n, 0), nil
}

// Verify returns nil when sign matches one of the tokens for requestTime and
// requestTime lies within MaxSkew of now. The comparison is constant-time.
func (v SignVerifier) Verify(requestTime, sign string, now time.Time) error {
	if len(v.Tokens) == 0 {
		return errAuthNoTokensConfig
	}
	if sign == "" || requestTime == "" {
		return ErrMissingSign
	}
	got, err := ParseSign(sign)
	if err != nil {
		return err
	}
	at, err := ParseRequestTime(requestTime)
	if err != nil {
		return err
	}
	if v.MaxSkew > 0 {
		if d := now.Sub(at); d > v.MaxSkew || d < -v.MaxSkew {
			return ErrStaleRequestTime
		}
	}
	match := 0
	for _, tok := range v.Tokens {
		want := signSum(tok, requestTime)
		match |= subtle.ConstantTimeCompare(got[:], want[:])
	}
	if match != 1 {
		return ErrBadSign
	}
	return nil
}
