package config

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/timguard/timguard/rules"
)

// loadRulesFake stands for policy.LoadRules: the rule file's content is its
// version, and "bad" does not load.
func loadRulesFake(path string) (*rules.Set, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	v := strings.TrimSpace(string(data))
	if v == "bad" {
		return nil, errors.New(path + ": rule \"x\": does not compile")
	}
	return &rules.Set{File: path, Version: v}, nil
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// startCoordinator writes a config and a rule file of version v1 in a
// directory of the test's and returns a coordinator started on them, with
// its metrics in reg (none when nil), and the files' paths.
func startCoordinator(t *testing.T, reg prometheus.Registerer) (c *Coordinator, cfgPath, rulesPath string) {
	t.Helper()
	dir := t.TempDir()
	cfgPath, rulesPath = filepath.Join(dir, "config.yaml"), filepath.Join(dir, "rules.yaml")
	writeFile(t, cfgPath, "tencent:\n  sdk_app_id: 1400000000\nrules_file: rules.yaml\n")
	writeFile(t, rulesPath, "v1")
	cfg, err := Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	set, _ := loadRulesFake(rulesPath)
	c, err = NewCoordinator(CoordinatorOptions{Path: cfgPath, LoadRules: loadRulesFake, Registerer: reg}, &Snapshot{Config: cfg, Rules: set})
	if err != nil {
		t.Fatal(err)
	}
	return c, cfgPath, rulesPath
}

func TestTheCoordinatorTellsSubscribersInOrderAndKeepsTheGoodRulesOnABadFile(t *testing.T) {
	c, cfgPath, rulesPath := startCoordinator(t, nil)
	var heard []string
	c.Subscribe(
		func(ch Change) { heard = append(heard, "first "+ch.Prev.Rules.Version+"->"+ch.Next.Rules.Version) },
		func(ch Change) {
			if ch.Failed() {
				heard = append(heard, "second failed: "+ch.Err.Error())
				return
			}
			heard = append(heard, "second "+ch.Next.Rules.Version)
		},
	)

	writeFile(t, rulesPath, "v2")
	if s, err := c.Reload(t.Context()); err != nil || s.Rules.Version != "v2" {
		t.Fatalf("reload of good rules: %v, %v", s, err)
	}
	writeFile(t, rulesPath, "bad")
	s, err := c.Reload(t.Context())
	if err == nil || !strings.Contains(err.Error(), `rules: `+rulesPath+`: rule "x": does not compile`) {
		t.Errorf("reload of a bad rule file: %v, want the rule file's error", err)
	}
	if s.Rules.Version != "v2" || c.Current().Rules.Version != "v2" {
		t.Errorf("after a bad reload %q is in force, want the good v2", c.Current().Rules.Version)
	}
	writeFile(t, cfgPath, "tencent:\n  sdk_app_id: 1400000000\nrules_file: rules.yaml\nnot_a_key: 1\n")
	if _, err := c.Reload(t.Context()); err == nil || !strings.Contains(err.Error(), "not_a_key") {
		t.Errorf("reload of a bad config: %v, want the unknown key named", err)
	}
	want := []string{
		"first v1->v2", "second v2",
		"first v2->v2", "second failed: rules: " + rulesPath + `: rule "x": does not compile`,
		"first v2->v2",
	}
	if len(heard) != 6 || !slices.Equal(heard[:5], want) || !strings.HasPrefix(heard[5], "second failed: ") {
		t.Errorf("subscribers heard\n%q\nwant\n%q and the config error", heard, want)
	}
}

func TestACoordinatorNeedsItsPathLoaderAndStartingSnapshot(t *testing.T) {
	if _, err := NewCoordinator(CoordinatorOptions{Path: "c.yaml"}, &Snapshot{}); err == nil {
		t.Error("a coordinator without a rule loader was built")
	}
	if _, err := NewCoordinator(CoordinatorOptions{Path: "c.yaml", LoadRules: loadRulesFake}, nil); err == nil {
		t.Error("a coordinator without a starting snapshot was built")
	}
}

// A reload is counted only once its subscribers have put it in force, and
// the gauges of the reload are set before the counter: whoever sees the
// reload counted (a test, a deploy script polling /metrics) sees its rules
// version, and the rules decide callbacks.
func TestAReloadIsCountedAfterItIsInForce(t *testing.T) {
	reg := prometheus.NewRegistry()
	c, _, rulesPath := startCoordinator(t, reg)
	count := func(result string) float64 { return value(t, c.reloads.WithLabelValues(result)) }
	type seen struct{ success, failure float64 }
	var during []seen
	c.Subscribe(func(Change) { during = append(during, seen{count("success"), count("failure")}) })

	writeFile(t, rulesPath, "v2")
	if _, err := c.Reload(t.Context()); err != nil {
		t.Fatal(err)
	}
	writeFile(t, rulesPath, "bad")
	if _, err := c.Reload(t.Context()); err == nil {
		t.Fatal("a bad rule file reloaded")
	}
	// The start counts as a success; each subscriber call saw the counts
	// before its own reload.
	if want := []seen{{1, 0}, {2, 0}}; !slices.Equal(during, want) {
		t.Errorf("while the subscribers ran the counts were %v, want %v", during, want)
	}
	if s, f := count("success"), count("failure"); s != 2 || f != 1 {
		t.Errorf("after the reloads: %v succeeded, %v failed; want 2 and 1", s, f)
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var versions []string
	for _, f := range families {
		if f.GetName() == "timguard_rules_info" {
			for _, m := range f.GetMetric() {
				versions = append(versions, m.GetLabel()[0].GetValue())
			}
		}
	}
	if !slices.Equal(versions, []string{"v2"}) {
		t.Errorf("timguard_rules_info names the versions %q, want only v2, the one in force", versions)
	}
	if got := value(t, c.reloadOK); got != 0 {
		t.Errorf("timguard_config_last_reload_successful = %v after a failed reload, want 0", got)
	}
}

// value is the value of a counter or gauge.
func value(t *testing.T, m prometheus.Metric) float64 {
	t.Helper()
	var out dto.Metric
	if err := m.Write(&out); err != nil {
		t.Fatal(err)
	}
	if c := out.GetCounter(); c != nil {
		return c.GetValue()
	}
	return out.GetGauge().GetValue()
}
