package actions

import (
	"context"
	"fmt"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/timguard/timguard/tim"
)

// groupCache keeps get_group_info answers for a while; concurrent lookups
// of one group share one call.
type groupCache struct {
	ttl    time.Duration
	now    func() time.Time
	flight singleflight.Group

	mu sync.Mutex
	m  map[string]cachedGroup
}

type cachedGroup struct {
	info    tim.GroupInfo
	expires time.Time
}

func newGroupCache(ttl time.Duration, now func() time.Time) *groupCache {
	return &groupCache{ttl: ttl, now: now, m: map[string]cachedGroup{}}
}

// groupInfo returns the group's type and join option, from the cache or
// from get_group_info. A group the server does not know is an error
// (10010 or 10015), which tim.Classify finds permanent.
func (e *Executor) groupInfo(ctx context.Context, group string) (tim.GroupInfo, error) {
	gc := e.groups
	now := gc.now()
	gc.mu.Lock()
	if c, ok := gc.m[group]; ok && now.Before(c.expires) {
		gc.mu.Unlock()
		return c.info, nil
	}
	gc.mu.Unlock()
	v, err, _ := gc.flight.Do(group, func() (any, error) {
		infos, err := e.cfg.Client.GetGroupInfo(ctx, []string{group})
		if err != nil {
			return nil, fmt.Errorf("look up group %s: %w", group, err)
		}
		for _, gi := range infos {
			if gi.GroupID != group {
				continue
			}
			if err := gi.Err(); err != nil {
				return nil, fmt.Errorf("look up group %s: %w", group, err)
			}
			gc.mu.Lock()
			for g, c := range gc.m {
				if !now.Before(c.expires) {
					delete(gc.m, g)
				}
			}
			gc.m[group] = cachedGroup{info: gi, expires: now.Add(gc.ttl)}
			gc.mu.Unlock()
			return gi, nil
		}
		return nil, fmt.Errorf("look up group %s: get_group_info did not answer for it", group)
	})
	if err != nil {
		return tim.GroupInfo{}, err
	}
	return v.(tim.GroupInfo), nil
}
