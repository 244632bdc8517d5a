package logging

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"
)

func TestSecretsNeverReachTheLog(t *testing.T) {
	var buf bytes.Buffer
	r := &Redactor{}
	r.Add("callback-token-123", "secret-key-abcdef", "ab", "")
	log := New(&buf, Options{Level: slog.LevelDebug, Redactor: r})
	log.Info("calling with secret-key-abcdef inside",
		"token", "anything",
		"admin_token", "x",
		"sign", "deadbeef",
		"usersig_value", "eJw",
		"err", errors.New("dial: callback-token-123 refused"),
		"note", "the callback-token-123 is here",
		"callback_signature_check", "on",
		"empty_token", "",
	)
	log.With("authorization", "Bearer zzz").Warn("with attrs")
	out := buf.String()
	for _, secret := range []string{"callback-token-123", "secret-key-abcdef", "deadbeef", "anything", "Bearer zzz", "eJw"} {
		if strings.Contains(out, secret) {
			t.Errorf("log holds %q:\n%s", secret, out)
		}
	}
	if !strings.Contains(out, `"callback_signature_check":"on"`) {
		t.Errorf("a key that only mentions a signature was masked:\n%s", out)
	}
}

func TestAddingASecretTwiceKeepsOne(t *testing.T) {
	r := &Redactor{}
	for range 1000 {
		r.Add("token-abcdef", "other-secret")
	}
	if len(r.secrets) != 2 {
		t.Errorf("%d secrets registered, want 2", len(r.secrets))
	}
}
