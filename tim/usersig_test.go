package tim_test

import (
	"bytes"
	"compress/zlib"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/timguard/timguard/tim"
)

const (
	testAppID = 1400000000
	testKey   = "5bd2850fff3ecb11d7c805251c51ee463a25727bddc2385f3fa8bfee1bb93b5e"
	testAdmin = "administrator"
)

var testNow = time.Unix(1700000000, 0)

// pythonSig was produced by Python's hmac, json, zlib and base64 modules
// from the algorithm in tencent-im.md section 3 (identifier administrator,
// SDKAppID 1400000000, time 1700000000, expire 15552000, key testKey), so it
// checks this package against an implementation that shares no code with it.
const pythonSig = "eNqrVgrxCdYrSy1SslIy0jNQ0gHzM1NS80oy0zLBwokpuZl5mcUlRYkl*UVQBcUp2YkFBZkpSlaGJgZQAJFJrSjILEoFipuamhrBRUsyc0Fi5qhqizPTgeZ7OVdVJOa5WfiFhEQklprkahtlWJaXmadHeuVV*mUX5xpU5Br6uUaEGpmb2CrVAgBObjSn"

// decodeSigDoc undoes the UserSig encoding by hand.
func decodeSigDoc(t *testing.T, sig string) map[string]any {
	t.Helper()
	std := strings.NewReplacer("*", "+", "-", "/", "_", "=").Replace(sig)
	z, err := base64.StdEncoding.DecodeString(std)
	if err != nil {
		t.Fatalf("base64: %v", err)
	}
	zr, err := zlib.NewReader(bytes.NewReader(z))
	if err != nil {
		t.Fatalf("zlib: %v", err)
	}
	var doc map[string]any
	if err := json.NewDecoder(zr).Decode(&doc); err != nil {
		t.Fatalf("json: %v", err)
	}
	return doc
}

// encodeSigDoc builds a UserSig from an arbitrary JSON document.
func encodeSigDoc(t testing.TB, doc []byte) string {
	t.Helper()
	var buf bytes.Buffer
	zw := zlib.NewWriter(&buf)
	zw.Write(doc)
	zw.Close()
	return strings.NewReplacer("+", "*", "/", "-", "=", "_").Replace(base64.StdEncoding.EncodeToString(buf.Bytes()))
}

func hmacB64(key, content string) string {
	m := hmac.New(sha256.New, []byte(key))
	m.Write([]byte(content))
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

func TestGenUserSigRoundTrips(t *testing.T) {
	sig, err := tim.GenUserSig(testAppID, testKey, testAdmin, 7*24*time.Hour, testNow)
	if err != nil {
		t.Fatal(err)
	}
	if strings.ContainsAny(sig, "+/=") {
		t.Errorf("UserSig %q contains a character of the standard base64 alphabet that must be replaced", sig)
	}
	info, err := tim.ParseUserSig(sig)
	if err != nil {
		t.Fatal(err)
	}
	want := tim.UserSigInfo{Version: "2.0", Identifier: testAdmin, SDKAppID: testAppID, Time: testNow.Unix(), Expire: 7 * 24 * 3600, Sig: info.Sig}
	if info != want {
		t.Errorf("ParseUserSig = %+v, want %+v", info, want)
	}
	if got := info.ExpiresAt(); !got.Equal(testNow.Add(7 * 24 * time.Hour)) {
		t.Errorf("ExpiresAt = %v", got)
	}
	if err := tim.VerifyUserSig(sig, testAppID, testKey, testAdmin, testNow.Add(time.Hour)); err != nil {
		t.Errorf("VerifyUserSig: %v", err)
	}
}

func TestGenUserSigFollowsTheDocumentedLayout(t *testing.T) {
	sig, err := tim.GenUserSig(testAppID, testKey, "jared", 24*time.Hour, testNow)
	if err != nil {
		t.Fatal(err)
	}
	doc := decodeSigDoc(t, sig)
	wantKeys := []string{"TLS.ver", "TLS.identifier", "TLS.sdkappid", "TLS.expire", "TLS.time", "TLS.sig"}
	if len(doc) != len(wantKeys) {
		t.Errorf("document has keys %v, want exactly %v", doc, wantKeys)
	}
	if doc["TLS.ver"] != "2.0" || doc["TLS.identifier"] != "jared" {
		t.Errorf("TLS.ver/TLS.identifier = %v/%v", doc["TLS.ver"], doc["TLS.identifier"])
	}
	for key, want := range map[string]float64{"TLS.sdkappid": testAppID, "TLS.expire": 86400, "TLS.time": float64(testNow.Unix())} {
		if got, ok := doc[key].(float64); !ok || got != want {
			t.Errorf("%s = %#v, want the JSON number %v", key, doc[key], want)
		}
	}
	// The HMAC is recomputed here from the content lines, independently of
	// the package.
	content := fmt.Sprintf("TLS.identifier:%s\nTLS.sdkappid:%d\nTLS.time:%d\nTLS.expire:%d\n", "jared", testAppID, testNow.Unix(), 86400)
	if got, want := doc["TLS.sig"], hmacB64(testKey, content); got != want {
		t.Errorf("TLS.sig = %v, want %v", got, want)
	}
}

func TestUserSigFromAnotherImplementationVerifies(t *testing.T) {
	info, err := tim.ParseUserSig(pythonSig)
	if err != nil {
		t.Fatal(err)
	}
	if info.Identifier != testAdmin || info.SDKAppID != testAppID || info.Time != 1700000000 || info.Expire != 15552000 {
		t.Errorf("ParseUserSig = %+v", info)
	}
	content := "TLS.identifier:administrator\nTLS.sdkappid:1400000000\nTLS.time:1700000000\nTLS.expire:15552000\n"
	if want := hmacB64(testKey, content); info.Sig != want {
		t.Errorf("Sig = %q, want %q", info.Sig, want)
	}
	if err := tim.VerifyUserSig(pythonSig, testAppID, testKey, testAdmin, testNow.Add(24*time.Hour)); err != nil {
		t.Errorf("VerifyUserSig: %v", err)
	}
}

func TestVerifyUserSigRefusals(t *testing.T) {
	good, err := tim.GenUserSig(testAppID, testKey, testAdmin, time.Hour, testNow)
	if err != nil {
		t.Fatal(err)
	}
	// A document whose TLS.expire was raised after signing.
	stretched := func() string {
		content := fmt.Sprintf("TLS.identifier:%s\nTLS.sdkappid:%d\nTLS.time:%d\nTLS.expire:%d\n", testAdmin, testAppID, testNow.Unix(), 3600)
		doc := fmt.Sprintf(`{"TLS.ver":"2.0","TLS.identifier":%q,"TLS.sdkappid":%d,"TLS.expire":%d,"TLS.time":%d,"TLS.sig":%q}`,
			testAdmin, testAppID, 999999999, testNow.Unix(), hmacB64(testKey, content))
		return encodeSigDoc(t, []byte(doc))
	}()
	flipped := []byte(good)
	flipped[len(flipped)/2] ^= 0x01

	tests := []struct {
		name       string
		sig        string
		appID      uint64
		key        string
		identifier string
		now        time.Time
		want       error
	}{
		{"a UserSig past its expiry is refused as expired", good, testAppID, testKey, testAdmin, testNow.Add(time.Hour + time.Second), tim.ErrUserSigExpired},
		{"a UserSig is still valid in its last second", good, testAppID, testKey, testAdmin, testNow.Add(time.Hour), nil},
		{"a UserSig signed with another key fails verification", good, testAppID, "another-key", testAdmin, testNow, tim.ErrUserSigBadSignature},
		{"a UserSig for another identifier is a mismatch", good, testAppID, testKey, "jared", testNow, tim.ErrUserSigWrongIdentity},
		{"a UserSig for another app is an app id mismatch", good, 1400000001, testKey, testAdmin, testNow, tim.ErrUserSigWrongAppID},
		{"a UserSig whose expiry was stretched after signing fails verification", stretched, testAppID, testKey, testAdmin, testNow, tim.ErrUserSigBadSignature},
		{"a UserSig with a flipped bit does not parse", string(flipped), testAppID, testKey, testAdmin, testNow, tim.ErrUserSigMalformed},
		{"an empty UserSig does not parse", "", testAppID, testKey, testAdmin, testNow, tim.ErrUserSigMalformed},
		{"a truncated UserSig does not parse", good[:len(good)/2], testAppID, testKey, testAdmin, testNow, tim.ErrUserSigMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tim.VerifyUserSig(tt.sig, tt.appID, tt.key, tt.identifier, tt.now)
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Fatalf("VerifyUserSig = %v, want %v", err, tt.want)
			}
			if tt.want != nil {
				var wantErr *tim.UserSigError
				if !errors.As(tt.want, &wantErr) {
					t.Fatalf("want %v is not a UserSigError", tt.want)
				}
				want := wantErr.Code
				if got := tim.Code(err); got != want {
					t.Errorf("Code = %d, want %d", got, want)
				}
			}
		})
	}
}

func TestParseUserSigRefusesMalformedContent(t *testing.T) {
	validSig := hmacB64(testKey, "x")
	doc := func(ver, id, appID, expire, issued, sig string) string {
		return encodeSigDoc(t, []byte(fmt.Sprintf(`{"TLS.ver":%s,"TLS.identifier":%s,"TLS.sdkappid":%s,"TLS.expire":%s,"TLS.time":%s,"TLS.sig":%s}`,
			ver, id, appID, expire, issued, sig)))
	}
	q := func(s string) string { return `"` + s + `"` }
	bomb := func() string {
		var buf bytes.Buffer
		zw := zlib.NewWriter(&buf)
		zw.Write([]byte(`{"TLS.ver":"2.0","TLS.identifier":"`))
		zw.Write(bytes.Repeat([]byte("a"), 1<<20))
		zw.Write([]byte(`"}`))
		zw.Close()
		return strings.NewReplacer("+", "*", "/", "-", "=", "_").Replace(base64.StdEncoding.EncodeToString(buf.Bytes()))
	}()

	tests := []struct {
		name string
		sig  string
		want string
	}{
		{"text that is not base64 is refused", "not base64!", "not base64"},
		{"base64 that is not zlib is refused", base64.StdEncoding.EncodeToString([]byte("hello world")), "not zlib"},
		{"zlib that is not JSON is refused", encodeSigDoc(t, []byte("hello")), "not a JSON object"},
		{"a JSON array is refused", encodeSigDoc(t, []byte("[1,2]")), "not a JSON object"},
		{"data after the JSON object is refused", encodeSigDoc(t, []byte(`{"TLS.ver":"2.0"} {}`)), "after the JSON object"},
		{"version 1.0 is refused", doc(q("1.0"), q("a"), "1", "1", "1", q(validSig)), "TLS.ver"},
		{"a missing identifier is refused", doc(q("2.0"), q(""), "1", "1", "1", q(validSig)), "TLS.identifier"},
		{"an app id given as a string is refused", doc(q("2.0"), q("a"), q("1"), "1", "1", q(validSig)), "TLS.sdkappid"},
		{"an app id of 0 is refused", doc(q("2.0"), q("a"), "0", "1", "1", q(validSig)), "TLS.sdkappid"},
		{"a negative issue time is refused", doc(q("2.0"), q("a"), "1", "1", "-1", q(validSig)), "TLS.time"},
		{"a fractional expiry is refused", doc(q("2.0"), q("a"), "1", "1.5", "1", q(validSig)), "TLS.expire"},
		{"a zero expiry is refused", doc(q("2.0"), q("a"), "1", "0", "1", q(validSig)), "TLS.expire"},
		{"an expiry that would overflow is refused", doc(q("2.0"), q("a"), "1", "9223372036854775807", "1", q(validSig)), "TLS.expire"},
		{"a signature that is not 32 bytes is refused", doc(q("2.0"), q("a"), "1", "1", "1", q("AAAA")), "TLS.sig"},
		{"a zip bomb is refused without inflating it all", bomb, "inflates to more than"},
		{"a very long value is refused before decoding", strings.Repeat("A", 9000), "more than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tim.ParseUserSig(tt.sig)
			if !errors.Is(err, tim.ErrUserSigMalformed) {
				t.Fatalf("ParseUserSig = %v, want a 70003 error", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not mention %q", err, tt.want)
			}
		})
	}
}

func TestGenUserSigRefusesBadArguments(t *testing.T) {
	tests := []struct {
		name   string
		appID  uint64
		key    string
		id     string
		expire time.Duration
	}{
		{"an app id of 0 is refused", 0, testKey, testAdmin, time.Hour},
		{"an empty key is refused", testAppID, "", testAdmin, time.Hour},
		{"an empty identifier is refused", testAppID, testKey, "", time.Hour},
		{"an expiry under a second is refused", testAppID, testKey, testAdmin, 999 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := tim.GenUserSig(tt.appID, tt.key, tt.id, tt.expire, testNow); err == nil {
				t.Error("GenUserSig succeeded")
			}
		})
	}
}

func FuzzParseUserSig(f *testing.F) {
	good, err := tim.GenUserSig(testAppID, testKey, testAdmin, time.Hour, testNow)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add(pythonSig)
	f.Add("")
	f.Add("eJyrVgrxCdYrSy1SslIy0jNQ0gHzM1NS80oy0zLBwokpuZl5mcUlRYkl")
	f.Add(encodeSigDoc(f, []byte(`{"TLS.ver":"2.0","TLS.identifier":"a","TLS.sdkappid":1,"TLS.expire":1,"TLS.time":1,"TLS.sig":"AAAA"}`)))
	f.Fuzz(func(t *testing.T, sig string) {
		info, err := tim.ParseUserSig(sig)
		if err != nil {
			var sigErr *tim.UserSigError
			if !errors.As(err, &sigErr) || sigErr.Code != tim.CodeUserSigMalformed {
				t.Fatalf("ParseUserSig error %v is not a 70003 *UserSigError", err)
			}
			return
		}
		if info.Version != "2.0" || info.Identifier == "" || info.SDKAppID == 0 || info.Expire <= 0 || info.Time < 0 {
			t.Fatalf("ParseUserSig accepted inconsistent content %+v", info)
		}
		if info.ExpiresAt().Before(info.IssuedAt()) {
			t.Fatalf("ExpiresAt %v is before IssuedAt %v", info.ExpiresAt(), info.IssuedAt())
		}
		err = tim.VerifyUserSig(sig, info.SDKAppID, testKey, info.Identifier, info.IssuedAt())
		if err != nil && tim.Code(err) == 0 {
			t.Fatalf("VerifyUserSig error %v carries no code", err)
		}
	})
}

// FuzzParseUserSigDocument fuzzes the JSON inside a UserSig: random text
// rarely survives base64, zlib and its checksum, so FuzzParseUserSig alone
// seldom reaches the field checks.
func FuzzParseUserSigDocument(f *testing.F) {
	content := fmt.Sprintf("TLS.identifier:%s\nTLS.sdkappid:%d\nTLS.time:%d\nTLS.expire:%d\n", testAdmin, testAppID, testNow.Unix(), 3600)
	f.Add([]byte(fmt.Sprintf(`{"TLS.ver":"2.0","TLS.identifier":%q,"TLS.sdkappid":%d,"TLS.expire":3600,"TLS.time":%d,"TLS.sig":%q}`,
		testAdmin, testAppID, testNow.Unix(), hmacB64(testKey, content))))
	f.Add([]byte(`{"TLS.ver":"2.0","TLS.identifier":"a","TLS.sdkappid":"1","TLS.expire":1.5,"TLS.time":-1,"TLS.sig":""}`))
	f.Add([]byte(`{"tls.ver":"2.0","TLS.identifier":"a","TLS.sdkappid":1,"TLS.expire":1,"TLS.time":1,"TLS.sig":"AAAA"} x`))
	f.Add([]byte(`[null]`))
	f.Fuzz(func(t *testing.T, doc []byte) {
		info, err := tim.ParseUserSig(encodeSigDoc(t, doc))
		if err != nil {
			if tim.Code(err) != tim.CodeUserSigMalformed {
				t.Fatalf("ParseUserSig error %v is not a 70003 error", err)
			}
			return
		}
		var m map[string]any
		if err := json.Unmarshal(doc, &m); err != nil {
			t.Fatalf("ParseUserSig accepted %q, which encoding/json refuses: %v", doc, err)
		}
		if m["TLS.ver"] != "2.0" || m["TLS.identifier"] != info.Identifier || m["TLS.sig"] != info.Sig {
			t.Fatalf("ParseUserSig = %+v for %q", info, doc)
		}
		if info.SDKAppID == 0 || info.Expire <= 0 || info.Time < 0 {
			t.Fatalf("ParseUserSig accepted inconsistent content %+v", info)
		}
		err = tim.VerifyUserSig(encodeSigDoc(t, doc), info.SDKAppID, testKey, info.Identifier, info.IssuedAt())
		if err != nil && !errors.Is(err, tim.ErrUserSigBadSignature) {
			t.Fatalf("VerifyUserSig of parsed content = %v, want nil or a signature mismatch", err)
		}
	})
}
