package console

import (
	"strings"
	"testing"
	"time"
)

// FuzzDecodeSession feeds cookie values to the session decoder: it never
// panics, and accepts only what the key signed.
func FuzzDecodeSession(f *testing.F) {
	key := sessionKey("fuzz-token")
	now := time.Unix(1_800_000_000, 0)
	good := (&session{Name: "mia", Expires: now.Add(time.Hour).Unix(), ID: "abc"}).encode(key)
	f.Add(good)
	f.Add("")
	f.Add(".")
	f.Add("eyJuIjoibWlhIn0.")
	goodPayload, _, _ := strings.Cut(good, ".")
	f.Fuzz(func(t *testing.T, v string) {
		s, ok := decodeSession(key, v, now)
		if !ok {
			return
		}
		// Only the payload the key signed passes (its signature may be
		// spelled in another base64 form of the same bytes).
		if p, _, _ := strings.Cut(v, "."); p != goodPayload || s.Name != "mia" {
			t.Fatalf("accepted %q, a payload the key did not sign", v)
		}
	})
}
