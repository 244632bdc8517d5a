// Package promcache keeps the children of Prometheus vectors that a hot
// path counts in, so that it looks each one up once: WithLabelValues
// hashes the label values and locks the vector on every call.
package promcache

import (
	"sync"
	"sync/atomic"
)

// Children caches a vector's children (or anything made from label values)
// by a comparable key of their labels. Reads take no lock: the map is
// replaced, never changed, when a child is added, which is rare, as labels
// are commands, statuses, verdicts and rule names. The zero value is ready
// to use.
type Children[K comparable, V any] struct {
	mu sync.Mutex
	m  atomic.Pointer[map[K]V]
}

// Get returns the child of k, made with newChild the first time k is
// asked for (once, whatever the callers racing for it). A child is made
// only when first used, so that a vector shows only the series that
// happened.
func (c *Children[K, V]) Get(k K, newChild func() V) V {
	if m := c.m.Load(); m != nil {
		if v, ok := (*m)[k]; ok {
			return v
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	old := c.m.Load()
	if old != nil {
		if v, ok := (*old)[k]; ok {
			return v
		}
	}
	next := newChild()
	m := make(map[K]V, 1+lenOf(old))
	if old != nil {
		for k, v := range *old {
			m[k] = v
		}
	}
	m[k] = next
	c.m.Store(&m)
	return next
}

func lenOf[K comparable, V any](m *map[K]V) int {
	if m == nil {
		return 0
	}
	return len(*m)
}
