package rolecache

import (
	"strconv"
	"testing"
	"time"

	"github.com/timguard/timguard/store/memory"
	"github.com/timguard/timguard/tim"
)

// BenchmarkRefreshRolesFresh is the policy engine's call on every callback
// of a group whose cached roles are not old yet, from as many goroutines as
// callbacks in flight: it must return at once, without waiting for a lock
// or allocating.
func BenchmarkRefreshRolesFresh(b *testing.B) {
	const groups = 1000
	f := New(Config{Client: newFakeClient(), Store: memory.New(memory.Options{})})
	b.Cleanup(f.Close)
	names := make([]string, groups)
	for i := range names {
		names[i] = "@TGS#" + strconv.Itoa(i)
		f.markFresh(names[i], time.Now())
	}
	b.ReportAllocs()
	b.SetParallelism(16)
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			f.RefreshRoles(names[i%groups], tim.GroupPublic, false)
			i++
		}
	})
}
