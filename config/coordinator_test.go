package config

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

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

func TestTheCoordinatorTellsSubscribersInOrderAndKeepsTheGoodRulesOnABadFile(t *testing.T) {
	dir := t.TempDir()
	cfgPath, rulesPath := filepath.Join(dir, "config.yaml"), filepath.Join(dir, "rules.yaml")
	writeFile(t, cfgPath, "tencent:\n  sdk_app_id: 1400000000\nrules_file: rules.yaml\n")
	writeFile(t, rulesPath, "v1")
	cfg, err := Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	set, _ := loadRulesFake(rulesPath)
	c, err := NewCoordinator(CoordinatorOptions{Path: cfgPath, LoadRules: loadRulesFake}, &Snapshot{Config: cfg, Rules: set})
	if err != nil {
		t.Fatal(err)
	}
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
