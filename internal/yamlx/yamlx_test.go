package yamlx_test

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/timguard/timguard/internal/yamlx"
)

type inner struct {
	Name  string `yaml:"name"`
	Count int    `yaml:"count"`
}

// opaqueField checks its own keys, so the strict walk must not descend.
type opaqueField struct{ keys int }

func (o *opaqueField) UnmarshalYAML(n *yaml.Node) error {
	o.keys = len(n.Content) / 2
	return nil
}

func (opaqueField) YAMLOpaque() {}

// level refuses anything but low, mid and high with yamlx.Errorf.
type level string

func (l *level) UnmarshalYAML(n *yaml.Node) error {
	switch n.Value {
	case "low", "mid", "high":
		*l = level(n.Value)
		return nil
	}
	return yamlx.Errorf(n, "%q is not low, mid or high", n.Value)
}

type embedded struct {
	Extra string `yaml:"extra"`
}

type doc struct {
	Listen   string           `yaml:"listen"`
	Port     int              `yaml:"port"`
	Enabled  bool             `yaml:"enabled"`
	Ratio    float64          `yaml:"ratio"`
	Inner    inner            `yaml:"inner"`
	Ptr      *inner           `yaml:"ptr"`
	Items    []inner          `yaml:"items"`
	ByName   map[string]inner `yaml:"by_name"`
	Free     map[string]any   `yaml:"free"`
	Opaque   opaqueField      `yaml:"opaque"`
	Level    level            `yaml:"level"`
	Levels   []level          `yaml:"levels"`
	Tags     []string         `yaml:"tags"`
	Any      any              `yaml:"any"`
	Hidden   string           `yaml:"-"`
	Untagged string
	Embedded embedded `yaml:",inline"`
}

func decode(t *testing.T, src string, opts yamlx.Options) (doc, []yamlx.Problem) {
	t.Helper()
	var d doc
	err := yamlx.Decode("test.yaml", []byte(src), &d, opts)
	if err == nil {
		return d, nil
	}
	var ye *yamlx.Error
	if !errors.As(err, &ye) {
		t.Fatalf("Decode returned %T (%v), want *yamlx.Error", err, err)
	}
	if ye.File != "test.yaml" {
		t.Errorf("Error.File = %q, want test.yaml", ye.File)
	}
	return d, ye.Problems
}

func TestDecodeReportsUnknownKeys(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want []yamlx.Problem
	}{
		{
			name: "a misspelt top-level key is named with the key it resembles",
			src:  "listne: x\n",
			want: []yamlx.Problem{{Line: 1, Path: "listne", Reason: `unknown key (did you mean "listen"?)`}},
		},
		{
			name: "a key that resembles nothing gets no suggestion",
			src:  "port: 1\nzzzzzzzzzz: 1\n",
			want: []yamlx.Problem{{Line: 2, Path: "zzzzzzzzzz", Reason: "unknown key"}},
		},
		{
			name: "an unknown key in a nested struct carries its full dotted path",
			src:  "inner:\n  name: a\n  cuont: 2\n",
			want: []yamlx.Problem{{Line: 3, Path: "inner.cuont", Reason: `unknown key (did you mean "count"?)`}},
		},
		{
			name: "a struct behind a pointer is walked too",
			src:  "ptr:\n  nam: a\n",
			want: []yamlx.Problem{{Line: 2, Path: "ptr.nam", Reason: `unknown key (did you mean "name"?)`}},
		},
		{
			name: "an unknown key in a list item carries the item's index",
			src:  "items:\n  - name: a\n  - nmae: b\n",
			want: []yamlx.Problem{{Line: 3, Path: "items[1].nmae", Reason: `unknown key (did you mean "name"?)`}},
		},
		{
			name: "an unknown key in a map value carries the map key",
			src:  "by_name:\n  first:\n    count: 1\n    nam: x\n",
			want: []yamlx.Problem{{Line: 4, Path: "by_name.first.nam", Reason: `unknown key (did you mean "name"?)`}},
		},
		{
			name: "every unknown key is reported, not just the first, in line order",
			src:  "lisen: a\ninner:\n  nme: b\nitems:\n  - cont: 1\n  - name: ok\n    bogus: 2\nportt: 3\n",
			want: []yamlx.Problem{
				{Line: 1, Path: "lisen", Reason: `unknown key (did you mean "listen"?)`},
				{Line: 3, Path: "inner.nme", Reason: `unknown key (did you mean "name"?)`},
				{Line: 5, Path: "items[0].cont", Reason: `unknown key (did you mean "count"?)`},
				{Line: 7, Path: "items[1].bogus", Reason: "unknown key"},
				{Line: 8, Path: "portt", Reason: `unknown key (did you mean "port"?)`},
			},
		},
		{
			name: "the keys of a free-form map are never unknown",
			src:  "free:\n  anything: {deep: [1, {deeper: 2}]}\nany: {what: ever}\n",
		},
		{
			name: "an opaque type is not walked",
			src:  "opaque: {whatever: 1, else: 2}\n",
		},
		{
			name: "inline struct fields are known keys",
			src:  "extra: x\n",
		},
		{
			name: "an untagged field is known by its lowercased name",
			src:  "untagged: x\n",
		},
		{
			name: "a field tagged - is not a key",
			src:  "hidden: x\n",
			want: []yamlx.Problem{{Line: 1, Path: "hidden", Reason: "unknown key"}},
		},
		{
			name: "an unknown key under an anchor is reported wherever an alias uses it",
			src:  "items:\n  - &one {name: a, bogus: 1}\n  - *one\n",
			want: []yamlx.Problem{
				{Line: 2, Path: "items[0].bogus", Reason: "unknown key"},
				{Line: 2, Path: "items[1].bogus", Reason: "unknown key"},
			},
		},
		{
			name: "the keys a merge key brings in are checked as the mapping's own",
			src:  "inner: &base {name: a}\nptr:\n  <<: *base\n  count: 2\n",
		},
		{
			name: "a merge of several mappings into a list item is checked",
			src:  "items:\n  - &a {name: a}\n  - &b {count: 1}\n  - <<: [*a, *b]\n    name: c\n",
		},
		{
			name: "an unknown key brought in by a merge is reported at the anchor",
			src:  "inner: &base {name: a}\nfree: {tmpl: &t {nme: x}}\nptr:\n  <<: *t\n",
			want: []yamlx.Problem{{Line: 2, Path: "ptr.nme", Reason: `unknown key (did you mean "name"?)`}},
		},
		{
			name: "a merge key in a map merges entries of the map",
			src:  "by_name:\n  <<: {first: {count: 1}}\n  second: {name: b}\n",
		},
		{
			name: "a quoted << is an ordinary key",
			src:  "\"<<\": {name: a}\n",
			want: []yamlx.Problem{{Line: 1, Path: "<<", Reason: "unknown key"}},
		},
		{
			name: "a known document decodes without problems",
			src:  "listen: a\nport: 2\ninner: {name: n, count: 3}\nitems: [{name: i}]\nby_name: {k: {count: 4}}\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, got := decode(t, tt.src, yamlx.Options{})
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("problems:\n got %q\nwant %q", got, tt.want)
			}
		})
	}
}

func TestDecodeReportsEveryTypeError(t *testing.T) {
	src := "port: abc\nlisten: ok\nenabled: maybe\nlevel: extreme\nlevels: [low, huge, high, tiny]\nratio: 0.5\n"
	d, got := decode(t, src, yamlx.Options{})
	want := []yamlx.Problem{
		{Line: 1, Reason: "cannot unmarshal !!str `abc` into int"},
		{Line: 3, Reason: "cannot unmarshal !!str `maybe` into bool"},
		{Line: 4, Reason: `"extreme" is not low, mid or high`},
		{Line: 5, Reason: `"huge" is not low, mid or high`},
		{Line: 5, Reason: `"tiny" is not low, mid or high`},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("problems:\n got %q\nwant %q", got, want)
	}
	// Decoding went on after each error.
	if d.Listen != "ok" || d.Ratio != 0.5 {
		t.Errorf("fields after the errors were not decoded: listen %q ratio %v", d.Listen, d.Ratio)
	}
	if !reflect.DeepEqual(d.Levels, []level{"low", "high"}) {
		t.Errorf("levels = %q, want the two valid ones", d.Levels)
	}
}

func TestDecodeReportsSyntaxErrorsWithTheirLine(t *testing.T) {
	tests := []struct {
		name     string
		src      string
		wantLine int
		reason   string
	}{
		{name: "a quoted string left open", src: "listen: a\nport: 'open\n", wantLine: 2, reason: "found unexpected end of stream"},
		{name: "a block sequence item among mapping keys", src: "inner:\n  - b\n c: d\n", wantLine: 2, reason: "did not find expected key"},
		{name: "a tab used for indentation", src: "inner:\n\tname: a\n", wantLine: 2, reason: "found character that cannot start any token"},
		{name: "a mapping key defined twice", src: "port: 1\nport: 2\n", wantLine: 2, reason: `mapping key "port" already defined at line 1`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, got := decode(t, tt.src, yamlx.Options{})
			if len(got) != 1 {
				t.Fatalf("got %d problems %q, want 1", len(got), got)
			}
			if got[0].Line != tt.wantLine || !strings.Contains(got[0].Reason, tt.reason) {
				t.Errorf("got %+v, want line %d with %q", got[0], tt.wantLine, tt.reason)
			}
			if strings.HasPrefix(got[0].Reason, "yaml:") || strings.HasPrefix(got[0].Reason, "line") {
				t.Errorf("reason %q repeats the yaml: prefix or the line", got[0].Reason)
			}
			msg := (&yamlx.Error{File: "test.yaml", Problems: got}).Error()
			if strings.Count(msg, fmt.Sprintf("line %d:", tt.wantLine)) != 1 {
				t.Errorf("message %q names the line more than once", msg)
			}
		})
	}
}

func TestDecodeRefusesAnEmptyFile(t *testing.T) {
	for _, src := range []string{"", "# only a comment\n", "\n\n"} {
		_, got := decode(t, src, yamlx.Options{})
		want := []yamlx.Problem{{Reason: "the file is empty"}}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("Decode(%q) problems = %q, want %q", src, got, want)
		}
	}
}

func TestDecodeNodeReturnsTheRootAndFillsWhatItCan(t *testing.T) {
	var d doc
	root, problems := yamlx.DecodeNode([]byte("listen: here\nport: nope\nbogus: 1\n"), &d, yamlx.Options{})
	if root == nil || root.Kind != yaml.MappingNode {
		t.Fatalf("root = %+v, want the top-level mapping", root)
	}
	if len(problems) != 2 {
		t.Errorf("got %d problems %q, want the type error and the unknown key", len(problems), problems)
	}
	if d.Listen != "here" {
		t.Errorf("listen = %q, want here (decoded despite the problems)", d.Listen)
	}
	if root, _ := yamlx.DecodeNode([]byte("a: [\n"), &d, yamlx.Options{}); root != nil {
		t.Errorf("root of a document that is not YAML = %+v, want nil", root)
	}
}

func TestErrorNamesTheFileOnEveryLine(t *testing.T) {
	err := &yamlx.Error{File: "conf/x.yaml", Problems: []yamlx.Problem{
		{Line: 3, Path: "callback.path", Reason: "bad"},
		{Path: "listen", Reason: "worse"},
		{Reason: "the file is empty"},
	}}
	want := "conf/x.yaml: line 3: callback.path: bad\nconf/x.yaml: listen: worse\nconf/x.yaml: the file is empty"
	if got := err.Error(); got != want {
		t.Errorf("Error() =\n%s\nwant\n%s", got, want)
	}
}

func env(vars map[string]string) func(string) (string, bool) {
	return func(name string) (string, bool) {
		v, ok := vars[name]
		return v, ok
	}
}

func TestExpand(t *testing.T) {
	vars := env(map[string]string{"A": "x", "B": "y", "EMPTY": "", "_U1": "u", "lower": "l"})
	tests := []struct {
		name, in, want, err string
	}{
		{name: "a string without references is unchanged", in: "plain text", want: "plain text"},
		{name: "an empty string stays empty", in: "", want: ""},
		{name: "a reference is replaced by the variable", in: "${A}", want: "x"},
		{name: "a reference inside text keeps the text around it", in: "pre-${A}-post", want: "pre-x-post"},
		{name: "adjacent references are both replaced", in: "${A}${B}", want: "xy"},
		{name: "an unset variable expands to nothing", in: "[${UNSET}]", want: "[]"},
		{name: "a default is used when the variable is unset", in: "${UNSET:-def}", want: "def"},
		{name: "a default is used when the variable is empty", in: "${EMPTY:-def}", want: "def"},
		{name: "a set variable wins over its default", in: "${A:-def}", want: "x"},
		{name: "an empty default gives nothing", in: "${UNSET:-}", want: ""},
		{name: "a default may hold a colon", in: "${UNSET:-redis://h:6379}", want: "redis://h:6379"},
		{name: "a default is not expanded again", in: "${UNSET:-$$}", want: "$$"},
		{name: "names may hold underscores, digits and lower case", in: "${_U1}${lower}", want: "ul"},
		{name: "$$ is a literal dollar", in: "$$", want: "$"},
		{name: "$$ before a brace keeps the reference as text", in: "$${A}", want: "${A}"},
		{name: "a dollar without a brace is left alone", in: "cost $5 or $A", want: "cost $5 or $A"},
		{name: "a dollar at the end is left alone", in: "trailing $", want: "trailing $"},
		{name: "an unterminated reference is an error", in: "x ${A", err: `unterminated ${ (write $${ for a literal ${)`},
		{name: "an empty name is an error", in: "${}", err: `${}: "" is not an environment variable name`},
		{name: "a name starting with a digit is an error", in: "${1A}", err: `${1A}: "1A" is not an environment variable name`},
		{name: "a name with a dash is an error", in: "${A-B}", err: `${A-B}: "A-B" is not an environment variable name`},
		{name: "a shell-style default without the colon is an error", in: "${A-def}", err: `"A-def" is not an environment variable name`},
		{name: "spaces around the name are an error", in: "${ A }", err: `" A " is not an environment variable name`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := yamlx.Expand(tt.in, vars)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("Expand(%q) = %q, %v; want an error containing %q", tt.in, got, err, tt.err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("Expand(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestDecodeExpandsInsideScalarsOnly(t *testing.T) {
	vars := env(map[string]string{
		"YAMLISH": "a: b # c",
		"LINES":   "x\nport: 99",
		"FLOW":    "[1, 2]",
		"NUM":     "8080",
		"FLAG":    "true",
		"RATIO":   "0.25",
		"NAME":    "from-env",
		"KEY":     "port",
		"NULLISH": "null",
		"TILDE":   "~",
	})
	tests := []struct {
		name  string
		src   string
		check func(t *testing.T, d doc, problems []yamlx.Problem)
	}{
		{
			name: "a value holding YAML syntax stays one string",
			src:  "listen: ${YAMLISH}\n",
			check: func(t *testing.T, d doc, ps []yamlx.Problem) {
				if len(ps) != 0 || d.Listen != "a: b # c" {
					t.Errorf("listen = %q, problems %q; want the value verbatim", d.Listen, ps)
				}
			},
		},
		{
			name: "a value holding a newline and a key does not add the key",
			src:  "listen: ${LINES}\n",
			check: func(t *testing.T, d doc, ps []yamlx.Problem) {
				if len(ps) != 0 || d.Listen != "x\nport: 99" || d.Port != 0 {
					t.Errorf("listen = %q port = %d problems %q; want the value verbatim and port untouched", d.Listen, d.Port, ps)
				}
			},
		},
		{
			name: "a value holding a flow sequence stays a string",
			src:  "listen: ${FLOW}\n",
			check: func(t *testing.T, d doc, ps []yamlx.Problem) {
				if len(ps) != 0 || d.Listen != "[1, 2]" {
					t.Errorf("listen = %q problems %q", d.Listen, ps)
				}
			},
		},
		{
			name: "a plain scalar is re-resolved so a number decodes into an int",
			src:  "port: ${NUM}\nenabled: ${FLAG}\nratio: ${RATIO}\nany: ${NUM}\n",
			check: func(t *testing.T, d doc, ps []yamlx.Problem) {
				if len(ps) != 0 || d.Port != 8080 || !d.Enabled || d.Ratio != 0.25 || d.Any != 8080 {
					t.Errorf("port %d enabled %v ratio %v any %#v problems %q", d.Port, d.Enabled, d.Ratio, d.Any, ps)
				}
			},
		},
		{
			name: "a value that spells null stays that text",
			src:  "listen: ${NULLISH}\nany: ${TILDE}\n",
			check: func(t *testing.T, d doc, ps []yamlx.Problem) {
				if len(ps) != 0 || d.Listen != "null" || d.Any != "~" {
					t.Errorf("listen %q any %#v problems %q; want the text", d.Listen, d.Any, ps)
				}
			},
		},
		{
			name: "an unset variable in a number field leaves it zero",
			src:  "port: ${UNSET}\nany: ${UNSET}\n",
			check: func(t *testing.T, d doc, ps []yamlx.Problem) {
				if len(ps) != 0 || d.Port != 0 || d.Any != nil {
					t.Errorf("port %d any %#v problems %q; want zero values", d.Port, d.Any, ps)
				}
			},
		},
		{
			name: "a quoted scalar stays a string",
			src:  "any: \"${NUM}\"\nlisten: '${NUM}'\n",
			check: func(t *testing.T, d doc, ps []yamlx.Problem) {
				if len(ps) != 0 || d.Any != "8080" || d.Listen != "8080" {
					t.Errorf("any %#v listen %q problems %q", d.Any, d.Listen, ps)
				}
			},
		},
		{
			name: "a block scalar is expanded and stays a string",
			src:  "any: |\n  ${NUM}\n",
			check: func(t *testing.T, d doc, ps []yamlx.Problem) {
				if len(ps) != 0 || d.Any != "8080\n" {
					t.Errorf("any %#v problems %q", d.Any, ps)
				}
			},
		},
		{
			name: "values in lists and nested maps are expanded",
			src:  "tags: [a, \"${NAME}\"]\nby_name:\n  k:\n    name: ${NAME}\nfree:\n  x: ${NAME}\n",
			check: func(t *testing.T, d doc, ps []yamlx.Problem) {
				if len(ps) != 0 || d.Tags[1] != "from-env" || d.ByName["k"].Name != "from-env" || d.Free["x"] != "from-env" {
					t.Errorf("tags %q by_name %v free %v problems %q", d.Tags, d.ByName, d.Free, ps)
				}
			},
		},
		{
			name: "keys are not expanded",
			src:  "${KEY}: 1\n",
			check: func(t *testing.T, d doc, ps []yamlx.Problem) {
				want := []yamlx.Problem{{Line: 1, Path: "${KEY}", Reason: "unknown key"}}
				if !reflect.DeepEqual(ps, want) || d.Port != 0 {
					t.Errorf("port %d problems %q; want %q", d.Port, ps, want)
				}
			},
		},
		{
			name: "a bad reference is reported with its line and path",
			src:  "listen: ok\ntags:\n  - fine\n  - ${1X}\ninner:\n  name: ${OPEN\n",
			check: func(t *testing.T, d doc, ps []yamlx.Problem) {
				want := []yamlx.Problem{
					{Line: 4, Path: "tags[1]", Reason: `${1X}: "1X" is not an environment variable name`},
					{Line: 6, Path: "inner.name", Reason: `unterminated ${ (write $${ for a literal ${)`},
				}
				if !reflect.DeepEqual(ps, want) {
					t.Errorf("problems:\n got %q\nwant %q", ps, want)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, ps := decode(t, tt.src, yamlx.Options{Getenv: vars})
			tt.check(t, d, ps)
		})
	}
}

func TestDecodeWithoutGetenvKeepsReferences(t *testing.T) {
	d, ps := decode(t, "listen: ${NUM}\nport: 1\n", yamlx.Options{})
	if len(ps) != 0 || d.Listen != "${NUM}" {
		t.Errorf("listen = %q problems %q; want the reference left as written", d.Listen, ps)
	}
}

func TestOSGetenvReadsTheProcessEnvironment(t *testing.T) {
	t.Setenv("YAMLX_TEST_VAR", "set")
	if v, ok := yamlx.OSGetenv("YAMLX_TEST_VAR"); !ok || v != "set" {
		t.Errorf("OSGetenv(YAMLX_TEST_VAR) = %q, %v; want set, true", v, ok)
	}
	if _, ok := yamlx.OSGetenv("YAMLX_TEST_SURELY_UNSET"); ok {
		t.Error("OSGetenv of an unset variable reported it set")
	}
}

func TestErrorfIsATypeErrorWithTheLine(t *testing.T) {
	n := &yaml.Node{Kind: yaml.ScalarNode, Value: "v", Line: 7}
	err := yamlx.Errorf(n, "%q is wrong", n.Value)
	var te *yaml.TypeError
	if !errors.As(err, &te) || len(te.Errors) != 1 || te.Errors[0] != `line 7: "v" is wrong` {
		t.Errorf("Errorf = %#v, want a *yaml.TypeError holding line 7: \"v\" is wrong", err)
	}
}

func FuzzExpand(f *testing.F) {
	// The seeds are in testdata/fuzz/FuzzExpand.
	empty := func(string) (string, bool) { return "", false }
	f.Fuzz(func(t *testing.T, s string) {
		out, err := yamlx.Expand(s, empty)
		if !strings.Contains(s, "$") && (err != nil || out != s) {
			t.Fatalf("Expand(%q) = %q, %v; a string without $ must come back unchanged", s, out, err)
		}
		// With every variable unset, each reference shrinks to its default.
		if err == nil && len(out) > len(s) {
			t.Fatalf("Expand(%q) = %q grew with no variables set", s, out)
		}
	})
}

func FuzzDecode(f *testing.F) {
	// The seeds are in testdata/fuzz/FuzzDecode.
	f.Fuzz(func(t *testing.T, data []byte) {
		var d doc
		root, problems := yamlx.DecodeNode(data, &d, yamlx.Options{Getenv: env(map[string]string{"A": "a: b"})})
		if root == nil && len(problems) == 0 {
			t.Fatal("no root and no problem")
		}
		for i, p := range problems {
			if p.Reason == "" || p.Line < 0 {
				t.Fatalf("problem %d is %+v: every problem needs a reason and a line >= 0", i, p)
			}
			if i > 0 && problems[i-1].Line > p.Line {
				t.Fatalf("problems are not sorted by line: %q", problems)
			}
		}
	})
}

func TestDecodeFillsWhatAMergeKeyBringsIn(t *testing.T) {
	d, ps := decode(t, "inner: &base {name: a, count: 1}\nptr:\n  <<: *base\n  count: 2\n", yamlx.Options{})
	if len(ps) != 0 || d.Ptr == nil || d.Ptr.Name != "a" || d.Ptr.Count != 2 {
		t.Errorf("ptr = %+v problems %q; want the merged name and the own count", d.Ptr, ps)
	}
}

func TestDecodeRefusesAliasCyclesWithTheirLine(t *testing.T) {
	cases := []struct {
		name     string
		src      string
		wantLine int
		wantPath string
	}{
		{"a mapping that merges itself", "by_name: &i\n  a: {name: x}\n  <<: *i\n", 3, "by_name.<<"},
		{"a struct that merges itself", "inner: &i\n  name: x\n  <<: *i\n", 3, "inner.<<"},
		{"a list that holds itself", "tags: &t [a, *t]\n", 1, "tags[1]"},
		{"a cycle two levels down", "ptr: &p\n  name: x\nitems:\n  - &q\n    name: y\n    <<: [*p, *q]\n", 6, "items[0].<<[1]"},
		{"a cycle inside a free-form value", "free: &f\n  k: [1, {deep: *f}]\n", 2, "free.k[1].deep"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, ps := decode(t, tc.src, yamlx.Options{})
			if len(ps) != 1 {
				t.Fatalf("problems %q, want exactly the alias cycle", ps)
			}
			p := ps[0]
			if p.Line != tc.wantLine || p.Path != tc.wantPath || !strings.Contains(p.Reason, "alias cycle") {
				t.Errorf("problem %+v, want line %d, path %s, an alias cycle", p, tc.wantLine, tc.wantPath)
			}
		})
	}
}

// billionLaughs builds the classic alias bomb: each level is a list of ten
// aliases to the level before, so the document is tiny but expands to
// 10^levels nodes.
func billionLaughs(levels int) string {
	var b strings.Builder
	b.WriteString("free:\n  l0: &l0 [lol]\n")
	for i := 1; i <= levels; i++ {
		fmt.Fprintf(&b, "  l%d: &l%d [", i, i)
		for j := range 10 {
			if j > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "*l%d", i-1)
		}
		b.WriteString("]\n")
	}
	return b.String()
}

func TestDecodeBoundsAliasExpansion(t *testing.T) {
	_, ps := decode(t, billionLaughs(9), yamlx.Options{})
	if len(ps) != 1 || ps[0].Line < 2 || !strings.Contains(ps[0].Reason, "aliases expand") {
		t.Fatalf("problems %q, want one problem naming the line where aliases expand too far", ps)
	}
	// A document that reuses a list a few times stays valid.
	d, ps := decode(t, billionLaughs(3), yamlx.Options{})
	if len(ps) != 0 || len(d.Free) != 4 {
		t.Errorf("three levels of aliases: problems %q, free %d keys; want it decoded", ps, len(d.Free))
	}
}

func TestDecodeBoundsDepth(t *testing.T) {
	cases := []struct {
		name string
		src  string
	}{
		{"written nesting", "free: {k: " + strings.Repeat("[", yamlx.MaxDepth) + strings.Repeat("]", yamlx.MaxDepth) + "}\n"},
		{"nesting built by aliases", func() string {
			var b strings.Builder
			b.WriteString("free:\n  a0: &a0 [x]\n")
			for i := 1; i <= yamlx.MaxDepth; i++ {
				fmt.Fprintf(&b, "  a%d: &a%d [*a%d]\n", i, i, i-1)
			}
			return b.String()
		}()},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, ps := decode(t, tc.src, yamlx.Options{})
			if len(ps) != 1 || ps[0].Line < 1 || !strings.Contains(ps[0].Reason, "nested deeper than") {
				t.Errorf("problems %q, want one problem naming the line nested too deep", ps)
			}
		})
	}
	// Nesting within the limit decodes.
	n := yamlx.MaxDepth - 5
	if _, ps := decode(t, "free: {k: "+strings.Repeat("[", n)+strings.Repeat("]", n)+"}\n", yamlx.Options{}); len(ps) != 0 {
		t.Errorf("nesting of %d: problems %q, want none", n, ps)
	}
}

func TestErrorOfAnAliasCycleNamesFileAndLine(t *testing.T) {
	var d doc
	err := yamlx.Decode("rules.yaml", []byte("by_name: &i\n  a: {name: x}\n  <<: *i\n"), &d, yamlx.Options{})
	if err == nil || !strings.HasPrefix(err.Error(), "rules.yaml: line 3: ") {
		t.Errorf("error %v, want it to start with rules.yaml: line 3:", err)
	}
}
