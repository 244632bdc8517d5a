package policy

import (
	"fmt"
	"slices"

	"github.com/timguard/timguard/rules"
)

// Assumed is a store state taken for granted: by kept rule tests, by `bot
// simulate` and by the admin API's simulate.
type Assumed struct {
	Counters map[string]int
	Strikes  int
	Role     rules.Role // member (default), admin, owner or app_admin
	Modes    []string
	// TouchedCountsOne makes the counters the event touches read 1 (the
	// event itself) unless Counters says otherwise.
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
	appAdmin := ""
	for _, u := range ev.Subjects {
		st.Strikes[u] = a.Strikes
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
