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
// callbacks in flight: it must return at once, without a lock or an
// allocation. "store" is roles the store says were read recently (every
// callback but those of a group due for a refresh); "replica" is roles the
// store says are old that this replica asked to refresh already (another
// replica won the claim, or the refresh is on its way).
func BenchmarkRefreshRolesFresh(b *testing.B) {
	const groups = 1000
	names := make([]string, groups)
	for i := range names {
		names[i] = "@TGS#" + strconv.Itoa(i)
	}
	for _, bc := range []struct {
		name     string
		cachedAt time.Time
	}{
		{"store", time.Now()},
		{"replica", time.Now().Add(-DefaultRefresh)},
	} {
		b.Run(bc.name, func(b *testing.B) {
			f := New(Config{Client: newFakeClient(), Store: memory.New(memory.Options{})})
			b.Cleanup(f.Close)
			for _, g := range names {
				f.markFresh(g, time.Now())
			}
			b.ReportAllocs()
			b.SetParallelism(16)
			b.RunParallel(func(pb *testing.PB) {
				i := 0
				for pb.Next() {
					f.RefreshRoles(names[i%groups], tim.GroupPublic, bc.cachedAt, false)
					i++
				}
			})
		})
	}
}
