package rules

import (
	"strconv"
	"strings"
	"testing"
)

// keyExprs are key expressions of the shapes counters use: those that only
// join string fields and literals are put together without the expression,
// the others run it.
var keyExprs = []struct {
	src  string
	join bool
}{
	{`group.id + "/" + user.id`, true},
	{`group.id`, true},
	{`user.id`, true},
	{`"all"`, true},
	{`"g:" + group.id`, true},
	{`group.id + ":" + group.type + ":" + user.id + "/" + group.topic`, true},
	{`operator.id + ("/" + user.id)`, true},
	{`("a" + "b") + group.id`, true},
	{`message.text + apply.msg + join.type + exit.type + event`, true},
	{`group.id + "/" + lower(user.id)`, false},
	{`lower(group.id)`, false},
	{`group.id + "/" + string(len(user.id))`, false},
	{`user.id != "" ? group.id + "/" + user.id : group.id`, false},
	{`group.id + "/" + (operator.id ?? "")`, false},
	{`trim(group.id)`, false},
	{`join(message.urls, ",")`, false},
	{`lower(message.text) + "/" + user.id`, true}, // a field lowered once per event
}

// keySet compiles one counter per key expression.
func keySet(t testing.TB) *Set {
	t.Helper()
	var b strings.Builder
	b.WriteString("version: 1\ncounters:\n  - {name: c0, on: message, key: group.id, window: 10s}\n")
	for i, k := range keyExprs {
		b.WriteString("  - {name: k" + strconv.Itoa(i) + ", on: message, key: " + strconv.Quote(k.src) + ", window: 10s}\n")
	}
	return mustParse(t, b.String())
}

func TestCounterKeysThatJoinFieldsSkipTheExpression(t *testing.T) {
	set := keySet(t)
	for i, k := range keyExprs {
		t.Run(k.src, func(t *testing.T) {
			c := set.Counters[i+1]
			if got := c.keyParts != nil; got != k.join {
				t.Errorf("joined without the expression = %v, want %v (parts %v)", got, k.join, c.keyParts)
			}
		})
	}
}

// checkKeys compares every counter's key with what its expression gives.
func checkKeys(t *testing.T, set *Set, in Input) {
	t.Helper()
	e := set.Env()
	defer e.Release()
	e.Fill(&in)
	for _, c := range set.Counters {
		got, _, gotErr := c.KeyFor(e)
		want, wantErr := c.keyByVM(e)
		if got != want || (gotErr == nil) != (wantErr == nil) {
			t.Errorf("counter %s (%s): KeyFor = %q, %v; the expression gives %q, %v", c.Name, c.key.src, got, gotErr, want, wantErr)
		}
	}
}

func TestCounterKeysAreWhatTheExpressionGives(t *testing.T) {
	set := keySet(t)
	tests := []struct {
		name string
		edit func(*Input)
	}{
		{"a sample message", func(*Input) {}},
		{"empty fields", func(in *Input) { *in = Input{Kind: Message} }},
		{"a group-wide event", func(in *Input) { in.UserID = "" }},
		{"unicode and separators", func(in *Input) {
			in.GroupID, in.UserID, in.TopicID = "@TGS#群/1|x", "用户 Ünal", "@TGS#_topic"
		}},
		{"a long text", func(in *Input) { in.Text = strings.Repeat("spam ", 1000) }},
		{"an admin", func(in *Input) { in.UserRole = RoleAdmin }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := sampleInput()
			tt.edit(&in)
			checkKeys(t, set, in)
		})
	}
}

// A field that does not hold a string (never the case after Fill) is left
// to the expression, which reports it.
func TestCounterKeyOfAFieldWithoutAStringRunsTheExpression(t *testing.T) {
	set := keySet(t)
	e := set.Env()
	defer e.Release()
	in := sampleInput()
	e.Fill(&in)
	e.m[varUserID] = 7
	c := set.Counters[1] // group.id + "/" + user.id
	if _, ok := c.joinKey(e); ok {
		t.Fatal("joinKey put together a key from an int")
	}
	_, _, err := c.KeyFor(e)
	_, want := c.keyByVM(e)
	if err == nil || want == nil || err.Error() != want.Error() {
		t.Errorf("KeyFor error = %v, want the expression's %v", err, want)
	}
}

func FuzzCounterKey(f *testing.F) {
	f.Add("@TGS#1", "alice", "Public", "op", "", "hello")
	f.Add("", "", "", "", "", "")
	f.Add("g/1|2", "用户", "AVChatRoom", "\x00", "@TGS#_t", "\xff\xfe")
	set := keySet(f)
	f.Fuzz(func(t *testing.T, group, user, groupType, operator, topic, text string) {
		in := sampleInput()
		in.GroupID, in.UserID, in.GroupType, in.OperatorID, in.TopicID, in.Text = group, user, groupType, operator, topic, text
		checkKeys(t, set, in)
	})
}

func BenchmarkCounterKeyFor(b *testing.B) {
	set := keySet(b)
	in := sampleInput()
	e := set.Env()
	defer e.Release()
	e.Fill(&in)
	c := set.Counters[1]
	b.Run("joined", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, _, err := c.KeyFor(e); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("expression", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := c.keyByVM(e); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// Keys are cut from a buffer the Env keeps from callback to callback: a key
// stays what it was however many keys (and Env.Key joins) come after it,
// in the same buffer or in the next ones.
func TestCounterKeysStayWhatTheyWereAfterManyMore(t *testing.T) {
	set := keySet(t)
	e := set.Env()
	defer e.Release()
	type kept struct{ key, want string }
	var keys []kept
	for i := range 200 {
		in := Input{Kind: Message, GroupID: "@TGS#" + strconv.Itoa(i), UserID: "user" + strconv.Itoa(i), Text: strings.Repeat("x", i)}
		e.Fill(&in)
		for _, c := range set.Counters {
			got, _, err := c.KeyFor(e)
			if err != nil {
				continue
			}
			want, _ := c.keyByVM(e)
			keys = append(keys, kept{got, strings.Clone(want)})
		}
		joined := e.Key("budget|", "r"+strconv.Itoa(i), "|", in.GroupID)
		keys = append(keys, kept{joined, "budget|r" + strconv.Itoa(i) + "|" + in.GroupID})
	}
	for i, k := range keys {
		if k.key != k.want {
			t.Fatalf("key %d is %q, want %q", i, k.key, k.want)
		}
	}
}
