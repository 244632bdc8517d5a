package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestMain lets the test binary serve the bare handler too: loadgen starts
// it by running its own binary with the bare-server command.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case bareCommand:
			os.Exit(serveBare(os.Args[2:], os.Stdout, os.Stderr))
		case floorCommand:
			os.Exit(serveFloor(os.Args[2:], os.Stdout, os.Stderr))
		}
	}
	os.Exit(m.Run())
}

// TestLoadgenRunsEndToEnd runs the whole command briefly: it builds the bot,
// starts Redis (or uses REDIS_URL), the fake IM server, the bot, the bare
// and the floor handler, sends the open loop and two closed-loop rounds to
// each, and prints a JSON report.
func TestLoadgenRunsEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the bot; skipped with -short")
	}
	if _, err := exec.LookPath("redis-server"); err != nil && os.Getenv("REDIS_URL") == "" {
		msg := "redis-server is not on PATH and REDIS_URL is not set (apt-get install redis-server)"
		if os.Getenv("TIMGUARD_REQUIRE_REDIS") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var out, log bytes.Buffer
	code := run(ctx, []string{"-rate", "200", "-concurrency", "4", "-connections", "8", "-duration", "1s", "-warmup", "200ms",
		"-run-warmup", "100ms", "-pairs", "2", "-groups", "20", "-users", "100", "-json"}, &out, &log)
	if code != 0 {
		t.Fatalf("loadgen exited %d:\n%s", code, log.String())
	}
	var rep report
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("the report is not JSON: %v\n%s", err, out.String())
	}
	if len(rep.Runs) != 9 {
		t.Fatalf("%d runs, want the open loop and two closed-loop rounds against the bot, the bare and the floor handler:\n%s", len(rep.Runs), out.String())
	}
	for _, r := range rep.Runs {
		if r.Answered == 0 || r.Errors+r.Non2xx+r.BadEnvelope > 0 || r.Latency.P50 <= 0 {
			t.Errorf("run %s against %s: %+v", r.Name, r.Target, *r.Stats)
		}
		if r.Target == "bot" && (r.Actions == nil || r.Actions.Unsettled != "") {
			t.Errorf("run %s against the bot: actions %+v", r.Name, r.Actions)
		}
		if _, err := os.Stat("/proc/self/stat"); err == nil {
			if _, ok := r.CPU.PerCallback["server"]; r.CPU == nil || !ok {
				t.Errorf("run %s against %s: no CPU per callback of the server: %+v", r.Name, r.Target, r.CPU)
			}
		}
	}
	if len(rep.Closed) != 3 || len(rep.Ratios) != 2 || len(rep.Targets) < 3 || rep.Machine.CPUs == 0 || rep.Machine.Redis == "" {
		t.Errorf("report %+v", rep)
	}
	for _, rt := range rep.Ratios {
		if rt.Median <= 0 || len(rt.Rounds) != 2 {
			t.Errorf("ratio %+v, want the median of two rounds", rt)
		}
	}
	for _, want := range []string{"against the bare", "against the floor", "warming up the bot"} {
		if !strings.Contains(log.String(), want) {
			t.Errorf("progress log without %q:\n%s", want, log.String())
		}
	}
	var text bytes.Buffer
	if err := rep.writeText(&text); err != nil || !strings.Contains(text.String(), "bot/floor") {
		t.Errorf("text report (%v):\n%s", err, text.String())
	}
}
