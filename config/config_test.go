package config_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/timguard/timguard/config"
	"github.com/timguard/timguard/internal/yamlx"
)

// vars is a getenv for Parse that reads only the given map.
func vars(m map[string]string) func(string) (string, bool) {
	return func(name string) (string, bool) {
		v, ok := m[name]
		return v, ok
	}
}

var noEnv = vars(nil)

// problems returns the problems of a Parse error, failing when err is not a
// *yamlx.Error for file.
func problems(t *testing.T, err error, file string) []yamlx.Problem {
	t.Helper()
	var ye *yamlx.Error
	if !errors.As(err, &ye) {
		t.Fatalf("Parse error is %T (%v), want *yamlx.Error", err, err)
	}
	if ye.File != file {
		t.Errorf("Error.File = %q, want %q", ye.File, file)
	}
	if len(ye.Problems) == 0 {
		t.Error("Error has no problems")
	}
	return ye.Problems
}

func readFile(t testing.TB, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestTheExampleConfigLoads(t *testing.T) {
	env := vars(map[string]string{
		"TIMGUARD_CALLBACK_TOKEN": "cb-token",
		"TIMGUARD_SECRET_KEY":     "secret-key",
		"TIMGUARD_ADMIN_TOKEN":    "admin-token",
		"TIMGUARD_REDIS_URL":      "redis://:pw@localhost:6379/0",
	})
	c, err := config.Parse("../config.example.yaml", readFile(t, "../config.example.yaml"), env)
	if err != nil {
		t.Fatalf("the example config does not load:\n%v", err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"listen", c.Listen, ":8080"},
		{"callback.path", c.Callback.Path, "/callback"},
		{"callback.token", c.Callback.Token.Reveal(), "cb-token"},
		{"callback.max_clock_skew", c.Callback.MaxClockSkew.D(), 60 * time.Second},
		{"callback.deadline", c.Callback.Deadline.D(), 1500 * time.Millisecond},
		{"tencent.sdk_app_id", c.Tencent.SDKAppID, uint64(1400000000)},
		{"tencent.admin", c.Tencent.Admin, "administrator"},
		{"tencent.secret_key", c.Tencent.SecretKey.Reveal(), "secret-key"},
		{"tencent.rate_limit", c.Tencent.RateLimit, 200},
		{"store.redis_url", c.Store.RedisURL.Reveal(), "redis://:pw@localhost:6379/0"},
		{"admin.token", c.Admin.Token.Reveal(), "admin-token"},
		{"rules path", c.RulesPath(), filepath.Join("..", "rules.example.yaml")},
		{"audit path", c.AuditPath(), ""},
		{"REST enabled", c.Tencent.RESTEnabled(), true},
		{"file", c.File, "../config.example.yaml"},
		{"http.max_connections", c.HTTP.MaxConnections, 1024},
		{"http.read_timeout", c.HTTP.ReadTimeout.D(), 5 * time.Second},
		{"http.idle_timeout", c.HTTP.IdleTimeout.D(), 30 * time.Second},
	}
	for _, ch := range checks {
		if ch.got != ch.want {
			t.Errorf("%s = %#v, want %#v", ch.name, ch.got, ch.want)
		}
	}
}

func TestTheExampleConfigLoadsWithNoEnvironment(t *testing.T) {
	c, err := config.Parse("config.example.yaml", readFile(t, "../config.example.yaml"), noEnv)
	if err != nil {
		t.Fatalf("the example config without any variable set does not load:\n%v", err)
	}
	if c.Callback.Token != "" || c.Store.RedisURL != "" || c.Tencent.RESTEnabled() {
		t.Errorf("unset variables should leave the secrets empty: token %q redis %q", c.Callback.Token.Reveal(), c.Store.RedisURL.Reveal())
	}
}

func TestLoadReadsTheFileAndTheProcessEnvironment(t *testing.T) {
	t.Setenv("TIMGUARD_SECRET_KEY", "from-os")
	c, err := config.Load("../config.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Tencent.SecretKey.Reveal(); got != "from-os" {
		t.Errorf("secret_key = %q, want the process environment's from-os", got)
	}
	if _, err := config.Load(filepath.Join(t.TempDir(), "missing.yaml")); err == nil || !strings.Contains(err.Error(), "missing.yaml") {
		t.Errorf("Load of a missing file = %v, want an error naming the file", err)
	}
}

func TestParseAppliesDefaultsForAbsentKeys(t *testing.T) {
	c, err := config.Parse("testdata/minimal.yaml", readFile(t, "testdata/minimal.yaml"), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"listen", c.Listen, config.DefaultListen},
		{"callback.path", c.Callback.Path, config.DefaultCallbackPath},
		{"callback.max_clock_skew", c.Callback.MaxClockSkew.D(), config.DefaultMaxClockSkew},
		{"callback.max_body_bytes", c.Callback.MaxBodyBytes, int64(config.DefaultMaxBodyBytes)},
		{"callback.deadline", c.Callback.Deadline.D(), config.DefaultDeadline},
		{"tencent.api_base", c.Tencent.APIBase, config.DefaultAPIBase},
		{"tencent.rate_limit", c.Tencent.RateLimit, config.DefaultRateLimit},
		{"tencent.timeout", c.Tencent.Timeout.D(), config.DefaultRESTTimeout},
		{"tencent.timeout is 5s", c.Tencent.Timeout.D(), 5 * time.Second},
		{"executor.live_group_warn", c.Executor.LiveGroupWarn, config.LiveGroupWarnMention},
		{"no timeout warning", c.Tencent.ServerTimeoutWarning(), ""},
		{"store.key_prefix", c.Store.KeyPrefix, config.DefaultKeyPrefix},
		{"store.timeout", c.Store.Timeout.D(), config.DefaultStoreTimeout},
		{"store.batch.max_size", c.Store.Batch.MaxSize, config.DefaultBatchMaxSize},
		{"store.batch.max_wait", c.Store.Batch.MaxWait.D(), time.Duration(0)},
		{"rules_file", c.RulesFile, config.DefaultRulesFile},
		{"log.level", c.Log.Level, "info"},
		{"log.format", c.Log.Format, "json"},
		{"dry_run", c.DryRun, false},
		{"REST enabled", c.Tencent.RESTEnabled(), false},
		{"callback tokens", len(c.CallbackTokens()), 0},
		{"http.max_connections", c.HTTP.MaxConnections, config.DefaultMaxConnections},
		{"http.read_timeout", c.HTTP.ReadTimeout.D(), config.DefaultReadTimeout},
		{"http.idle_timeout", c.HTTP.IdleTimeout.D(), config.DefaultIdleTimeout},
	}
	for _, ch := range checks {
		if ch.got != ch.want {
			t.Errorf("%s = %#v, want the default %#v", ch.name, ch.got, ch.want)
		}
	}
}

// TestATimeoutNotAboveTheServersIsWarnedAbout: the IM server works on a
// call for up to 3 s and asks clients to wait longer.
func TestATimeoutNotAboveTheServersIsWarnedAbout(t *testing.T) {
	for _, tt := range []struct {
		timeout string
		warn    bool
	}{{"1s", true}, {"3s", true}, {"3001ms", false}, {"5s", false}} {
		c, err := config.Parse("c.yaml", []byte("tencent:\n  sdk_app_id: 1\n  timeout: "+tt.timeout+"\n"), noEnv)
		if err != nil {
			t.Fatal(err)
		}
		w := c.Tencent.ServerTimeoutWarning()
		if (w != "") != tt.warn || (tt.warn && !strings.Contains(w, "tencent.timeout "+tt.timeout+" is not above the IM server's own 3s")) {
			t.Errorf("timeout %s: warning %q", tt.timeout, w)
		}
	}
}

func TestParseKeepsTheValuesGiven(t *testing.T) {
	src := `
listen: "127.0.0.1:9000"
callback:
  path: /hooks/im
  max_clock_skew: 30s
  max_body_bytes: 2048
  deadline: 1s
tencent:
  sdk_app_id: 1400000001
  api_base: http://localhost:8081
  rate_limit: 100000
  timeout: 2s
dry_run: true
store:
  key_prefix: "tg:"
  timeout: 1s
rules_file: /etc/timguard/rules.yaml
state_dir: /var/lib/timguard
log: {level: debug, format: text}
http: {max_connections: 64, read_timeout: 2s, idle_timeout: 1m}
`
	c, err := config.Parse("c.yaml", []byte(src), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen != "127.0.0.1:9000" || c.Callback.Path != "/hooks/im" || c.Callback.MaxClockSkew.D() != 30*time.Second ||
		c.Callback.MaxBodyBytes != 2048 || c.Callback.Deadline.D() != time.Second || c.Tencent.SDKAppID != 1400000001 ||
		c.Tencent.APIBase != "http://localhost:8081" || c.Tencent.RateLimit != 100000 || c.Tencent.Timeout.D() != 2*time.Second ||
		!c.DryRun || c.Store.KeyPrefix != "tg:" || c.Store.Timeout.D() != time.Second || c.RulesPath() != "/etc/timguard/rules.yaml" ||
		c.Log.Level != "debug" || c.Log.Format != "text" ||
		c.HTTP.MaxConnections != 64 || c.HTTP.ReadTimeout.D() != 2*time.Second || c.HTTP.IdleTimeout.D() != time.Minute ||
		c.StatePath() != "/var/lib/timguard" {
		t.Errorf("values were not kept: %+v", c)
	}
}

func TestParseRefusesBadValuesNamingKeyAndValue(t *testing.T) {
	const app = "tencent:\n  sdk_app_id: 1400000000\n"
	tests := []struct {
		name string
		src  string
		key  string
		want string // the refused value (and why) in the message
	}{
		{"a listen address without a port", app + `listen: "8080"`, "listen", `"8080" is not host:port`},
		{"a listen port above 65535", app + `listen: ":70000"`, "listen", `":70000" is not host:port (port "70000" is not a number`},
		{"a callback path without a leading slash", app + "callback: {path: callback}", "callback.path", `"callback" must start with /`},
		{"the health check path as callback path", app + "callback: {path: /healthz}", "callback.path", `"/healthz" is used by the bot itself (/healthz)`},
		{"the readiness path as callback path", app + "callback: {path: /readyz}", "callback.path", `"/readyz" is used by the bot itself (/readyz)`},
		{"the metrics path as callback path", app + "callback: {path: /metrics}", "callback.path", `"/metrics" is used by the bot itself (/metrics)`},
		{"a path under the admin API as callback path", app + "callback: {path: /v1/callback}", "callback.path", `"/v1/callback" is used by the bot itself (/v1)`},
		{"the admin API root as callback path", app + "callback: {path: /v1}", "callback.path", `"/v1" is used by the bot itself (/v1)`},
		{"a previous token without a token", app + "callback: {previous_token: old}", "callback.previous_token", "is set but callback.token is empty"},
		{"a body limit below 1024 bytes", app + "callback: {max_body_bytes: 1023}", "callback.max_body_bytes", "1023 is too small"},
		{"a negative body limit", app + "callback: {max_body_bytes: -1}", "callback.max_body_bytes", "-1 is too small"},
		{"a deadline of exactly 2s", app + "callback: {deadline: 2s}", "callback.deadline", "2s must be above 0 and below the IM server's 2s"},
		{"a deadline above 2s", app + "callback: {deadline: 5s}", "callback.deadline", "5s must be above 0"},
		{"a negative deadline", app + "callback: {deadline: -1s}", "callback.deadline", "-1s must be above 0"},
		{"a negative clock skew", app + "callback: {max_clock_skew: -1s}", "callback.max_clock_skew", "-1s must not be negative"},
		{"a missing sdk_app_id", "listen: \":8080\"", "tencent.sdk_app_id", "is required"},
		{"a zero sdk_app_id", "tencent: {sdk_app_id: 0}", "tencent.sdk_app_id", "is required"},
		{"a secret key without the admin account", "tencent: {sdk_app_id: 1, secret_key: k}", "tencent.admin", "is required when tencent.secret_key is set"},
		{"an api_base with another scheme", app + "  api_base: ftp://example.com", "tencent.api_base", `"ftp://example.com" is not an http(s) URL`},
		{"an api_base without a scheme", app + "  api_base: adminapisgp.im.qcloud.com", "tencent.api_base", `"adminapisgp.im.qcloud.com" is not an http(s) URL`},
		{"an api_base without a host", app + "  api_base: https://", "tencent.api_base", `"https://" is not an http(s) URL`},
		{"an http api_base to the IM server", app + "  api_base: http://adminapisgp.im.qcloud.com", "tencent.api_base", `"http://adminapisgp.im.qcloud.com" uses http: the REST API is served over HTTPS only`},
		{"an http api_base to a private address", app + "  api_base: http://10.1.2.3:8080", "tencent.api_base", `"http://10.1.2.3:8080" uses http`},
		{"an unknown live_group_warn", app + "executor: {live_group_warn: notice}", "executor.live_group_warn", `"notice" must be mention or skip`},
		{"a negative rate limit", app + "  rate_limit: -1", "tencent.rate_limit", "-1 must be between 1 and 100000"},
		{"a rate limit above 100000", app + "  rate_limit: 100001", "tencent.rate_limit", "100001 must be between 1 and 100000"},
		{"a negative REST timeout", app + "  timeout: -1s", "tencent.timeout", "-1s must be positive"},
		{"a redis_url with another scheme", app + "store: {redis_url: \"memcached://cache:11211\"}", "store.redis_url", `scheme is not redis`},
		{"a redis_url without a scheme", app + "store: {redis_url: \"cache\"}", "store.redis_url", `scheme is not redis`},
		{"a redis_url without a host", app + "store: {redis_url: \"redis://\"}", "store.redis_url", "has no host"},
		{"a unix redis_url without a socket path", app + "store: {redis_url: \"unix://\"}", "store.redis_url", "has no socket path"},
		{"a redis_url with protocol=1", app + "store: {redis_url: \"redis://cache:6379/0?protocol=1\"}", "store.redis_url", `protocol="1": want 2 or 3`},
		{"a redis_url with an empty protocol", app + "store: {redis_url: \"redis-cluster://c1:7000?addr=c2:7001&protocol=\"}", "store.redis_url", `protocol="": want 2 or 3`},
		{"a redis_url naming protocol twice", app + "store: {redis_url: \"redis://cache:6379/0?protocol=3&protocol=1\"}", "store.redis_url", "protocol= is given more than once"},
		{"a redis_url that is not a URL", app + "store: {redis_url: \"redis://h:port\"}", "store.redis_url", "is not a URL"},
		{"a negative store timeout", app + "store: {timeout: -1s}", "store.timeout", "-1s must be positive"},
		{"a negative batch size", app + "store: {batch: {max_size: -1}}", "store.batch.max_size", "-1 must be between 1 (no batching) and 1024"},
		{"a batch size above 1024", app + "store: {batch: {max_size: 1025}}", "store.batch.max_size", "1025 must be between 1"},
		{"a negative batch wait", app + "store: {batch: {max_wait: -1ms}}", "store.batch.max_wait", "-1ms must be between 0 and a tenth of store.timeout (250ms)"},
		{"a batch wait above a tenth of the store timeout", app + "store: {timeout: 100ms, batch: {max_wait: 11ms}}", "store.batch.max_wait", "11ms must be between 0"},
		{"a key prefix with an opening brace", app + "store: {key_prefix: \"{tg:\"}", "store.key_prefix", `"{tg:" must not contain braces`},
		{"a key prefix with a closing brace", app + "store: {key_prefix: \"tg}:\"}", "store.key_prefix", `"tg}:" must not contain braces`},
		{"an unknown log level", app + "log: {level: loud}", "log.level", `"loud" is not debug, info, warn or error`},
		{"an unknown log format", app + "log: {format: xml}", "log.format", `"xml" must be json or text`},
		{"too few connections", app + "http: {max_connections: 3}", "http.max_connections", "3 must be between 16 and 1000000"},
		{"a negative connection limit", app + "http: {max_connections: -1}", "http.max_connections", "-1 must be between 16"},
		{"a read timeout under 100ms", app + "http: {read_timeout: 50ms}", "http.read_timeout", "50ms must be between 100ms and 1m"},
		{"a read timeout over a minute", app + "http: {read_timeout: 2m}", "http.read_timeout", "2m0s must be between 100ms and 1m"},
		{"an idle timeout under a second", app + "http: {idle_timeout: 500ms}", "http.idle_timeout", "500ms must be between 1s and 10m"},
		{"an idle timeout over ten minutes", app + "http: {idle_timeout: 1h}", "http.idle_timeout", "1h0m0s must be between 1s and 10m"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := config.Parse("c.yaml", []byte(tt.src), noEnv)
			if err == nil {
				t.Fatalf("Parse accepted it: %+v", c)
			}
			if c != nil {
				t.Error("Parse returned a config along with the error")
			}
			found := false
			for _, p := range problems(t, err, "c.yaml") {
				if p.Path == tt.key && strings.Contains(p.Reason, tt.want) {
					found = true
				}
			}
			if !found {
				t.Errorf("no problem for %s containing %q in:\n%v", tt.key, tt.want, err)
			}
			if line := "c.yaml: " + tt.key + ": "; !strings.Contains(err.Error(), line) {
				t.Errorf("message does not start a line with %q:\n%v", line, err)
			}
		})
	}
}

func TestParseAcceptsGoodEdgeValues(t *testing.T) {
	const app = "tencent:\n  sdk_app_id: 1400000000\n"
	tests := []struct{ name, src string }{
		{"an IPv6 listen address", app + `listen: "[::1]:8080"`},
		{"a listen address with a host name", app + `listen: "localhost:0"`},
		{"a callback path that only starts like a reserved one", app + "callback: {path: /v1x}"},
		{"a callback path below another path", app + "callback: {path: /im/callback}"},
		{"a previous token beside the new one", app + "callback: {token: new, previous_token: old}"},
		{"a body limit of exactly 1024 bytes", app + "callback: {max_body_bytes: 1024}"},
		{"a deadline just below 2s", app + "callback: {deadline: 1999ms}"},
		{"a rate limit of 1", app + "  rate_limit: 1"},
		{"a plain redis URL with a password", app + "store: {redis_url: \"redis://user:pw@localhost:6379/0\"}"},
		{"a TLS redis URL", app + "store: {redis_url: \"rediss://localhost:6380\"}"},
		{"a sentinel URL", app + "store: {redis_url: \"redis-sentinel://s1:26379/0?master_name=m\"}"},
		{"a cluster URL", app + "store: {redis_url: \"redis-cluster://c1:7000?addr=c2:7001\"}"},
		{"a TLS cluster URL, which store/redis reads", app + "store: {redis_url: \"rediss-cluster://c1:7000?addr=c2:7001\"}"},
		{"a TLS sentinel URL, which store/redis reads", app + "store: {redis_url: \"rediss-sentinel://s1:26379/0?master_name=m\"}"},
		{"a unix socket", app + "store: {redis_url: \"unix:///var/run/redis.sock\"}"},
		{"a redis URL asking for RESP3", app + "store: {redis_url: \"redis://localhost:6379/0?protocol=3\"}"},
		{"a cluster URL asking for RESP2", app + "store: {redis_url: \"redis-cluster://c1:7000?addr=c2:7001&protocol=2\"}"},
		{"upper-case log level", app + "log: {level: WARN}"},
		{"the error log level", app + "log: {level: error}"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := config.Parse("c.yaml", []byte(tt.src), noEnv); err != nil {
				t.Errorf("Parse refused it:\n%v", err)
			}
		})
	}
}

func TestParseReportsEveryProblemAtOnce(t *testing.T) {
	_, err := config.Parse("testdata/every-problem.yaml", readFile(t, "testdata/every-problem.yaml"), noEnv)
	ps := problems(t, err, "testdata/every-problem.yaml")
	keys := map[string]bool{}
	for _, p := range ps {
		keys[p.Path] = true
	}
	want := []string{
		"listen", "callback.path", "callback.previous_token", "callback.max_body_bytes", "callback.deadline",
		"callback.max_clock_skew", "tencent.sdk_app_id", "tencent.admin", "tencent.api_base", "tencent.rate_limit",
		"tencent.timeout", "store.redis_url", "store.timeout", "store.key_prefix", "log.level", "log.format",
	}
	for _, k := range want {
		if !keys[k] {
			t.Errorf("no problem reported for %s", k)
		}
	}
	if len(ps) != len(want) {
		t.Errorf("got %d problems, want %d:\n%v", len(ps), len(want), err)
	}
	for _, secret := range []string{"hunter2pw", "s3cr3t", "old-token"} {
		if strings.Contains(err.Error(), secret) {
			t.Errorf("the message shows the secret %q:\n%v", secret, err)
		}
	}
}

func TestParseReportsEveryDecodingProblemWithItsLine(t *testing.T) {
	src := `callback:
  deadline: 3
  max_clock_skew: soon
tencent:
  sdk_app_id: abc
  rate_limit: many
  timeout: [1s]
store:
  timeout: 1x
`
	_, err := config.Parse("c.yaml", []byte(src), noEnv)
	got := problems(t, err, "c.yaml")
	want := []yamlx.Problem{
		{Line: 2, Reason: `"3" is not a duration such as 10s or 1m`},
		{Line: 3, Reason: `"soon" is not a duration such as 10s or 1m`},
		{Line: 5, Reason: "cannot unmarshal !!str `abc` into uint64"},
		{Line: 6, Reason: "cannot unmarshal !!str `many` into int"},
		{Line: 7, Reason: "a duration such as 10s or 1m is required"},
		{Line: 9, Reason: `"1x" is not a duration such as 10s or 1m`},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("problems:\n got %v\nwant %v", got, want)
	}
}

func TestParseRefusesUnknownKeysNamingThem(t *testing.T) {
	_, err := config.Parse("testdata/unknown-keys.yaml", readFile(t, "testdata/unknown-keys.yaml"), noEnv)
	got := problems(t, err, "testdata/unknown-keys.yaml")
	want := []yamlx.Problem{
		{Line: 1, Path: "callbak", Reason: `unknown key (did you mean "callback"?)`},
		{Line: 5, Path: "tencent.secretkey", Reason: `unknown key (did you mean "secret_key"?)`},
		{Line: 8, Path: "store.redis", Reason: "unknown key"},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("problems:\n got %v\nwant %v", got, want)
	}
	for _, line := range []string{
		`testdata/unknown-keys.yaml: line 1: callbak: unknown key (did you mean "callback"?)`,
		`testdata/unknown-keys.yaml: line 5: tencent.secretkey: unknown key (did you mean "secret_key"?)`,
	} {
		if !strings.Contains(err.Error(), line) {
			t.Errorf("message lacks %q:\n%v", line, err)
		}
	}
}

func TestParseExpandsEnvironmentThroughGetenv(t *testing.T) {
	// The process environment must not be read: only the getenv given.
	t.Setenv("TIMGUARD_SECRET_KEY", "from-the-process")
	secret := func(c *config.Config) string {
		return c.Tencent.SecretKey.Reveal() + "|" + fmt.Sprint(c.Tencent.RESTEnabled())
	}
	token := func(c *config.Config) string { return c.Callback.Token.Reveal() + "|" + c.Callback.Path }
	tests := []struct {
		name string
		src  string
		env  map[string]string
		got  func(c *config.Config) string
		want string
	}{
		{
			name: "the secret key comes from getenv and not from the process",
			src:  "tencent:\n  sdk_app_id: 1\n  admin: administrator\n  secret_key: ${TIMGUARD_SECRET_KEY}\n",
			env:  map[string]string{"TIMGUARD_SECRET_KEY": "from-getenv"},
			got:  secret,
			want: "from-getenv|true",
		},
		{
			name: "an unset variable leaves the secret empty even when the process has it",
			src:  "tencent:\n  sdk_app_id: 1\n  secret_key: ${TIMGUARD_SECRET_KEY}\n",
			got:  secret,
			want: "|false",
		},
		{
			name: "a number from the environment decodes into sdk_app_id and a default into rate_limit",
			src:  "tencent:\n  sdk_app_id: ${APP_ID}\n  rate_limit: ${RATE:-50}\n",
			env:  map[string]string{"APP_ID": "1400000042"},
			got:  func(c *config.Config) string { return fmt.Sprint(c.Tencent.SDKAppID, "|", c.Tencent.RateLimit) },
			want: "1400000042|50",
		},
		{
			name: "a token holding YAML syntax is kept verbatim",
			src:  "tencent: {sdk_app_id: 1}\ncallback:\n  token: ${TOK}\n",
			env:  map[string]string{"TOK": "a: b # c\npath: /x"},
			got:  token,
			want: "a: b # c\npath: /x|/callback",
		},
		{
			name: "a token that looks like a number keeps its text",
			src:  "tencent: {sdk_app_id: 1}\ncallback:\n  token: ${TOK}\n",
			env:  map[string]string{"TOK": "0x1F"},
			got:  token,
			want: "0x1F|/callback",
		},
		{
			name: "a token that spells null is kept, not emptied",
			src:  "tencent: {sdk_app_id: 1}\ncallback:\n  token: ${TOK}\n",
			env:  map[string]string{"TOK": "null"},
			got:  token,
			want: "null|/callback",
		},
		{
			name: "a quoted reference is expanded too",
			src:  "tencent: {sdk_app_id: 1}\ncallback:\n  token: \"${TOK}\"\n",
			env:  map[string]string{"TOK": "quoted"},
			got:  token,
			want: "quoted|/callback",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := config.Parse("c.yaml", []byte(tt.src), vars(tt.env))
			if err != nil {
				t.Fatal(err)
			}
			if got := tt.got(c); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestParseReportsABadReferenceWithItsKey(t *testing.T) {
	_, err := config.Parse("c.yaml", []byte("tencent:\n  sdk_app_id: 1\n  secret_key: ${SECRET\n"), noEnv)
	got := problems(t, err, "c.yaml")
	if len(got) != 1 || got[0].Line != 3 || got[0].Path != "tencent.secret_key" || !strings.Contains(got[0].Reason, "unterminated ${") {
		t.Errorf("problems = %q, want the unterminated reference at line 3, tencent.secret_key", got)
	}
}

func TestRedisURLPasswordNeverAppearsInErrors(t *testing.T) {
	const pw = "hunter2pw"
	urls := []string{
		"memcached://user:" + pw + "@cache:11211",
		"redis://user:" + pw + "@",
		"redis://user:" + pw + "@host:port",
		"redis://user:" + pw + "@ho st:6379",
		"redis://:" + pw + "@[::1",
		"unix://:" + pw + "@",
		":" + pw + "@host:6379",
		"redis//:" + pw + "@host:6379",
		"user:" + pw + "@host:6379",
		"http://:" + pw + "@host\x7f:6379",
	}
	for _, u := range urls {
		t.Run(strings.ReplaceAll(u, pw, "PW"), func(t *testing.T) {
			src := "tencent:\n  sdk_app_id: 1\nstore:\n  redis_url: ${URL}\n"
			_, err := config.Parse("c.yaml", []byte(src), vars(map[string]string{"URL": u}))
			if err == nil {
				t.Fatal("Parse accepted the URL")
			}
			if !strings.Contains(err.Error(), "store.redis_url") {
				t.Errorf("the message does not name store.redis_url:\n%v", err)
			}
			if strings.Contains(err.Error(), pw) {
				t.Errorf("the message shows the password:\n%v", err)
			}
		})
	}
}

func TestSecretNeverPrints(t *testing.T) {
	const pw = "p4ssw0rd-value"
	s := config.Secret(pw)
	c := config.Config{Callback: config.Callback{Token: s}, Tencent: config.Tencent{SecretKey: s}, Store: config.Store{RedisURL: s}, Admin: config.Admin{Token: s}}

	var jsonOut, textOut bytes.Buffer
	slog.New(slog.NewJSONHandler(&jsonOut, nil)).Info("m", "secret", s, "config", c)
	slog.New(slog.NewTextHandler(&textOut, nil)).Info("m", "secret", s, "config", c, "ptr", &c)
	jsonBytes, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	yamlBytes, err := yaml.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	renderings := []struct{ how, out string }{
		{"%v", fmt.Sprintf("%v", s)},
		{"%s", fmt.Sprintf("%s", s)}, //nolint:staticcheck // the test is of the %s verb itself
		{"%q", fmt.Sprintf("%q", s)},
		{"%x", fmt.Sprintf("%x", s)},
		{"%#v", fmt.Sprintf("%#v", s)},
		{"Sprint", fmt.Sprint(s)},
		{"%v of the config", fmt.Sprintf("%v", c)},
		{"%+v of the config", fmt.Sprintf("%+v", c)},
		{"%#v of the config", fmt.Sprintf("%#v", c)},
		{"%+v of a pointer to the config", fmt.Sprintf("%+v", &c)},
		{"%v of a slice", fmt.Sprintf("%v", []config.Secret{s})},
		{"slog JSON", jsonOut.String()},
		{"slog text", textOut.String()},
		{"json", string(jsonBytes)},
		{"yaml", string(yamlBytes)},
	}
	for _, r := range renderings {
		if strings.Contains(r.out, pw) || strings.Contains(r.out, fmt.Sprintf("%x", pw)) {
			t.Errorf("%s shows the secret: %s", r.how, r.out)
		}
		if !strings.Contains(r.out, "redacted") && !strings.Contains(r.out, fmt.Sprintf("%x", "[redacted]")) {
			t.Errorf("%s does not say redacted: %s", r.how, r.out)
		}
	}
	if got := s.Reveal(); got != pw {
		t.Errorf("Reveal() = %q, want %q", got, pw)
	}
	if got := c.CallbackTokens(); len(got) != 1 || got[0] != pw {
		t.Errorf("CallbackTokens() = %q, want the token itself", got)
	}
}

func TestEmptySecretPrintsEmpty(t *testing.T) {
	var s config.Secret
	if got := fmt.Sprint(s); got != "" {
		t.Errorf("Sprint(empty) = %q, want empty (so an unset secret is visible as unset)", got)
	}
	if b, _ := json.Marshal(s); string(b) != `""` {
		t.Errorf("json of empty = %s, want \"\"", b)
	}
	if got := s.LogValue().String(); got != "" {
		t.Errorf("LogValue of empty = %q, want empty", got)
	}
}

func TestCallbackTokensListsTheSetTokensNewFirst(t *testing.T) {
	tests := []struct {
		name          string
		token, before config.Secret
		want          []string
	}{
		{"no token gives none", "", "", nil},
		{"one token gives it", "new", "", []string{"new"}},
		{"a rotation gives the new then the old", "new", "old", []string{"new", "old"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := config.Config{Callback: config.Callback{Token: tt.token, PreviousToken: tt.before}}
			if got := c.CallbackTokens(); fmt.Sprint(got) != fmt.Sprint(tt.want) || len(got) != len(tt.want) {
				t.Errorf("CallbackTokens() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestResolveIsRelativeToTheConfigDirectory(t *testing.T) {
	abs := filepath.Join(t.TempDir(), "rules.yaml")
	tests := []struct {
		name, file, path, want string
	}{
		{"a relative path is joined to the file's directory", "/etc/timguard/config.yaml", "rules.yaml", "/etc/timguard/rules.yaml"},
		{"a relative path with directories", "conf/config.yaml", "rules/main.yaml", filepath.Join("conf", "rules", "main.yaml")},
		{"a path going up", "conf/config.yaml", "../rules.yaml", "rules.yaml"},
		{"a file in the working directory", "config.yaml", "rules.yaml", "rules.yaml"},
		{"an absolute path is kept", "conf/config.yaml", abs, abs},
		{"an empty path stays empty", "conf/config.yaml", "", ""},
		{"a config built in code resolves nothing", "", "rules.yaml", "rules.yaml"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &config.Config{File: tt.file, RulesFile: tt.path, Audit: config.Audit{File: tt.path}, StateDir: tt.path}
			if got := c.Resolve(tt.path); got != tt.want {
				t.Errorf("Resolve(%q) = %q, want %q", tt.path, got, tt.want)
			}
			if got := c.RulesPath(); got != tt.want {
				t.Errorf("RulesPath() = %q, want %q", got, tt.want)
			}
			if got := c.AuditPath(); got != tt.want {
				t.Errorf("AuditPath() = %q, want %q", got, tt.want)
			}
			if got := c.StatePath(); got != tt.want {
				t.Errorf("StatePath() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestParseLevel(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want slog.Level
		err  bool
	}{
		{"debug is read", "debug", slog.LevelDebug, false},
		{"info is read", "info", slog.LevelInfo, false},
		{"warn is read", "warn", slog.LevelWarn, false},
		{"error is read", "error", slog.LevelError, false},
		{"capitals are read too", "ERROR", slog.LevelError, false},
		{"an unknown name is refused", "verbose", 0, true},
		{"an empty name is refused", "", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := config.ParseLevel(tt.in)
			if (err != nil) != tt.err || got != tt.want {
				t.Errorf("ParseLevel(%q) = %v, %v; want %v, error %v", tt.in, got, err, tt.want, tt.err)
			}
			if err != nil && !strings.Contains(err.Error(), fmt.Sprintf("%q", tt.in)) {
				t.Errorf("the error %q does not name the value", err)
			}
		})
	}
}

func TestDurationPrintsAndMarshalsAsText(t *testing.T) {
	d := config.Duration(90 * time.Second)
	if d.String() != "1m30s" || d.D() != 90*time.Second {
		t.Errorf("String() = %q D() = %v", d.String(), d.D())
	}
	out, err := yaml.Marshal(struct {
		D config.Duration `yaml:"d"`
	}{d})
	if err != nil || string(out) != "d: 1m30s\n" {
		t.Errorf("yaml = %q, %v; want d: 1m30s", out, err)
	}
}

func FuzzParseConfig(f *testing.F) {
	for _, name := range []string{"../config.example.yaml", "testdata/minimal.yaml", "testdata/every-problem.yaml", "testdata/unknown-keys.yaml"} {
		f.Add(readFile(f, name))
	}
	env := vars(map[string]string{"TIMGUARD_SECRET_KEY": "k", "TIMGUARD_REDIS_URL": "redis://:pw@h:1/0", "N": "12"})
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := config.Parse("fuzz.yaml", data, env)
		if err != nil {
			if c != nil {
				t.Fatal("a config came back with an error")
			}
			var ye *yamlx.Error
			if !errors.As(err, &ye) || len(ye.Problems) == 0 {
				t.Fatalf("error %T %v is not a *yamlx.Error with problems", err, err)
			}
			return
		}
		// A config that passed validation keeps its promises.
		if c.Tencent.SDKAppID == 0 || !strings.HasPrefix(c.Callback.Path, "/") ||
			c.Callback.Deadline <= 0 || c.Callback.Deadline.D() >= 2*time.Second ||
			c.Tencent.RateLimit < 1 || c.Tencent.RateLimit > 100000 || c.Callback.MaxBodyBytes < 1024 ||
			strings.ContainsAny(c.Store.KeyPrefix, "{}") || c.File != "fuzz.yaml" {
			t.Fatalf("an invalid config passed: %+v", c)
		}
		if c.Tencent.SecretKey != "" && c.Tencent.Admin == "" {
			t.Fatal("a secret key without admin passed")
		}
	})
}

func TestFailModeNamesKindAndValue(t *testing.T) {
	const app = "tencent: {sdk_app_id: 1400000000}\n"
	tests := []struct {
		name, src, key, reason string
	}{
		{"an after-event cannot fail closed", app + "store: {fail_mode: {member_joined: closed}}", "store.fail_mode.member_joined", "cannot fail closed"},
		{"an unknown kind is named", app + "store: {fail_mode: {mesage: closed}}", "store.fail_mode.mesage", "not an event kind"},
		{"a mode other than open or closed is named", app + "store: {fail_mode: {message: shut}}", "store.fail_mode.message", `"shut" must be open or closed`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := config.Parse("c.yaml", []byte(tt.src), func(string) (string, bool) { return "", false })
			if err == nil || !strings.Contains(err.Error(), tt.key+": ") || !strings.Contains(err.Error(), tt.reason) {
				t.Errorf("err = %v; want a problem naming %s: %s", err, tt.key, tt.reason)
			}
		})
	}
	c, err := config.Parse("c.yaml", []byte(app+"store: {fail_mode: {join_request: closed, message: open}}"), func(string) (string, bool) { return "", false })
	if err != nil || c.Store.FailMode["join_request"] != config.FailClosed {
		t.Errorf("a valid fail_mode: %v %+v", err, c)
	}
}

func TestErrorsNeverRepeatAValueFromTheEnvironment(t *testing.T) {
	env := map[string]string{"SECRET": "s3cr3t-Key-ABCDEFGH", "NUM": "-7"}
	getenv := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	for _, src := range []string{
		"tencent:\n  sdk_app_id: ${SECRET}\n",
		"tencent: {sdk_app_id: 1400000000}\ncallback:\n  max_clock_skew: ${SECRET}\n",
		"tencent: {sdk_app_id: 1400000000}\nlisten: ${SECRET}\n",
		"tencent: {sdk_app_id: 1400000000}\ntrusted_proxies: [\"${SECRET}\"]\n",
	} {
		_, err := config.Parse("c.yaml", []byte(src), getenv)
		if err == nil {
			t.Fatalf("%q parsed", src)
		}
		if strings.Contains(err.Error(), "s3cr3t") || !strings.Contains(err.Error(), "${SECRET}") {
			t.Errorf("%q: error %q; want the value replaced by its reference", src, err)
		}
	}
	_, err := config.Parse("c.yaml", []byte("tencent:\n  sdk_app_id: 1400000000\n  rate_limit: ${NUM}\n"), getenv)
	if err == nil || !strings.Contains(err.Error(), "tencent.rate_limit") {
		t.Errorf("a bad value from the environment is still named by its key: %v", err)
	}
}
