package harness

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"

	"github.com/timguard/timguard/audit"
	"github.com/timguard/timguard/rules"
	"github.com/timguard/timguard/tim"
	"github.com/timguard/timguard/tim/timtest"
)

// ReadAudit reads the audit records of one or more audit logs. A last line
// cut short (a process killed while writing it) is skipped; any other line
// that does not decode is an error.
func ReadAudit(paths ...string) ([]audit.Record, error) {
	var out []audit.Record
	for _, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			return nil, err
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 1<<20), 1<<24)
		var bad error
		for sc.Scan() {
			if bad != nil {
				f.Close()
				return nil, bad
			}
			var r audit.Record
			if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
				bad = fmt.Errorf("%s: audit line %.200q: %w", p, sc.Text(), err)
				continue
			}
			out = append(out, r)
		}
		err = sc.Err()
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
	}
	return out, nil
}

// Effect is what one action does at the IM server: one member entry in one
// REST call (User is empty for what concerns the whole group).
type Effect struct {
	Kind  string `json:"kind"`
	Group string `json:"group"`
	User  string `json:"user,omitempty"`
}

func (e Effect) String() string { return e.Kind + " " + e.User + " in " + e.Group }

// Effects counts the effects of the calls the fake IM server carried out.
// Calls that change nothing (lookups) and calls refused or failed are left
// out.
func Effects(calls []timtest.Call) (map[Effect]int, error) {
	out := map[Effect]int{}
	for _, c := range calls {
		if !c.Effective() {
			continue
		}
		var body struct {
			GroupID       string   `json:"GroupId"`
			Members       []string `json:"Members_Account"`
			MuteTime      *uint64
			ToDelete      []string `json:"MemberToDel_Account"`
			ToMembers     []string `json:"ToMembers_Account"`
			MemberList    []tim.Member
			MuteAllMember string
		}
		if err := json.Unmarshal(c.Body, &body); err != nil {
			return nil, fmt.Errorf("%s body %s: %w", c.Command, c.Body, err)
		}
		add := func(kind string, users []string) {
			for _, u := range users {
				out[Effect{Kind: kind, Group: body.GroupID, User: u}]++
			}
		}
		switch c.Command {
		case tim.CommandForbidSendMsg:
			if body.MuteTime != nil && *body.MuteTime == 0 {
				add(string(rules.ActUnmute), body.Members)
			} else {
				add(string(rules.ActMute), body.Members)
			}
		case tim.CommandDeleteGroupMember:
			add(string(rules.ActKick), body.ToDelete)
		case tim.CommandBanGroupMember:
			add(string(rules.ActBan), body.Members)
		case tim.CommandSendGroupSystemNotification:
			if len(body.ToMembers) == 0 {
				add(string(rules.ActWarn), []string{""})
			} else {
				add(string(rules.ActWarn), body.ToMembers)
			}
		case tim.CommandAddGroupMember:
			users := make([]string, len(body.MemberList))
			for i, m := range body.MemberList {
				users[i] = m.Account
			}
			add(string(rules.ActAdmit), users)
		case tim.CommandModifyGroupBaseInfo:
			switch body.MuteAllMember {
			case tim.MuteAllOn:
				add(string(rules.ActMuteGroup), []string{""})
			case tim.MuteAllOff:
				add(string(rules.ActUnmuteGroup), []string{""})
			}
		}
	}
	return out, nil
}

// Reconciliation compares the actions the audit log says were decided with
// the effects the fake IM server carried out and with the action records.
type Reconciliation struct {
	// Decided maps each action id in a decision record to its effect.
	Decided map[string]Effect
	// Done counts the effects carried out at the IM server.
	Done map[Effect]int
	// Results counts each action's audit records by result (done, retry,
	// dead, ...), by action id.
	Results map[string]map[string]int

	// ExactlyOnce counts decided actions whose effect was carried out once.
	ExactlyOnce int
	// Missing are decided actions whose effect was never carried out.
	Missing []string
	// Repeated are decided actions whose effect was carried out more than
	// once.
	Repeated []string
	// Unexpected are effects carried out that no decision record asked for.
	Unexpected []Effect
	// DoneRecords are decided actions without exactly one done record.
	DoneRecords []string
	// Dead are actions with a dead record.
	Dead []string
	// Shared are effects two decided actions ask for; the mix avoids them,
	// so that each effect tells one action.
	Shared []Effect
}

// Reconcile compares records (the audit logs of every replica) with the
// calls the fake IM server received.
func Reconcile(records []audit.Record, calls []timtest.Call) (*Reconciliation, error) {
	done, err := Effects(calls)
	if err != nil {
		return nil, err
	}
	r := &Reconciliation{Decided: map[string]Effect{}, Done: done, Results: map[string]map[string]int{}}
	byEffect := map[Effect]string{}
	for _, rec := range records {
		switch rec.Kind {
		case audit.KindDecision:
			for _, a := range rec.Actions {
				if a.ID == "" || a.Shadow {
					continue
				}
				e := Effect{Kind: a.Kind, Group: rec.Group, User: rec.User}
				switch rules.ActionKind(a.Kind) {
				case rules.ActMuteGroup, rules.ActUnmuteGroup:
					e.User = ""
				}
				if _, seen := r.Decided[a.ID]; seen {
					continue
				}
				r.Decided[a.ID] = e
				if _, ok := byEffect[e]; ok {
					r.Shared = append(r.Shared, e)
				}
				byEffect[e] = a.ID
			}
		case audit.KindAction:
			if len(rec.Actions) == 0 {
				continue
			}
			id := rec.Actions[0].ID
			if r.Results[id] == nil {
				r.Results[id] = map[string]int{}
			}
			r.Results[id][rec.Result]++
			if rec.Result == audit.ResultDead {
				r.Dead = append(r.Dead, id)
			}
		}
	}
	for id, e := range r.Decided {
		switch n := done[e]; {
		case n == 0:
			r.Missing = append(r.Missing, id)
		case n == 1:
			r.ExactlyOnce++
		default:
			r.Repeated = append(r.Repeated, id)
		}
		if r.Results[id][audit.ResultDone] != 1 {
			r.DoneRecords = append(r.DoneRecords, id)
		}
	}
	for e := range done {
		if _, ok := byEffect[e]; !ok {
			r.Unexpected = append(r.Unexpected, e)
		}
	}
	sort.Strings(r.Missing)
	sort.Strings(r.Repeated)
	sort.Strings(r.DoneRecords)
	sort.Strings(r.Dead)
	slices.SortFunc(r.Unexpected, func(a, b Effect) int { return strings.Compare(a.String(), b.String()) })
	return r, nil
}

// Summary is one line for logs and reports.
func (r *Reconciliation) Summary() string {
	kinds := map[string]int{}
	for _, e := range r.Decided {
		kinds[e.Kind]++
	}
	names := make([]string, 0, len(kinds))
	for k := range kinds {
		names = append(names, k)
	}
	sort.Strings(names)
	var parts []string
	for _, k := range names {
		parts = append(parts, fmt.Sprintf("%s %d", k, kinds[k]))
	}
	return fmt.Sprintf("%d actions decided (%s): %d done exactly once, %d missing, %d repeated, %d unexpected effects, %d without exactly one done record, %d dead",
		len(r.Decided), strings.Join(parts, ", "), r.ExactlyOnce, len(r.Missing), len(r.Repeated), len(r.Unexpected), len(r.DoneRecords), len(r.Dead))
}

// Describe returns what the action id was decided to do, for messages.
func (r *Reconciliation) Describe(id string) string {
	e := r.Decided[id]
	return fmt.Sprintf("%s (%s; done %d times at the IM server; records %v)", id, e, r.Done[e], r.Results[id])
}
