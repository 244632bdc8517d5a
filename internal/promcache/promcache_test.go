package promcache

import (
	"sync"
	"sync/atomic"
	"testing"
)

func TestGetMakesEachChildOnce(t *testing.T) {
	var c Children[string, *int]
	var made atomic.Int32
	keys := []string{"a", "b", "c", "a", "b", "a"}
	got := make([][]*int, 8)
	var wg sync.WaitGroup
	for g := range got {
		wg.Go(func() {
			for _, k := range keys {
				got[g] = append(got[g], c.Get(k, func() *int { made.Add(1); return new(int) }))
			}
		})
	}
	wg.Wait()
	if n := made.Load(); n != 3 {
		t.Fatalf("made %d children for 3 keys", n)
	}
	for g := range got {
		for i, k := range keys {
			if want := c.Get(k, func() *int { t.Fatalf("%q made again", k); return nil }); got[g][i] != want {
				t.Fatalf("goroutine %d got another child for %q", g, k)
			}
		}
	}
	if c.Get("a", nil) == c.Get("b", nil) {
		t.Fatal("two keys share a child")
	}
}
