package policy

import (
	"fmt"
	"slices"
	"time"

	"github.com/timguard/timguard/rules"
)

// Assumed is a store state taken for granted: by kept rule tests, by `bot
// simulate` and by the admin API's simulate.
type Assumed struct {
	Counters map[string]int
	Strikes  int
	Role     rules.Role // member (default), admin, owner or app_admin
	Modes    []string
	// Messages is user.messages; SeenFor how long before the event the
	// subjects were first seen (user.first_seen; 0 = first seen now).
	Messages int
	SeenFor  time.Duration
	// TouchedCountsOne makes the counters the event touches read 1 (the
	// event itself) unless Counters says otherwise, and so user.messages
	// when the event counts a message.
	TouchedCountsOne bool
}

// Assume builds the State of ev under a, and returns the App admin account
// to evaluate with (the subject, when the role is app_admin).
func Assume(set *rules.Set, ev *Event, a Assumed) (*State, string, error) {
	st := &State{Counters: make([]int, len(set.Counters)), Strikes: map[string]int{}, Roles: map[string]string{}, Modes: map[string]bool{}}
	if a.TouchedCountsOne {
		for _, cu := range set.Plan(ev.Kind).Counters {
			if cu.Touch {
				st.Counters[cu.Counter.Index] = 1
			}
		}
	}
	for name, v := range a.Counters {
		i := slices.IndexFunc(set.Counters, func(c *rules.Counter) bool { return c.Name == name })
		if i < 0 {
			return nil, "", fmt.Errorf("counters.%s is not declared in the rule file", name)
		}
		st.Counters[i] = v
	}
	if a.Role != "" && !a.Role.Valid() {
		return nil, "", fmt.Errorf("role %q is not member, admin, owner or app_admin", a.Role)
	}
	messages := a.Messages
	if a.TouchedCountsOne && messages == 0 && set.Plan(ev.Kind).Users.Count {
		messages = 1 // the event's own message
	}
	appAdmin := ""
	st.FirstSeen = make(map[string]time.Time, len(ev.Subjects))
	st.Messages = make(map[string]int, len(ev.Subjects))
	for _, u := range ev.Subjects {
		st.Strikes[u] = a.Strikes
		st.Messages[u] = messages
		st.FirstSeen[u] = ev.Received.Add(-a.SeenFor)
		switch a.Role {
		case rules.RoleAppAdmin:
			appAdmin = u
		case "":
		default:
			st.Roles[u] = string(a.Role)
		}
	}
	for _, m := range a.Modes {
		st.Modes[m] = true
	}
	return st, appAdmin, nil
}
