package config_test

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/timguard/timguard/config"
)

func TestRecordIsOffByDefaultAndHashesTexts(t *testing.T) {
	c, err := config.Parse("c.yaml", []byte("tencent: {sdk_app_id: 1}\n"), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	r := c.Record
	if r.Enabled || r.Text != config.RecordTextHash || r.Keep.D() != config.DefaultRecordKeep || r.Queue != config.DefaultRecordQueue || len(r.Events) != 0 {
		t.Errorf("record defaults %+v, want off, text hash, keep %s, queue %d, every event", r, config.DefaultRecordKeep, config.DefaultRecordQueue)
	}
	if c.RecordPath() != "" {
		t.Errorf("RecordPath() = %q with neither record.dir nor state_dir, want empty", c.RecordPath())
	}
}

func TestRecordPathIsTheDirOrRecordingsInStateDir(t *testing.T) {
	cases := []struct {
		name, yaml, want string
	}{
		{"record.dir is resolved against the config's directory", "record: {dir: rec}\n", filepath.Join("etc", "rec")},
		{"an absolute record.dir is kept", "record: {dir: /var/rec}\n", "/var/rec"},
		{"without record.dir it is recordings in state_dir", "state_dir: state\n", filepath.Join("etc", "state", "recordings")},
		{"record.dir wins over state_dir", "state_dir: state\nrecord: {dir: rec}\n", filepath.Join("etc", "rec")},
	}
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			c, err := config.Parse(filepath.Join("etc", "c.yaml"), []byte("tencent: {sdk_app_id: 1}\n"+tt.yaml), noEnv)
			if err != nil {
				t.Fatal(err)
			}
			if got := c.RecordPath(); got != tt.want {
				t.Errorf("RecordPath() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestRecordKeepsTheValuesGiven(t *testing.T) {
	src := "tencent: {sdk_app_id: 1}\nrecord:\n  enabled: true\n  dir: /r\n  keep: 168h\n  events: [message, join_request]\n  text: hash\n  hash_key: ${KEY}\n  queue: 100\n"
	c, err := config.Parse("c.yaml", []byte(src), vars(map[string]string{"KEY": "k3y"}))
	if err != nil {
		t.Fatal(err)
	}
	r := c.Record
	if !r.Enabled || r.Dir != "/r" || r.Keep.D() != 168*time.Hour || strings.Join(r.Events, ",") != "message,join_request" ||
		r.Text != "hash" || r.HashKey.Reveal() != "k3y" || r.Queue != 100 {
		t.Errorf("record = %+v", r)
	}
}

func TestRecordRefusesBadValuesNamingKeyAndValue(t *testing.T) {
	cases := []struct {
		name, yaml string
		key, want  string
	}{
		{"enabled with nowhere to write", "record: {enabled: true}\n", "record.dir", "is required when record.enabled is true and state_dir is empty"},
		{"a retention under an hour", "record: {keep: 30m}\n", "record.keep", "30m0s must be between 1h and 8760h"},
		{"a retention over a year", "record: {keep: 9000h}\n", "record.keep", "9000h0m0s must be between 1h and 8760h"},
		{"an event kind that does not exist", "record: {events: [message, before_send_msg]}\n", "record.events[1]", `"before_send_msg" is not an event kind (join_request, invite, message`},
		{"an event kind listed twice", "record: {events: [message, message]}\n", "record.events[1]", `"message" is listed twice`},
		{"a text mode that does not exist", "record: {text: redact}\n", "record.text", `"redact" must be hash or keep`},
		{"a hash key with texts kept", "record: {text: keep, hash_key: abc}\n", "record.hash_key", "is set but record.text is keep"},
		{"a queue too small", "record: {queue: 8}\n", "record.queue", "8 must be between 16 and 1000000"},
		{"a queue too large", "record: {queue: 2000000}\n", "record.queue", "2000000 must be between 16 and 1000000"},
	}
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			_, err := config.Parse("c.yaml", []byte("tencent: {sdk_app_id: 1}\n"+tt.yaml), noEnv)
			if err == nil {
				t.Fatal("accepted")
			}
			ps := problems(t, err, "c.yaml")
			for _, p := range ps {
				if p.Path == tt.key && strings.Contains(p.Reason, tt.want) {
					return
				}
			}
			t.Errorf("problems %v, want %s: %s", ps, tt.key, tt.want)
		})
	}
}

func TestRecordAcceptsGoodEdgeValues(t *testing.T) {
	cases := []struct{ name, yaml string }{
		{"enabled with a state_dir and no dir", "state_dir: s\nrecord: {enabled: true}\n"},
		{"enabled with a dir and no state_dir", "record: {enabled: true, dir: r}\n"},
		{"a retention of exactly an hour", "record: {keep: 1h}\n"},
		{"a retention of a year", "record: {keep: 8760h}\n"},
		{"every event kind", "record: {events: [join_request, invite, message, message_sent, member_joined, member_left, group_destroyed]}\n"},
		{"texts kept", "record: {text: keep}\n"},
		{"the smallest queue", "record: {queue: 16}\n"},
		{"the largest queue", "record: {queue: 1000000}\n"},
		{"a hash key with texts hashed", "record: {text: hash, hash_key: abc}\n"},
		{"a disabled block with a dir", "record: {enabled: false, dir: r}\n"},
	}
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := config.Parse("c.yaml", []byte("tencent: {sdk_app_id: 1}\n"+tt.yaml), noEnv); err != nil {
				t.Errorf("refused: %v", err)
			}
		})
	}
}

func TestRecordHashKeyNeverPrints(t *testing.T) {
	c, err := config.Parse("c.yaml", []byte("tencent: {sdk_app_id: 1}\nrecord: {hash_key: s3cr3t-key}\n"), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{c.Record.HashKey.String(), strings.TrimSpace(fmtV(c.Record))} {
		if strings.Contains(s, "s3cr3t-key") {
			t.Errorf("the hash key printed: %s", s)
		}
	}
}

func fmtV(v any) string { return fmt.Sprintf("%+v %#v", v, v) }
