package rules

import (
	"os"
	"testing"
)

func BenchmarkParseExample(b *testing.B) {
	data, err := os.ReadFile(exampleFile)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(exampleFile, data); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEnvFill(b *testing.B) {
	set, err := Load(exampleFile)
	if err != nil {
		b.Fatal(err)
	}
	in := sampleInput()
	in.Text = "good morning, everyone"
	in.Counters = []int{1, 2, 3}
	e := set.Env()
	defer e.Release()
	b.ReportAllocs()
	for b.Loop() {
		e.Fill(&in)
	}
}

// BenchmarkEnvFillFewReads fills the environment of a set whose rules read
// a few variables, as most rule files do.
func BenchmarkEnvFillFewReads(b *testing.B) {
	set, err := Parse("rules.yaml", []byte(ruleIf(`user.strikes > 3 || (counters.user_msgs > 5 && message.text contains "t.me/")`)))
	if err != nil {
		b.Fatal(err)
	}
	in := sampleInput()
	in.Text = "Good morning, everyone"
	in.Counters = []int{300, 400}
	e := set.Env()
	defer e.Release()
	b.ReportAllocs()
	for b.Loop() {
		e.Fill(&in)
	}
}

// BenchmarkMatchExampleMessage evaluates every message rule of the example
// on a message no rule matches: the common path.
func BenchmarkMatchExampleMessage(b *testing.B) {
	set, err := Load(exampleFile)
	if err != nil {
		b.Fatal(err)
	}
	in := sampleInput()
	in.UserID, in.UserStrikes, in.AtAll, in.URLs = "carol", 0, false, nil
	in.Text = "good morning, everyone"
	in.Counters = []int{1, 2, 3}
	rules := set.Plan(Message).Rules
	e := set.Env()
	defer e.Release()
	e.Fill(&in)
	b.ReportAllocs()
	for b.Loop() {
		for _, r := range rules {
			if ok, err := r.Match(e); ok || err != nil {
				b.Fatalf("rule %s matched: %v", r.Name, err)
			}
		}
	}
}
