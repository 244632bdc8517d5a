package main

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"
)

func TestReplayRefusesFlagsThatDoNotFit(t *testing.T) {
	dir := t.TempDir()
	rulesFile := filepath.Join(dir, "r.yaml")
	write(t, rulesFile, "version: 1\nrules: []\n")
	write(t, filepath.Join(dir, "c.yaml"), "tencent: {sdk_app_id: 1}\nrules_file: r.yaml\n")
	cases := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"both sources", []string{"--old", rulesFile, "--rules", rulesFile, "--events", "e.jsonl", "--recordings", dir}, 2, "not both"},
		{"no source and no config", []string{"--old", rulesFile, "--rules", rulesFile}, 2, "nothing to replay"},
		{"a config that records nowhere", []string{"--config", filepath.Join(dir, "c.yaml"), "--rules", rulesFile}, 2, "nothing to replay"},
		{"a since that is no time", []string{"--old", rulesFile, "--rules", rulesFile, "--recordings", dir, "--since", "yesterday"}, 2, `--since: "yesterday" is neither an RFC 3339 time nor a duration`},
		{"a recordings directory without recordings", []string{"--old", rulesFile, "--rules", rulesFile, "--recordings", dir}, 1, "holds no recording files"},
	}
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(append([]string{"replay"}, tt.args...), &stdout, &stderr)
			if code != tt.code || !strings.Contains(stderr.String(), tt.want) {
				t.Errorf("exit %d, stderr %q; want %d and %q", code, stderr.String(), tt.code, tt.want)
			}
		})
	}
}

func TestReplayReadsOneRecordingFileAndOnlyTheHoursAsked(t *testing.T) {
	dir := t.TempDir()
	oldRules := filepath.Join(dir, "old.yaml")
	newRules := filepath.Join(dir, "new.yaml")
	write(t, oldRules, "version: 1\ncounters: [{name: n, on: [message], key: user.id, window: 10s}]\nrules: []\n")
	write(t, newRules, "version: 1\ncounters: [{name: n, on: [message], key: user.id, window: 10s}]\nrules: [{name: flood, on: message, if: 'counters.n > 5', verdict: block}]\n")
	entry := func(at, user string, n int) string {
		return `{"v":1,"time":"` + at + `","command":"Group.CallbackBeforeSendMsg","text":"keep","body":{"CallbackCommand":"Group.CallbackBeforeSendMsg","GroupId":"@TGS#1","From_Account":"` +
			user + `","MsgBody":[]},"state":{"subjects":{"` + user + `":{"counters":{"n":` + strings.Repeat("9", n) + `}}}}}`
	}
	file := filepath.Join(dir, "callbacks-20261204T10.jsonl")
	write(t, file, entry("2026-12-04T10:00:00Z", "ann", 1)+"\n"+entry("2026-12-04T10:30:00Z", "bob", 1)+"\n")
	var stdout, stderr bytes.Buffer
	code := run([]string{"replay", "--old", oldRules, "--rules", newRules, "--recordings", file, "--since", "2026-12-04T10:15:00Z"}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	if out := stdout.String(); out != "callbacks-20261204T10.jsonl line 2 message group @TGS#1 user bob: verdict none -> block; reply ok -> 1; rules [] -> [flood]\n" {
		t.Errorf("output %q", out)
	}
	if !strings.Contains(stderr.String(), "replayed 1 events (1 decisions)") {
		t.Errorf("summary %s", stderr.String())
	}
}
