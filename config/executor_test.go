package config_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/timguard/timguard/config"
	"github.com/timguard/timguard/internal/yamlx"
)

const executorBase = "tencent:\n  sdk_app_id: 1400000000\n"

func parseExecutor(t *testing.T, src string) (*config.Config, error) {
	t.Helper()
	return config.Parse("c.yaml", []byte(executorBase+src), func(string) (string, bool) { return "", false })
}

func TestTheExecutorSectionHasDefaults(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want config.Executor
	}{
		{
			name: "an absent section takes the defaults",
			want: config.Executor{
				Lease: config.Duration(30 * time.Second), MaxAttempts: 8, RetryMin: config.Duration(time.Second),
				RetryMax: config.Duration(5 * time.Minute), Workers: 8, ShutdownGrace: config.Duration(10 * time.Second),
				LiveGroupWarn: config.LiveGroupWarnMention,
			},
		},
		{
			name: "a long REST timeout lengthens the default lease",
			src:  "  timeout: 20s\n",
			want: config.Executor{
				Lease: config.Duration(80 * time.Second), MaxAttempts: 8, RetryMin: config.Duration(time.Second),
				RetryMax: config.Duration(5 * time.Minute), Workers: 8, ShutdownGrace: config.Duration(10 * time.Second),
				LiveGroupWarn: config.LiveGroupWarnMention,
			},
		},
		{
			name: "the values given are kept",
			src:  "executor: {lease: 1m, max_attempts: 3, retry_min: 50ms, retry_max: 2s, workers: 2, shutdown_grace: 30s, live_group_warn: skip}\n",
			want: config.Executor{
				Lease: config.Duration(time.Minute), MaxAttempts: 3, RetryMin: config.Duration(50 * time.Millisecond),
				RetryMax: config.Duration(2 * time.Second), Workers: 2, ShutdownGrace: config.Duration(30 * time.Second),
				LiveGroupWarn: config.LiveGroupWarnSkip,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := parseExecutor(t, tt.src)
			if err != nil {
				t.Fatal(err)
			}
			if c.Executor != tt.want {
				t.Errorf("executor = %+v, want %+v", c.Executor, tt.want)
			}
		})
	}
}

func TestTheExecutorSectionRefusesBadValuesNamingKeyAndValue(t *testing.T) {
	tests := []struct {
		name, src, key, reason string
	}{
		{"a lease shorter than three REST timeouts", "executor: {lease: 5s}", "executor.lease", "5s must be at least 3 times tencent.timeout (5s)"},
		{"a negative number of attempts", "executor: {max_attempts: -1}", "executor.max_attempts", "-1 must be between 1 and 1000"},
		{"a negative retry_min", "executor: {retry_min: -1s}", "executor.retry_min", "-1s must be positive"},
		{"a retry_max below retry_min", "executor: {retry_min: 10s, retry_max: 1s}", "executor.retry_max", "1s must not be below executor.retry_min (10s)"},
		{"too many workers", "executor: {workers: 1000}", "executor.workers", "1000 must be between 1 and 256"},
		{"an hour of shutdown grace", "executor: {shutdown_grace: 1h}", "executor.shutdown_grace", "1h0m0s must be above 0 and at most 10m"},
		{"an unknown key", "executor: {lease_time: 1m}", "executor.lease_time", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseExecutor(t, tt.src+"\n")
			var ye *yamlx.Error
			if !errors.As(err, &ye) {
				t.Fatalf("Parse = %v, want a *yamlx.Error", err)
			}
			for _, p := range ye.Problems {
				if p.Path == tt.key && strings.Contains(p.Reason, tt.reason) {
					return
				}
			}
			t.Errorf("problems %v, want %s: %s", ye.Problems, tt.key, tt.reason)
		})
	}
}
