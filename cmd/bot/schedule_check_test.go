package main

// bot check on bad schedules.

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheckNamesTheScheduleOfABadCronOrTimezone(t *testing.T) {
	const file = `version: 1
schedules:
  - name: %s
    cron: %q
    timezone: %s
    groups: ["@TGS#1abc"]
    actions: [{mute_group: 8h}]
`
	tests := []struct {
		name     string
		schedule string
		cron     string
		zone     string
		want     string
	}{
		{"an hour of 25 is refused", "quiet-hours", "0 25 * * *", "Asia/Shanghai",
			`schedule "quiet-hours": cron: "0 25 * * *" is not a cron expression`},
		{"words are not a cron expression", "quiet-hours", "every night at eleven", "Asia/Shanghai",
			`schedule "quiet-hours": cron: "every night at eleven" is not a cron expression`},
		{"a descriptor robfig/cron does not know is refused", "boot", "@reboot", "UTC",
			`schedule "boot": cron: "@reboot" is not a cron expression`},
		{"an unknown timezone is refused", "night", "0 22 * * *", "Mars/Olympus",
			`schedule "night": timezone: "Mars/Olympus" is not an IANA timezone`},
		{"the machine's Local zone is refused", "night", "0 22 * * *", "Local",
			`schedule "night": timezone: "Local" depends on the machine`},
		{"a timezone inside the cron expression is refused", "night", "CRON_TZ=Nope/Nope 0 22 * * *", "UTC",
			`schedule "night": cron: "CRON_TZ=Nope/Nope 0 22 * * *": give the timezone in timezone:`},
		{"a bad TZ= prefix is refused", "night", "TZ=Nope/Nope 0 22 * * *", "UTC",
			`schedule "night": cron: "TZ=Nope/Nope 0 22 * * *": give the timezone in timezone:`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "rules.yaml")
			write(t, path, fmt.Sprintf(file, tt.schedule, tt.cron, tt.zone))
			var stdout, stderr bytes.Buffer
			code := run([]string{"check", "--rules", path}, &stdout, &stderr)
			if code != 1 {
				t.Errorf("exit code %d, want 1", code)
			}
			if !strings.Contains(stderr.String(), path+":3: "+tt.want) {
				t.Errorf("stderr:\n%s\nwant the file, line and %q", stderr.String(), tt.want)
			}
			if strings.Contains(stderr.String(), "panic") {
				t.Errorf("stderr mentions a panic:\n%s", stderr.String())
			}
		})
	}
}

func TestCheckNamesABadScheduleSetting(t *testing.T) {
	tests := []struct {
		name, section, want string
	}{
		{"a catch_up below a minute is refused", "schedule:\n  catch_up: 10s\n", "schedule.catch_up: 10s must be between 1m and 24h"},
		{"a reconcile_every above a day is refused", "schedule:\n  reconcile_every: 48h\n", "schedule.reconcile_every: 48h0m0s must be between 30s and 24h"},
		{"an unknown key is refused", "schedule:\n  catchup: 1h\n", "catchup"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			write(t, filepath.Join(dir, "rules.yaml"), "version: 1\n")
			write(t, filepath.Join(dir, "config.yaml"), "tencent:\n  sdk_app_id: 1400000000\nrules_file: rules.yaml\n"+tt.section)
			var stdout, stderr bytes.Buffer
			if code := run([]string{"check", "--config", filepath.Join(dir, "config.yaml")}, &stdout, &stderr); code != 1 {
				t.Errorf("exit code %d, want 1", code)
			}
			if !strings.Contains(stderr.String(), tt.want) {
				t.Errorf("stderr:\n%s\nwant %q", stderr.String(), tt.want)
			}
		})
	}
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}
