package rules

import (
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

const exampleFile = "../rules.example.yaml"

func TestTheExampleRulesCompile(t *testing.T) {
	set, err := Load(exampleFile)
	if err != nil {
		t.Fatalf("the example does not compile:\n%v", err)
	}
	if len(set.Rules) != 15 || len(set.Counters) != 3 || len(set.Lists) != 4 || len(set.Schedules) != 2 {
		t.Errorf("the example compiled to %s", set.Summary())
	}
	if set.UserTTL != 90*24*time.Hour {
		t.Errorf("users.forget_after = %v, want 90d", set.UserTTL)
	}
	if set.StrikeDecay != 24*time.Hour {
		t.Errorf("strike decay = %v, want 24h", set.StrikeDecay)
	}
	for _, r := range set.Rules {
		if r.cond == nil || len(r.On) == 0 {
			t.Errorf("rule %s has no condition or no kind", r.Name)
		}
		if set.Rule(r.Name) != r {
			t.Errorf("Rule(%q) does not find it", r.Name)
		}
	}
	if set.Rule("no-such-rule") != nil {
		t.Error("Rule finds a rule that does not exist")
	}
	tests := 0
	for _, r := range set.Rules {
		for _, tt := range r.Tests {
			tests++
			if tt.Rule != r || tt.Event == nil || len(tt.Body) == 0 || !containsKind(r.On, tt.Kind()) {
				t.Errorf("rule %s test %s is not built: %+v", r.Name, tt.Name, tt)
			}
		}
	}
	if tests != 29 {
		t.Errorf("%d kept tests compiled, want the example's 29", tests)
	}
}

func TestEveryKindHasAPlanInTheExample(t *testing.T) {
	set, err := Load(exampleFile)
	if err != nil {
		t.Fatal(err)
	}
	want := map[Kind]struct {
		rules    []string
		counters []string
		budgeted []string
		modes    bool
	}{
		JoinRequest:    {[]string{"trusted-fast-lane", "banned-applicants", "link-in-application"}, []string{"group_joins_1m"}, nil, false},
		Invite:         {[]string{"banned-invitees"}, nil, nil, false},
		Message:        {[]string{"spam-words", "repeat-offender", "flood", "link-spam", "newcomer-links", "at-all-by-members", "mask-slurs", "night-links", "images-from-newcomers"}, []string{"user_msgs_10s", "user_links_1h"}, []string{"flood"}, true},
		MessageSent:    {},
		MemberJoined:   {[]string{"raid"}, []string{"group_joins_1m"}, []string{"raid"}, false},
		MemberLeft:     {[]string{"leave-notice"}, nil, nil, false},
		GroupDestroyed: {},
	}
	for _, k := range Kinds() {
		t.Run(string(k), func(t *testing.T) {
			p := set.Plan(k)
			if p == nil || p.Kind != k {
				t.Fatalf("Plan(%s) = %+v", k, p)
			}
			var rules, counters, budgeted []string
			for _, r := range p.Rules {
				rules = append(rules, r.Name)
			}
			for _, c := range p.Counters {
				if !c.Touch {
					t.Errorf("counter %s is only read; every example counter is touched by the kinds that read it", c.Counter.Name)
				}
				counters = append(counters, c.Counter.Name)
			}
			for _, r := range p.Budgeted {
				budgeted = append(budgeted, r.Name)
			}
			w := want[k]
			if !reflect.DeepEqual(rules, w.rules) || !reflect.DeepEqual(counters, w.counters) ||
				!reflect.DeepEqual(budgeted, w.budgeted) || p.UsesModes != w.modes {
				t.Errorf("plan: rules %q counters %q budgeted %q modes %v; want %+v", rules, counters, budgeted, p.UsesModes, w)
			}
		})
	}
}

func TestTheExampleKeptTestsCarryTheirExpectations(t *testing.T) {
	set, err := Load(exampleFile)
	if err != nil {
		t.Fatal(err)
	}
	raid := set.Rule("raid").Tests[0]
	if raid.Name != "the 31st join in a minute mutes the group" || raid.State.Counters["group_joins_1m"] != 31 || raid.Kind() != MemberJoined {
		t.Errorf("raid test: %+v", raid)
	}
	wantActions := []Resolved{{Kind: ActMuteGroup, Seconds: 900, Announce: "The group can talk again."}}
	if !reflect.DeepEqual(raid.Expect.Actions, wantActions) || !raid.Expect.HasActions {
		t.Errorf("raid expects %+v, want %+v", raid.Expect.Actions, wantActions)
	}
	if quiet := set.Rule("raid").Tests[1]; !quiet.Expect.HasActions || len(quiet.Expect.Actions) != 0 {
		t.Errorf("`actions: []` should expect no actions: %+v", quiet.Expect)
	}
	spam := set.Rule("spam-words").Tests[1]
	if spam.Expect.Verdict == nil || *spam.Expect.Verdict != None {
		t.Errorf("`verdict: none` should expect no verdict: %+v", spam.Expect.Verdict)
	}
	if admin := set.Rule("spam-words").Tests[2]; admin.State.Role != RoleAdmin {
		t.Errorf("role = %q, want admin", admin.State.Role)
	}
	banned := set.Rule("banned-applicants").Tests[0]
	if banned.Expect.Reply == nil || *banned.Expect.Reply != (Reply{Code: 10110, Text: "You cannot join this group."}) {
		t.Errorf("reply = %+v", banned.Expect.Reply)
	}
	if night := set.Rule("night-links").Tests[0]; !reflect.DeepEqual(night.State.Modes, []string{"night"}) {
		t.Errorf("modes = %q", night.State.Modes)
	}
	if shadow := set.Rule("images-from-newcomers").Tests[0]; !reflect.DeepEqual(shadow.Expect.Shadow, []string{"images-from-newcomers"}) {
		t.Errorf("shadow = %q", shadow.Expect.Shadow)
	}
	if mask := set.Rule("mask-slurs").Tests[0]; mask.Expect.Text == nil || *mask.Expect.Text != "you *****" {
		t.Errorf("text = %v", mask.Expect.Text)
	}
	flood := set.Rule("flood").Tests[1]
	if want := []Resolved{{Kind: ActMute, Seconds: 1200}, {Kind: ActStrike, N: 1}}; !reflect.DeepEqual(flood.Expect.Actions, want) {
		t.Errorf("flood expects %+v, want %+v", flood.Expect.Actions, want)
	}
}

func TestTheExampleSchedules(t *testing.T) {
	set, err := Load(exampleFile)
	if err != nil {
		t.Fatal(err)
	}
	quiet, night := set.Schedules[0], set.Schedules[1]
	if quiet.Name != "quiet-hours" || quiet.Location.String() != "Asia/Shanghai" || len(quiet.Actions) != 1 || quiet.Mode != nil {
		t.Errorf("quiet-hours = %+v", quiet)
	}
	if night.Mode == nil || *night.Mode != (ModeSwitch{Name: "night", For: 8 * time.Hour}) || len(night.Actions) != 0 {
		t.Errorf("night-mode = %+v", night)
	}
	// 23:00 in Shanghai is 15:00 UTC.
	sched, err := ParseCron(quiet.Cron, quiet.Location)
	if err != nil {
		t.Fatal(err)
	}
	next := sched.Next(time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC))
	if want := time.Date(2026, 11, 21, 15, 0, 0, 0, time.UTC); !next.Equal(want) {
		t.Errorf("next quiet hours after noon UTC = %v, want %v", next, want)
	}
}

func TestExampleExpressionsRunOnAnEmptyInput(t *testing.T) {
	set, err := Load(exampleFile)
	if err != nil {
		t.Fatal(err)
	}
	e := set.Env()
	defer e.Release()
	for _, k := range Kinds() {
		e.Fill(&Input{Kind: k})
		for _, r := range set.Plan(k).Rules {
			if _, err := r.Match(e); err != nil {
				t.Errorf("rule %s on an empty %s event: %v", r.Name, k, err)
			}
			for _, a := range r.Actions {
				if _, err := a.Resolve(e); err != nil {
					t.Errorf("rule %s action %s: %v", r.Name, a.Kind, err)
				}
			}
		}
		for _, c := range set.Plan(k).Counters {
			if _, _, err := c.Counter.KeyFor(e); err != nil {
				t.Errorf("counter %s: %v", c.Counter.Name, err)
			}
		}
	}
}

func TestValidateCronAndParseCron(t *testing.T) {
	shanghai, err := LoadTimezone("Asia/Shanghai")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		spec string
		ok   bool
	}{
		{"five fields", "0 23 * * *", true},
		{"ranges and steps", "*/15 9-17 * * 1-5", true},
		{"names of days and months", "0 8 * JAN-MAR MON", true},
		{"a descriptor", "@daily", true},
		{"an interval descriptor", "@every 1h", true},
		{"six fields with seconds", "0 0 23 * * *", false},
		{"four fields", "0 23 * *", false},
		{"a minute out of range", "60 * * * *", false},
		{"an hour out of range", "0 24 * * *", false},
		{"an unknown descriptor", "@fortnightly", false},
		{"empty", "", false},
		{"blank", "   ", false},
		{"a CRON_TZ prefix", "CRON_TZ=UTC 0 23 * * *", false},
		{"a TZ prefix", "TZ=UTC 0 23 * * *", false},
		{"a bare CRON_TZ", "CRON_TZ=", false},
		{"garbage", "every night at eleven", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidateCron(tt.spec)
			if (err == nil) != tt.ok {
				t.Errorf("ValidateCron(%q) = %v, want ok %v", tt.spec, err, tt.ok)
			}
			if tt.ok {
				if s, err := ParseCron(tt.spec, shanghai); err != nil || s == nil {
					t.Errorf("ParseCron(%q) = %v, %v", tt.spec, s, err)
				}
			} else if err != nil && tt.spec != "" && !strings.Contains(err.Error(), strings.TrimSpace(tt.spec)) {
				t.Errorf("the error %q does not name the spec", err)
			}
		})
	}
	// The location is the schedule's timezone.
	s, err := ParseCron("0 23 * * *", shanghai)
	if err != nil {
		t.Fatal(err)
	}
	next := s.Next(time.Date(2026, 1, 1, 0, 0, 0, 0, shanghai))
	if next.In(shanghai).Hour() != 23 || next.In(time.UTC).Hour() != 15 {
		t.Errorf("next = %v, want 23:00 in Shanghai", next)
	}
	// A nil location is UTC.
	if s, err := ParseCron("0 23 * * *", nil); err != nil || s.Next(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)).Hour() != 23 {
		t.Errorf("ParseCron with a nil location: %v", err)
	}
}

func TestLoadTimezone(t *testing.T) {
	tests := []struct {
		name string
		tz   string
		ok   bool
	}{
		{"a region/city name", "Asia/Shanghai", true},
		{"another region/city name", "Europe/Berlin", true},
		{"UTC", "UTC", true},
		{"the machine's zone", "Local", false},
		{"an unknown city", "Mars/Olympus", false},
		{"a lower-case local", "local", false},
		{"a path outside the zone database", "../../etc/passwd", false},
		{"an absolute path", "/etc/localtime", false},
		{"a region without a city", "Asia", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			loc, err := LoadTimezone(tt.tz)
			if (err == nil) != tt.ok {
				t.Fatalf("LoadTimezone(%q) = %v, %v; want ok %v", tt.tz, loc, err, tt.ok)
			}
			if tt.ok && loc.String() != tt.tz {
				t.Errorf("location %q, want %q", loc, tt.tz)
			}
			if !tt.ok && !strings.Contains(err.Error(), strconv.Quote(tt.tz)) {
				t.Errorf("the error %q does not name the zone", err)
			}
		})
	}
}
