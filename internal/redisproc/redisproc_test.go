package redisproc_test

import (
	"errors"
	"os"
	"os/exec"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/timguard/timguard/internal/redisproc"
)

// start starts a server in a temporary directory and stops it when the test
// ends; without redis-server it skips the test, or fails it when
// TIMGUARD_REQUIRE_REDIS=1.
func start(t *testing.T, opts redisproc.Options) (*redisproc.Server, *redis.Client) {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		if os.Getenv("TIMGUARD_REQUIRE_REDIS") == "1" {
			t.Fatal("redis-server is not on PATH")
		}
		t.Skip("redis-server is not on PATH")
	}
	s, err := redisproc.Start(t.TempDir(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	ropts, err := redis.ParseURL(s.URL())
	if err != nil {
		t.Fatal(err)
	}
	ropts.MaxRetries = -1
	c := redis.NewClient(ropts)
	t.Cleanup(func() { _ = c.Close() })
	return s, c
}

func TestAKilledPersistentServerKeepsWhatItAcknowledged(t *testing.T) {
	s, c := start(t, redisproc.Options{Persist: true})
	ctx := t.Context()
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	pid := s.PID()
	s.Kill()
	if s.PID() != 0 {
		t.Errorf("PID after Kill = %d, want 0", s.PID())
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	if s.PID() == 0 || s.PID() == pid {
		t.Errorf("PID after Start = %d, want a new process (was %d)", s.PID(), pid)
	}
	if got, err := c.Get(ctx, "k").Result(); err != nil || got != "v" {
		t.Errorf("k after a kill and a start = %q, %v; want v", got, err)
	}
}

func TestARestartedServerIsEmptyOnTheSamePort(t *testing.T) {
	s, c := start(t, redisproc.Options{Databases: 64})
	ctx := t.Context()
	url := s.URL()
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if err := s.Restart(); err != nil {
		t.Fatal(err)
	}
	if s.URL() != url {
		t.Errorf("URL after Restart = %s, want %s", s.URL(), url)
	}
	if err := c.Get(ctx, "k").Err(); !errors.Is(err, redis.Nil) {
		t.Errorf("k after a restart: %v, want none", err)
	}
	if err := c.Do(ctx, "SELECT", 63).Err(); err != nil {
		t.Errorf("SELECT 63 with 64 databases: %v", err)
	}
}

func TestStartWithoutRedisServerSaysHowToGetIt(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	if _, err := redisproc.Start(t.TempDir(), redisproc.Options{}); !errors.Is(err, redisproc.ErrNotInstalled) {
		t.Errorf("Start = %v, want ErrNotInstalled", err)
	}
}
