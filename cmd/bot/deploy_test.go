package main

// Deployment tests: the files operators copy (the compose example, the
// systemd unit) and the operator's documentation stay consistent with the
// bot they deploy. Docker, systemd and HAProxy do not run here; these
// tests check what can be checked without them.

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/timguard/timguard/config"
)

const repoRoot = "../.."

func readRepoFile(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repoRoot, path))
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func TestDeployTheComposeConfigAndRulesPassCheck(t *testing.T) {
	t.Setenv("TIMGUARD_CALLBACK_TOKEN", "compose-token")
	t.Setenv("TIMGUARD_PREVIOUS_CALLBACK_TOKEN", "")
	t.Setenv("TIMGUARD_SECRET_KEY", "compose-secret")
	t.Setenv("TIMGUARD_ADMIN_TOKEN", "compose-admin")
	t.Setenv("TIMGUARD_REDIS_URL", "redis://:compose-redis@redis:6379/0")
	var stdout, stderr bytes.Buffer
	path := filepath.Join(repoRoot, "deploy/compose/timguard/config.yaml")
	if code := run([]string{"check", "--config", path}, &stdout, &stderr); code != 0 {
		t.Fatalf("bot check of the compose config exited %d:\n%s%s", code, stdout.String(), stderr.String())
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Listen != ":8080" || cfg.Store.RedisURL == "" || cfg.Audit.File != "" || cfg.Callback.PreviousToken != "" {
		t.Errorf("compose config: listen %q, redis %v, audit file %q, previous token set %v",
			cfg.Listen, cfg.Store.RedisURL != "", cfg.Audit.File, cfg.Callback.PreviousToken != "")
	}
	// One state_dir per replica on the shared volume: the hostname tells them apart.
	t.Setenv("HOSTNAME", "bot-2")
	if cfg, err := config.Load(path); err != nil {
		t.Error(err)
	} else if cfg.StateDir != "/var/lib/timguard/bot-2" {
		t.Errorf("compose config for bot-2: state_dir %q, want /var/lib/timguard/bot-2", cfg.StateDir)
	}
}

func TestDeployTheComposeFileRunsTwoReplicasOfOneConfigOnOneRedis(t *testing.T) {
	var compose struct {
		Services map[string]map[string]any `yaml:"services"`
	}
	if err := yaml.Unmarshal([]byte(readRepoFile(t, "deploy/compose/docker-compose.yml")), &compose); err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	one, two := compose.Services["bot-1"], compose.Services["bot-2"]
	if one == nil || two == nil || compose.Services["redis"] == nil || compose.Services["lb"] == nil {
		t.Fatalf("services %v; want bot-1, bot-2, redis and lb", keys(compose.Services))
	}
	for _, k := range []string{"image", "volumes", "env_file", "environment", "read_only", "user", "stop_grace_period", "depends_on"} {
		if one[k] == nil || !equalYAML(t, one[k], two[k]) {
			t.Errorf("bot-1 and bot-2 differ in %s: %v and %v", k, one[k], two[k])
		}
	}
	env, _ := one["environment"].(map[string]any)
	if url, _ := env["TIMGUARD_REDIS_URL"].(string); !strings.Contains(url, "@redis:6379/") {
		t.Errorf("the replicas' TIMGUARD_REDIS_URL is %q, not the compose file's redis", url)
	}
	if vols := strings.Join(toStrings(one["volumes"]), " "); !strings.Contains(vols, "./timguard:/etc/timguard:ro") {
		t.Errorf("the replicas mount %s; want the directory ./timguard read-only (the watcher needs a directory)", vols)
	}
	grace, err := time.ParseDuration(one["stop_grace_period"].(string))
	if floor := 2*config.DefaultShutdownGrace + config.DefaultDeadline; err != nil || grace <= floor {
		t.Errorf("stop_grace_period %v, want more than %v (two shutdown graces and a callback)", one["stop_grace_period"], floor)
	}
	redis := strings.Join(toStrings(compose.Services["redis"]["command"]), " ")
	for _, want := range []string{"--appendonly yes", "--maxmemory-policy noeviction", "--requirepass"} {
		if !strings.Contains(redis, want) {
			t.Errorf("redis runs %q; want %s", redis, want)
		}
	}

	lb := readRepoFile(t, "deploy/compose/haproxy.cfg")
	for _, want := range []string{"server bot-1 bot-1:8080", "server bot-2 bot-2:8080", "uri /readyz",
		"retry-on conn-failure", "unless { path /callback } { method POST }"} {
		if !strings.Contains(lb, want) {
			t.Errorf("haproxy.cfg lacks %q", want)
		}
	}
}

func TestDeployTheSystemdUnitOutlastsAGracefulStop(t *testing.T) {
	unit := readRepoFile(t, "deploy/systemd/timguard.service")
	values := map[string][]string{}
	for _, line := range strings.Split(unit, "\n") {
		if k, v, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(line, "#") {
			values[k] = append(values[k], v)
		}
	}
	want := map[string]string{
		"ExecStart":       "/usr/local/bin/bot serve --config /etc/timguard/config.yaml",
		"ExecReload":      "/bin/kill -HUP $MAINPID",
		"EnvironmentFile": "/etc/timguard/timguard.env",
		"KillSignal":      "SIGTERM",
		"Restart":         "on-failure",
		"NoNewPrivileges": "yes",
		"ProtectSystem":   "strict",
		"User":            "timguard",
		"StateDirectory":  "timguard", // state_dir: /var/lib/timguard, writable under ProtectSystem
	}
	for k, v := range want {
		if !slices.Equal(values[k], []string{v}) {
			t.Errorf("%s=%v, want %s", k, values[k], v)
		}
	}
	stop, err := time.ParseDuration(strings.Join(values["TimeoutStopSec"], ""))
	if floor := 2*config.DefaultShutdownGrace + config.DefaultDeadline; err != nil || stop <= floor {
		t.Errorf("TimeoutStopSec=%v, want more than %v", values["TimeoutStopSec"], floor)
	}
}

// mdLink matches a Markdown link's target.
var mdLink = regexp.MustCompile(`\]\(([^)\s]+)\)`)

func TestDocsRelativeLinksPointToFilesAndHeadings(t *testing.T) {
	docs, err := filepath.Glob(filepath.Join(repoRoot, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	docs = append(docs, filepath.Join(repoRoot, "README.md"), filepath.Join(repoRoot, "deploy/compose/README.md"))
	for _, doc := range docs {
		data, err := os.ReadFile(doc)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range mdLink.FindAllStringSubmatch(string(data), -1) {
			target := m[1]
			if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			file, anchor, _ := strings.Cut(target, "#")
			path := doc
			if file != "" {
				path = filepath.Join(filepath.Dir(doc), file)
			}
			if _, err := os.Stat(path); err != nil {
				t.Errorf("%s links to %s, which does not exist", doc, target)
				continue
			}
			if anchor != "" && strings.HasSuffix(path, ".md") && !slices.Contains(headingAnchors(t, path), anchor) {
				t.Errorf("%s links to %s: %s has no heading with that anchor", doc, target, path)
			}
		}
	}
}

// headingAnchors returns the anchors GitHub gives the headings of a
// Markdown file (outside code blocks).
func headingAnchors(t *testing.T, path string) []string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	fenced := false
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, "```") {
			fenced = !fenced
			continue
		}
		if fenced || !strings.HasPrefix(line, "#") {
			continue
		}
		title := strings.ToLower(strings.TrimSpace(strings.TrimLeft(line, "#")))
		var b strings.Builder
		for _, r := range title {
			switch {
			case r == ' ':
				b.WriteRune('-')
			case r == '-' || r == '_' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r > 127:
				b.WriteRune(r)
			}
		}
		out = append(out, b.String())
	}
	return out
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func toStrings(v any) []string {
	list, _ := v.([]any)
	out := make([]string, 0, len(list))
	for _, x := range list {
		s, _ := x.(string)
		out = append(out, s)
	}
	return out
}

func equalYAML(t *testing.T, a, b any) bool {
	t.Helper()
	x, err := yaml.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	y, err := yaml.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Equal(x, y)
}
