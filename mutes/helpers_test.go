package mutes

import (
	"context"
	"testing"
	"time"

	"github.com/timguard/timguard/internal/redistest"
	"github.com/timguard/timguard/store"
	"github.com/timguard/timguard/store/redis"
)

const grp = "@TGS#group"

func TestMain(m *testing.M) { redistest.Main(m) }

// openRedis opens a Redis store under a key prefix of the test's own.
func openRedis(t testing.TB) store.Store {
	t.Helper()
	url := redistest.URL(t)
	prefix := redistest.Prefix(t)
	redistest.CleanupPrefix(t, url, prefix)
	s, err := redis.New(context.Background(), redis.Options{URL: url, KeyPrefix: prefix, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatalf("open redis store: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}
