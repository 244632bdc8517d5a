package actions

import (
	"fmt"
	"testing"

	"github.com/timguard/timguard/store"
)

// FuzzPlan checks the batching invariants on arbitrary job lists: every job
// is in exactly one call, a call's jobs share its operation and parameters,
// no call names more members than its command allows, a job whose batch
// was refused goes alone, and jobs keep their order within a call.
func FuzzPlan(f *testing.F) {
	f.Add([]byte{1, 2, 3, 4, 5, 6, 7, 8, 9})
	f.Add(make([]byte, 1200))
	f.Add([]byte("the quick brown fox jumps over the lazy dog, twice over"))
	f.Fuzz(func(t *testing.T, data []byte) {
		var jobs []*job
		for i := 0; i+1 < len(data); i += 2 {
			a, b := data[i], data[i+1]
			j := &job{
				c: store.Claimed{Action: store.Action{
					ID:   fmt.Sprintf("a%d", i),
					User: fmt.Sprintf("u%d", b%97),
				}},
				op:      op(1 + int(a)%9),
				seconds: int64(b % 3),
				text:    fmt.Sprintf("t%d", a/9%2),
				all:     b%5 == 0,
			}
			if a%31 == 0 {
				j.c.LastError = soloPrefix + "test"
			}
			jobs = append(jobs, j)
		}
		calls := plan("g", jobs)
		where := map[*job]int{}
		for ci, c := range calls {
			if len(c.jobs) == 0 {
				t.Fatalf("call %d is empty", ci)
			}
			if lim := c.op.limit(); lim > 0 && len(c.names) > lim {
				t.Fatalf("call %d names %d members, limit %d", ci, len(c.names), lim)
			}
			seen := map[string]bool{}
			for _, u := range c.names {
				if seen[u] {
					t.Fatalf("call %d names %s twice", ci, u)
				}
				seen[u] = true
			}
			last := -1
			for _, j := range c.jobs {
				if _, dup := where[j]; dup {
					t.Fatalf("job %s is in two calls", j.c.ID)
				}
				where[j] = ci
				k := j.key()
				if k.op != c.op || k.seconds != c.seconds || k.text != c.text || k.all != c.all {
					t.Fatalf("job %s (%+v) in call %+v", j.c.ID, k, c)
				}
				if !seen[j.c.User] {
					t.Fatalf("call %d does not name %s", ci, j.c.User)
				}
				if isSolo(j.c) && len(c.jobs) != 1 {
					t.Fatalf("refused job %s shares a call", j.c.ID)
				}
				idx := indexOf(jobs, j)
				if idx < last {
					t.Fatalf("call %d reorders its jobs", ci)
				}
				last = idx
			}
		}
		if len(where) != len(jobs) {
			t.Fatalf("%d of %d jobs planned", len(where), len(jobs))
		}
	})
}

func indexOf(jobs []*job, j *job) int {
	for i, x := range jobs {
		if x == j {
			return i
		}
	}
	return -1
}
