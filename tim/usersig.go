package tim

import (
	"bytes"
	"compress/zlib"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// UserSig error codes the IM server answers (tencent-im.md, section 2).
const (
	CodeUserSigExpired       = 70001
	CodeUserSigMalformed     = 70003
	CodeUserSigBadSignature  = 70009
	CodeUserSigWrongIdentity = 70013
	CodeUserSigWrongAppID    = 70014
)

// Bounds on what ParseUserSig accepts. A real UserSig is a few hundred bytes;
// the bounds keep a hostile or corrupt value from costing memory (a small
// zlib stream can inflate to gigabytes).
const (
	maxUserSigLen       = 8 << 10  // encoded length
	maxUserSigJSONBytes = 16 << 10 // decompressed length
)

// UserSigError is a UserSig that does not parse or verify. Code is the error
// code the IM server answers for the same failure (70001, 70003, 70009,
// 70013 or 70014), so a fake server can answer with it directly.
//
// errors.Is matches on Code: errors.Is(err, ErrUserSigExpired) holds for
// every expired UserSig whatever its Reason.
type UserSigError struct {
	Code   int
	Reason string
	Err    error
}

// Sentinels for errors.Is.
var (
	ErrUserSigExpired       = &UserSigError{Code: CodeUserSigExpired, Reason: "UserSig expired"}
	ErrUserSigMalformed     = &UserSigError{Code: CodeUserSigMalformed, Reason: "UserSig does not parse"}
	ErrUserSigBadSignature  = &UserSigError{Code: CodeUserSigBadSignature, Reason: "UserSig signature does not match the secret key"}
	ErrUserSigWrongIdentity = &UserSigError{Code: CodeUserSigWrongIdentity, Reason: "UserSig was issued for another identifier"}
	ErrUserSigWrongAppID    = &UserSigError{Code: CodeUserSigWrongAppID, Reason: "UserSig was issued for another SDKAppID"}
)

func (e *UserSigError) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("usersig: %s: %v", e.Reason, e.Err)
	}
	return "usersig: " + e.Reason
}

func (e *UserSigError) Unwrap() error { return e.Err }

// Is reports whether target is a *UserSigError with the same Code.
func (e *UserSigError) Is(target error) bool {
	t, ok := target.(*UserSigError)
	return ok && t.Code == e.Code
}

func malformed(reason string, err error) *UserSigError {
	return &UserSigError{Code: CodeUserSigMalformed, Reason: reason, Err: err}
}

// UserSigInfo is the decoded content of a UserSig. Decoding needs no key;
// only VerifyUserSig proves that the content was signed with the app's key.
type UserSigInfo struct {
	Version    string // "2.0"
	Identifier string
	SDKAppID   uint64
	Time       int64  // issue time, Unix seconds
	Expire     int64  // validity in seconds from Time
	Sig        string // base64 of the HMAC-SHA256 over the content lines
}

// IssuedAt returns the issue time.
func (i UserSigInfo) IssuedAt() time.Time { return time.Unix(i.Time, 0) }

// ExpiresAt returns Time+Expire; the UserSig is refused after that second.
func (i UserSigInfo) ExpiresAt() time.Time {
	return time.Unix(i.Time, 0).Add(time.Duration(i.Expire) * time.Second)
}

// userSigContent is the text the HMAC covers (tencent-im.md, section 3).
func userSigContent(identifier string, sdkAppID uint64, issued, expire int64) string {
	var b strings.Builder
	b.WriteString("TLS.identifier:")
	b.WriteString(identifier)
	b.WriteString("\nTLS.sdkappid:")
	b.WriteString(strconv.FormatUint(sdkAppID, 10))
	b.WriteString("\nTLS.time:")
	b.WriteString(strconv.FormatInt(issued, 10))
	b.WriteString("\nTLS.expire:")
	b.WriteString(strconv.FormatInt(expire, 10))
	b.WriteString("\n")
	return b.String()
}

func userSigHMAC(secretKey, content string) []byte {
	m := hmac.New(sha256.New, []byte(secretKey))
	m.Write([]byte(content))
	return m.Sum(nil)
}

// sigEscape maps standard base64 to the UserSig alphabet, which is URL-safe
// without being base64url: + becomes *, / becomes - and = becomes _.
func sigEscape(s string) string {
	return strings.Map(func(r rune) rune {
		switch r {
		case '+':
			return '*'
		case '/':
			return '-'
		case '=':
			return '_'
		}
		return r
	}, s)
}

// sigUnescape undoes sigEscape.
func sigUnescape(s string) string {
	return strings.Map(func(r rune) rune {
		switch r {
		case '*':
			return '+'
		case '-':
			return '/'
		case '_':
			return '='
		}
		return r
	}, s)
}

// GenUserSig returns a UserSig for identifier valid for expire from now,
// built exactly as Tencent's TLSSigAPIv2 builds it: HMAC-SHA256 over the
// content lines, a JSON object, zlib, base64 with *, - and _ for +, / and =.
// expire is truncated to whole seconds and must be at least one second.
func GenUserSig(sdkAppID uint64, secretKey, identifier string, expire time.Duration, now time.Time) (string, error) {
	switch {
	case sdkAppID == 0:
		return "", errors.New("usersig: sdkAppID is 0")
	case secretKey == "":
		return "", errors.New("usersig: secret key is empty")
	case identifier == "":
		return "", errors.New("usersig: identifier is empty")
	case expire < time.Second:
		return "", fmt.Errorf("usersig: expire %v is shorter than one second", expire)
	}
	issued := now.Unix()
	secs := int64(expire / time.Second)
	sig := base64.StdEncoding.EncodeToString(userSigHMAC(secretKey, userSigContent(identifier, sdkAppID, issued, secs)))

	doc, err := json.Marshal(struct {
		Ver        string `json:"TLS.ver"`
		Identifier string `json:"TLS.identifier"`
		SDKAppID   uint64 `json:"TLS.sdkappid"`
		Expire     int64  `json:"TLS.expire"`
		Time       int64  `json:"TLS.time"`
		Sig        string `json:"TLS.sig"`
	}{"2.0", identifier, sdkAppID, secs, issued, sig})
	if err != nil {
		return "", fmt.Errorf("usersig: encode: %w", err)
	}
	var buf bytes.Buffer
	zw := zlib.NewWriter(&buf)
	if _, err := zw.Write(doc); err != nil {
		return "", fmt.Errorf("usersig: compress: %w", err)
	}
	if err := zw.Close(); err != nil {
		return "", fmt.Errorf("usersig: compress: %w", err)
	}
	return sigEscape(base64.StdEncoding.EncodeToString(buf.Bytes())), nil
}

// ParseUserSig decodes a UserSig without checking its signature. Every error
// is a *UserSigError with Code 70003.
func ParseUserSig(sig string) (UserSigInfo, error) {
	if sig == "" {
		return UserSigInfo{}, malformed("UserSig is empty", nil)
	}
	if len(sig) > maxUserSigLen {
		return UserSigInfo{}, malformed(fmt.Sprintf("UserSig is %d bytes, more than %d", len(sig), maxUserSigLen), nil)
	}
	compressed, err := base64.StdEncoding.DecodeString(sigUnescape(sig))
	if err != nil {
		return UserSigInfo{}, malformed("UserSig is not base64", err)
	}
	zr, err := zlib.NewReader(bytes.NewReader(compressed))
	if err != nil {
		return UserSigInfo{}, malformed("UserSig is not zlib", err)
	}
	// Reading to EOF also checks the zlib checksum.
	doc, err := io.ReadAll(io.LimitReader(zr, maxUserSigJSONBytes+1))
	if err != nil {
		return UserSigInfo{}, malformed("UserSig is not zlib", err)
	}
	if len(doc) > maxUserSigJSONBytes {
		return UserSigInfo{}, malformed(fmt.Sprintf("UserSig inflates to more than %d bytes", maxUserSigJSONBytes), nil)
	}

	// Keys are matched exactly, as Tencent's libraries do; encoding/json's
	// struct decoding would also accept "tls.ver".
	dec := json.NewDecoder(bytes.NewReader(doc))
	var m map[string]json.RawMessage
	if err := dec.Decode(&m); err != nil || m == nil {
		return UserSigInfo{}, malformed("UserSig content is not a JSON object", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return UserSigInfo{}, malformed("UserSig content has data after the JSON object", nil)
	}
	var d struct{ Ver, Identifier, Sig string }
	for key, dst := range map[string]*string{"TLS.ver": &d.Ver, "TLS.identifier": &d.Identifier, "TLS.sig": &d.Sig} {
		if raw, ok := m[key]; ok && json.Unmarshal(raw, dst) != nil {
			return UserSigInfo{}, malformed(key+" is not a string", nil)
		}
	}
	if d.Ver != "2.0" {
		return UserSigInfo{}, malformed(fmt.Sprintf("TLS.ver is %q, want \"2.0\"", d.Ver), nil)
	}
	if d.Identifier == "" {
		return UserSigInfo{}, malformed("TLS.identifier is missing", nil)
	}
	info := UserSigInfo{Version: d.Ver, Identifier: d.Identifier, Sig: d.Sig}
	if info.SDKAppID, err = strconv.ParseUint(string(m["TLS.sdkappid"]), 10, 64); err != nil || info.SDKAppID == 0 {
		return UserSigInfo{}, malformed(fmt.Sprintf("TLS.sdkappid %s is not a positive integer", shortRaw(m["TLS.sdkappid"])), nil)
	}
	// Time and Expire are bounded so that Time+Expire cannot overflow.
	const maxSeconds = 1 << 40
	if info.Time, err = strconv.ParseInt(string(m["TLS.time"]), 10, 64); err != nil || info.Time < 0 || info.Time > maxSeconds {
		return UserSigInfo{}, malformed(fmt.Sprintf("TLS.time %s is not Unix seconds", shortRaw(m["TLS.time"])), nil)
	}
	if info.Expire, err = strconv.ParseInt(string(m["TLS.expire"]), 10, 64); err != nil || info.Expire <= 0 || info.Expire > maxSeconds {
		return UserSigInfo{}, malformed(fmt.Sprintf("TLS.expire %s is not a positive number of seconds", shortRaw(m["TLS.expire"])), nil)
	}
	if raw, err := base64.StdEncoding.DecodeString(d.Sig); err != nil || len(raw) != sha256.Size {
		return UserSigInfo{}, malformed("TLS.sig is not a base64 HMAC-SHA256", nil)
	}
	return info, nil
}

// shortRaw quotes a raw JSON value for an error message, shortened.
func shortRaw(raw json.RawMessage) string {
	if len(raw) == 0 {
		return "(missing)"
	}
	if len(raw) > 32 {
		return string(raw[:32]) + "..."
	}
	return string(raw)
}

// VerifyUserSig checks sig the way the IM server does: it must parse (70003),
// name sdkAppID (70014) and identifier (70013), carry an HMAC made with
// secretKey (70009) and not have expired at now (70001). The error is a
// *UserSigError whose Code is the IM server's answer.
func VerifyUserSig(sig string, sdkAppID uint64, secretKey, identifier string, now time.Time) error {
	info, err := ParseUserSig(sig)
	if err != nil {
		return err
	}
	return info.Verify(sdkAppID, secretKey, identifier, now)
}

// Verify makes every check of VerifyUserSig but the parse on a UserSig
// ParseUserSig decoded, so that a server may keep decoded UserSigs (the
// decoding inflates and parses JSON) and still check each request's.
func (i UserSigInfo) Verify(sdkAppID uint64, secretKey, identifier string, now time.Time) error {
	if i.SDKAppID != sdkAppID {
		return &UserSigError{Code: CodeUserSigWrongAppID, Reason: fmt.Sprintf("UserSig was issued for SDKAppID %d, not %d", i.SDKAppID, sdkAppID)}
	}
	if i.Identifier != identifier {
		return &UserSigError{Code: CodeUserSigWrongIdentity, Reason: fmt.Sprintf("UserSig was issued for identifier %q, not %q", i.Identifier, identifier)}
	}
	want := userSigHMAC(secretKey, userSigContent(i.Identifier, i.SDKAppID, i.Time, i.Expire))
	got, err := base64.StdEncoding.DecodeString(i.Sig) // ParseUserSig checked it
	if err != nil || !hmac.Equal(got, want) {
		return ErrUserSigBadSignature
	}
	if now.Unix() > i.Time+i.Expire {
		return &UserSigError{Code: CodeUserSigExpired, Reason: fmt.Sprintf("UserSig expired at %s", i.ExpiresAt().UTC().Format(time.RFC3339))}
	}
	return nil
}
