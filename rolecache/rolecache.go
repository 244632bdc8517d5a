// Package rolecache knows each group's owner and admins: it fills the
// store's role cache from the IM REST API, where the policy engine reads
// user.role and the executor checks exemptions.
package rolecache

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/timguard/timguard/store"
	"github.com/timguard/timguard/tim"
)

// Lister is what the role filler asks the IM server; *tim.Client
// implements it.
type Lister interface {
	GetGroupMemberInfo(ctx context.Context, req tim.GetGroupMemberInfoRequest) (tim.GroupMembers, error)
	GetGroupInfo(ctx context.Context, groupIDs []string) ([]tim.GroupInfo, error)
}

// Store is the store's group role cache, read through Enrich as the
// policy engine reads it, and the claim that lets one replica refresh a
// group at a time.
type Store interface {
	Enrich(ctx context.Context, req store.EnrichRequest) (store.EnrichResult, error)
	SetRoles(ctx context.Context, group string, roles map[string]string, at time.Time, ttl time.Duration) error
	ClaimOnce(ctx context.Context, key string, ttl time.Duration) (bool, error)
}

// Defaults for Config fields left zero.
const (
	DefaultTTL         = 24 * time.Hour
	DefaultRefresh     = 15 * time.Minute
	DefaultFillTimeout = 10 * time.Second
	DefaultFills       = 16
	DefaultCooldown    = time.Minute
)

// Config configures a Filler. Client and Store are required.
type Config struct {
	Client Lister
	Store  Store
	Logger *slog.Logger
	Now    func() time.Time
	// TTL is how long the store keeps a group's roles without a refresh:
	// stale roles are better than none, since with none the owner and
	// admins are treated as members.
	TTL time.Duration
	// Refresh is how old cached roles may get before an event of the group
	// refreshes them in the background.
	Refresh time.Duration
	// Timeout bounds one background fill.
	Timeout time.Duration
	// MaxFills bounds the background fills in flight; past it FillRoles
	// does nothing (the next event of the group asks again).
	MaxFills int
	// Cooldown is how long FillRoles leaves a group alone after a failed
	// fill, so that a group the IM server refuses to list does not cost a
	// call per event.
	Cooldown time.Duration
}

// Filler knows each group's owner and admins and keeps them in the
// store's role cache, where the policy engine reads user.role. How it asks
// depends on the group's type:
//
//   - AVChatRoom (live) groups store no member information and have no
//     admins: get_group_member_info is not available there
//     (https://intl.cloud.tencent.com/document/product/1047/34948), so the
//     owner comes from get_group_info's Owner_Account and nothing waits for
//     member data. The App admin is known from the configuration.
//   - Community groups are listed with get_group_member_info paging with
//     Next ("" for the first page, at most 100 a page).
//   - The other types are listed with get_group_member_info, MemberRoleFilter
//     Owner and Admin.
//
// A caller that does not know the group's type passes ""; the filler then
// asks get_group_info first (its answer names the owner too). Lookups of
// one group are shared (singleflight), so that the policy engine's fill and
// the executor's exemption check cost one call between them.
type Filler struct {
	cfg    Config
	log    *slog.Logger
	flight singleflight.Group
	sem    chan struct{}

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu     sync.Mutex
	closed bool
	failed map[string]time.Time // group -> end of its cooldown
	// fresh maps a group to when this replica last refreshed its roles,
	// or asked for it (a time.Time). RefreshRoles reads it only for roles
	// the store says are old, without a lock: while the IM server refuses
	// a group, every callback of the group reads it. It is written under
	// mu.
	fresh sync.Map
}

// New returns a Filler; Close it to stop its background fills.
func New(cfg Config) *Filler {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	setDefault(&cfg.TTL, DefaultTTL)
	setDefault(&cfg.Refresh, DefaultRefresh)
	setDefault(&cfg.Timeout, DefaultFillTimeout)
	setDefault(&cfg.MaxFills, DefaultFills)
	setDefault(&cfg.Cooldown, DefaultCooldown)
	ctx, cancel := context.WithCancel(context.Background())
	return &Filler{
		cfg: cfg, log: cfg.Logger.With("component", "rolecache"),
		sem: make(chan struct{}, cfg.MaxFills), ctx: ctx, cancel: cancel,
		failed: map[string]time.Time{},
	}
}

// FillRoles fills the group's role cache and returns the group's owner and
// admins (user -> role). groupType is the group's type (REST or SDK name),
// or "" when unknown. It waits at most until ctx is done; the fill then goes
// on in the background and the next event finds the cache filled.
// policy.Engine calls it when an event finds the cache empty, before the
// rules run.
func (f *Filler) FillRoles(ctx context.Context, group, groupType string) (map[string]string, error) {
	if group == "" {
		return nil, errors.New("fill roles: no group")
	}
	result := make(chan error, 1)
	var roles map[string]string
	if !f.background(group, groupType, false, func(err error, r map[string]string) {
		roles = r
		result <- err
	}) {
		return nil, fmt.Errorf("fill the roles of %s: not now (closing, cooling down after a failure, or too many fills)", group)
	}
	select {
	case err := <-result:
		return roles, err
	case <-ctx.Done():
		return nil, fmt.Errorf("fill the roles of %s: %w (it goes on in the background)", group, ctx.Err())
	}
}

// RefreshRoles refreshes the group's cached roles in the background when
// they are old: read from the IM server at cachedAt (the store's
// EnrichResult.RolesAt; zero when not known) Refresh ago or more, and not
// refreshed by this replica within Refresh either. With force (the IM server
// reported a role change) it refreshes at once. groupType is as for
// FillRoles. It returns at once. Across replicas a claim in the store lets
// one of them do each refresh.
func (f *Filler) RefreshRoles(group, groupType string, cachedAt time.Time, force bool) {
	if group == "" {
		return
	}
	now := f.cfg.Now()
	// Roles the store says are fresh, those of nearly every callback, are
	// decided on without this replica's marks, which with thousands of
	// groups are not in the CPU's caches. A time ahead of this replica's
	// clock (another replica's runs fast) is not taken for fresh: the
	// marks allow one refresh per Refresh meanwhile.
	if age := now.Sub(cachedAt); !force && age >= 0 && age < f.cfg.Refresh {
		return
	}
	if !force && !f.old(group, now) {
		return
	}
	f.mu.Lock()
	// Again under mu: of callers that found the roles old together, one
	// refreshes.
	if !force && !f.old(group, now) {
		f.mu.Unlock()
		return
	}
	f.fresh.Store(group, now) // one refresh per Refresh, even if this replica loses the claim
	f.fresh.Range(func(g, at any) bool {
		if now.Sub(at.(time.Time)) > f.cfg.TTL {
			f.fresh.Delete(g)
		}
		return true
	})
	f.mu.Unlock()
	f.background(group, groupType, !force, nil)
}

// background fetches the group's roles in a goroutine bounded by Timeout and
// calls done (if not nil) with the outcome. With claim, the fetch happens only
// if this replica wins the refresh claim. It returns false when it started
// nothing.
func (f *Filler) background(group, groupType string, claim bool, done func(error, map[string]string)) bool {
	f.mu.Lock()
	if f.closed || f.cfg.Now().Before(f.failed[group]) {
		f.mu.Unlock()
		return false
	}
	select {
	case f.sem <- struct{}{}:
	default:
		f.mu.Unlock()
		return false
	}
	f.wg.Add(1)
	f.mu.Unlock()
	go func() {
		defer f.wg.Done()
		defer func() { <-f.sem }()
		ctx, cancel := context.WithTimeout(f.ctx, f.cfg.Timeout)
		defer cancel()
		if claim {
			won, err := f.cfg.Store.ClaimOnce(ctx, "roles-refresh|"+group, f.cfg.Refresh)
			if err != nil || !won {
				return // another replica refreshes, or the store is down: the cache stays
			}
		}
		roles, err := f.fetch(ctx, group, groupType, false)
		if err == nil {
			f.markFresh(group, f.cfg.Now())
		} else {
			f.mu.Lock()
			f.failed[group] = f.cfg.Now().Add(f.cfg.Cooldown)
			for g, until := range f.failed {
				if f.cfg.Now().After(until) {
					delete(f.failed, g)
				}
			}
			f.mu.Unlock()
			if !errors.Is(err, context.Canceled) {
				f.log.Warn("could not list the group's owner and admins; rules keep the roles they knew (none: members)",
					"group", group, "retry_after", f.cfg.Cooldown, "err", err)
			}
		}
		if done != nil {
			done(err, roles)
		}
	}()
	return true
}

// GroupRoles returns the role of each user in group: from the store's
// cache, or from the IM server (filling the cache) when the cache is empty
// or the store cannot be read. groupType is as for FillRoles.
func (f *Filler) GroupRoles(ctx context.Context, group, groupType string, users []string) (map[string]string, error) {
	if out, ok := f.cached(ctx, group, users); ok {
		return out, nil
	}
	roles, err := f.fetch(ctx, group, groupType, true)
	if err != nil {
		return nil, err
	}
	if roles == nil {
		// Another fill cached the roles meanwhile.
		if out, ok := f.cached(ctx, group, users); ok {
			return out, nil
		}
		if roles, err = f.fetch(ctx, group, groupType, false); err != nil {
			return nil, err
		}
	}
	out := make(map[string]string, len(users))
	for _, u := range users {
		out[u] = store.RoleMember
		if r, ok := roles[u]; ok {
			out[u] = r
		}
	}
	return out, nil
}

// cached reads users' roles from the store's cache; ok is false when the
// group is not cached or the store cannot be read.
func (f *Filler) cached(ctx context.Context, group string, users []string) (map[string]string, bool) {
	res, err := f.cfg.Store.Enrich(ctx, store.EnrichRequest{Now: f.cfg.Now(), RoleGroup: group, RoleUsers: users})
	if err != nil {
		f.log.Warn("read cached roles; asking the IM server", "group", group, "err", err)
		return nil, false
	}
	if !res.RolesCached || len(res.Roles) != len(users) {
		return nil, false
	}
	out := make(map[string]string, len(users))
	for i, u := range users {
		out[u] = res.Roles[i]
	}
	return out, true
}

// fetch lists the group's owner and admins and caches them; concurrent
// fetches of one group share one call. With recheck it first looks at the
// cache again, since a fill may have finished since the caller looked, and
// returns nil roles when the cache has them.
func (f *Filler) fetch(ctx context.Context, group, groupType string, recheck bool) (map[string]string, error) {
	key := group
	if !recheck {
		key = "\x00" + group
	}
	v, err, _ := f.flight.Do(key, func() (any, error) {
		if recheck {
			if _, ok := f.cached(ctx, group, nil); ok {
				return map[string]string(nil), nil
			}
		}
		at := f.cfg.Now()
		roles, err := f.list(ctx, group, tim.NormalizeGroupType(groupType))
		if err != nil {
			return nil, err
		}
		if err := f.cfg.Store.SetRoles(ctx, group, roles, at, f.cfg.TTL); err != nil {
			f.log.Warn("cache the group's roles", "group", group, "err", err)
		}
		return roles, nil
	})
	if err != nil {
		return nil, err
	}
	return v.(map[string]string), nil
}

// maxRolePages bounds the pages read for one group (Community groups page
// with Next even when filtered by role).
const maxRolePages = 50

// list asks the IM server for the group's owner and admins, in the way the
// group's type allows (see Filler).
func (f *Filler) list(ctx context.Context, group, typ string) (map[string]string, error) {
	roles := map[string]string{}
	if typ == "" || typ == tim.GroupAVChatRoom {
		infos, err := f.cfg.Client.GetGroupInfo(ctx, []string{group})
		if err != nil {
			return nil, fmt.Errorf("look up the type and owner of %s: %w", group, err)
		}
		i := slices.IndexFunc(infos, func(gi tim.GroupInfo) bool { return gi.GroupID == group })
		if i < 0 {
			return nil, fmt.Errorf("look up the type and owner of %s: get_group_info did not answer for it", group)
		}
		if err := infos[i].Err(); err != nil {
			return nil, fmt.Errorf("look up the type and owner of %s: %w", group, err)
		}
		typ = tim.NormalizeGroupType(infos[i].Type)
		if owner := infos[i].Owner; owner != "" {
			roles[owner] = store.RoleOwner
		}
		if typ == tim.GroupAVChatRoom {
			// No admins, no member list: the owner is all there is.
			return roles, nil
		}
	}
	req := tim.GetGroupMemberInfoRequest{
		GroupID:    group,
		RoleFilter: []string{tim.RoleOwner, tim.RoleAdmin},
		InfoFilter: []string{"Role"},
	}
	if typ == tim.GroupCommunity {
		req.Community, req.Limit = true, tim.MaxCommunityMemberPage
	}
	for range maxRolePages {
		page, err := f.cfg.Client.GetGroupMemberInfo(ctx, req)
		if err != nil {
			return nil, fmt.Errorf("list the owner and admins of %s: %w", group, err)
		}
		for _, m := range page.Members {
			switch m.Role {
			case tim.RoleOwner:
				roles[m.Account] = store.RoleOwner
			case tim.RoleAdmin:
				roles[m.Account] = store.RoleAdmin
			}
		}
		if !req.Community || page.Next == "" || page.Next == req.Next {
			return roles, nil
		}
		req.Next = page.Next
	}
	return roles, nil
}

// Close stops the background fills and waits for them.
func (f *Filler) Close() {
	f.mu.Lock()
	f.closed = true
	f.mu.Unlock()
	f.cancel()
	f.wg.Wait()
}

func setDefault[T comparable](v *T, def T) {
	var zero T
	if *v == zero {
		*v = def
	}
}

// old reports whether this replica last refreshed the group's roles, or
// asked for it, Refresh or longer before now (or never).
func (f *Filler) old(group string, now time.Time) bool {
	at, ok := f.fresh.Load(group)
	return !ok || now.Sub(at.(time.Time)) >= f.cfg.Refresh
}

// markFresh records that the group's roles were refreshed at at.
func (f *Filler) markFresh(group string, at time.Time) {
	f.mu.Lock()
	f.fresh.Store(group, at)
	f.mu.Unlock()
}
