//go:build unix

package app

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/timguard/timguard/internal/redistest"
	"github.com/timguard/timguard/record"
	"github.com/timguard/timguard/replay"
	"github.com/timguard/timguard/tim"
	"github.com/timguard/timguard/tim/timtest"
)

// TestE2ERecordedTrafficReplaysAgainstAChangedRuleFile: a bot with
// record: on, real Redis and the fake IM server takes a flood, spam that
// escalates to a kick, and an admin who floods; then `bot replay` of the
// recordings against the same rules changes nothing (the recorded state
// reproduces every decision), and against a changed rule file lists
// exactly the decisions the change makes differently: the flood rule's
// new threshold (which needs the recorded counter), the spam rule's new
// reply text (a reply-only change), and the stricter escalation (which
// needs the recorded strikes).
func TestE2ERecordedTrafficReplaysAgainstAChangedRuleFile(t *testing.T) {
	im := timtest.New(timtest.Options{})
	t.Cleanup(im.Close)
	url := redistest.URL(t)
	b := startApp(t, im, botConfig{
		token: e2eToken, imURL: im.URL(), rateLimit: 50, redisURL: url, prefix: keyPrefix(t, url), executor: fastRetries,
		record: "  enabled: true\n  dir: recordings\n  text: keep\n  events: [message, member_joined]\n",
	}, e2eRules, nil, nil)
	im.AddGroup(timtest.Group{ID: e2eGroup, Type: "Public", Owner: "olga", Admins: []string{"adam"}, Members: []string{"frank", "eve", "carol"}})
	for i := range 7 {
		b.message(e2eGroup, "frank", fmt.Sprintf("hello %d", i))
	}
	for i := range 3 {
		if r := b.message(e2eGroup, "eve", fmt.Sprintf("free crypto %d", i)); r.ErrorCode != 10101 {
			t.Fatalf("spam %d answered %+v", i, r)
		}
	}
	for i := range 7 {
		b.message(e2eGroup, "adam", fmt.Sprintf("announcement %d", i))
	}
	b.joined(e2eWave, []string{"nina", "omar"})
	// A kind not configured for recording.
	b.callback(tim.CmdBeforeApplyJoinGroup, map[string]any{"GroupId": e2eGroup, "Type": "Public", "Requestor_Account": "zed"})
	b.settle(60*time.Second, nil)
	b.stop()

	recDir := filepath.Join(b.dir, "recordings")
	files, err := record.Files(recDir, time.Time{})
	if err != nil || len(files) == 0 {
		t.Fatalf("recording files %v, %v", files, err)
	}
	var entries []record.Entry
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		r := record.NewReader(bytes.NewReader(data))
		for {
			e, err := r.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			entries = append(entries, e)
		}
	}
	if len(entries) != 18 {
		t.Fatalf("%d entries recorded, want 17 messages and 1 join (no join request)", len(entries))
	}
	sixth := entries[5].State.Subjects["frank"]
	if sixth.Counters["user_msgs_10s"] != 6 {
		t.Errorf("frank's 6th message recorded with %+v, want user_msgs_10s 6", sixth)
	}
	if s := entries[9].State.Subjects["eve"]; s.Strikes != 2 {
		t.Errorf("eve's third spam recorded with %+v, want 2 strikes", s)
	}
	if s := entries[10].State.Subjects["adam"]; s.Role != "admin" {
		t.Errorf("adam's message recorded with %+v, want the admin role", s)
	}

	cfgPath := filepath.Join(b.dir, "config.yaml")
	run := botCommand(t)
	replayJSON := func(rulesPath string) ([]replay.Change, string) {
		t.Helper()
		var stdout, stderr bytes.Buffer
		if code := run([]string{"replay", "--config", cfgPath, "--rules", rulesPath, "--json"}, &stdout, &stderr); code != 0 {
			t.Fatalf("bot replay exit %d\n%s", code, stderr.String())
		}
		var out []replay.Change
		for _, line := range strings.Split(strings.TrimSpace(stdout.String()), "\n") {
			if line == "" {
				continue
			}
			var c replay.Change
			if err := json.Unmarshal([]byte(line), &c); err != nil {
				t.Fatalf("output line %q: %v", line, err)
			}
			out = append(out, c)
		}
		return out, stderr.String()
	}

	same, summary := replayJSON(filepath.Join(b.dir, "rules.yaml"))
	if len(same) != 0 || !strings.Contains(summary, "replayed 18 events (19 decisions)") || strings.Contains(summary, "not reproduced") ||
		strings.Contains(summary, "no recorded state") {
		t.Errorf("replaying the rules in force: changes %+v\n%s", same, summary)
	}

	changed := strings.NewReplacer(
		"if: counters.user_msgs_10s > 5", "if: counters.user_msgs_10s > 6",
		`text: "Blocked words are not allowed here."`, `text: "Crypto offers are not allowed here."`,
		"if: user.strikes >= 3", "if: user.strikes >= 2",
	).Replace(e2eRules)
	if changed == e2eRules {
		t.Fatal("the rule change did not apply")
	}
	candidate := filepath.Join(b.dir, "candidate.yaml")
	write(t, candidate, changed)
	changes, summary := replayJSON(candidate)
	type seen struct {
		user   string
		line   int
		fields string
	}
	var got []seen
	for _, c := range changes {
		got = append(got, seen{c.User, c.Line, strings.Join(c.Fields, ",")})
	}
	want := []seen{
		{"frank", 6, "rules,actions"},     // the 6th message no longer floods
		{"eve", 8, "reply"},               // the reply alone changes
		{"eve", 9, "reply,rules,actions"}, // two strikes now kick
		{"eve", 10, "reply"},              // kicked either way; the reply changes
	}
	if !slices.Equal(got, want) {
		t.Fatalf("changes %+v\nwant %+v\n%s", got, want, summary)
	}
	if c := changes[1]; c.Current.ReplyText != "Blocked words are not allowed here." || c.Candidate.ReplyText != "Crypto offers are not allowed here." || c.Candidate.ReplyCode != 10101 {
		t.Errorf("the reply change side by side: %+v | %+v", c.Current, c.Candidate)
	}
	if c := changes[2]; !slices.Contains(c.Candidate.Actions, `kick "Repeated violations"`) || slices.Contains(c.Current.Actions, `kick "Repeated violations"`) {
		t.Errorf("the escalation side by side: %+v | %+v", c.Current, c.Candidate)
	}
	if !strings.Contains(summary, "4 decisions change") {
		t.Errorf("summary: %s", summary)
	}

	// The same callbacks without their recorded state (the counters at 1)
	// miss the flood change: that is what recording the state is for.
	var bodies bytes.Buffer
	for _, e := range entries {
		bodies.Write(e.Body)
		bodies.WriteByte('\n')
	}
	events := filepath.Join(b.dir, "bodies.jsonl")
	write(t, events, bodies.String())
	var stdout, stderr bytes.Buffer
	run([]string{"replay", "--config", cfgPath, "--rules", candidate, "--events", events}, &stdout, &stderr)
	if strings.Contains(stdout.String(), "user frank") {
		t.Errorf("a replay with counters at 1 saw the flood change:\n%s", stdout.String())
	}
}
