package timtest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/timguard/timguard/tim"
)

// fields is a request body by exact key. The real server matches field
// names case-sensitively, so the fake does not use encoding/json's
// case-insensitive struct matching: a misspelled tag in the client must
// fail here as it would there.
type fields map[string]json.RawMessage

func parseFields(body []byte) (fields, *apiError) {
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 {
		return nil, &apiError{tim.CodeJSONParse, "the body is empty; send {} when there is nothing to send"}
	}
	if trimmed[0] != '{' {
		return nil, &apiError{tim.CodeJSONParse, "the body is not a JSON object"}
	}
	var f fields
	if err := json.Unmarshal(trimmed, &f); err != nil {
		return nil, &apiError{tim.CodeJSONParse, "the body does not parse: " + err.Error()}
	}
	return f, nil
}

func missing(key string) *apiError {
	return &apiError{tim.CodeBadParameter, key + " is missing"}
}

func wrongType(key, want string) *apiError {
	return &apiError{tim.CodeJSONParse, key + " is not " + want}
}

func badParam(format string, args ...any) *apiError {
	return &apiError{tim.CodeBadParameter, fmt.Sprintf(format, args...)}
}

func (f fields) has(key string) bool {
	raw, ok := f[key]
	return ok && string(bytes.TrimSpace(raw)) != "null"
}

// str reads a string field. A required field must be present and not empty.
func (f fields) str(key string, required bool) (string, *apiError) {
	if !f.has(key) {
		if required {
			return "", missing(key)
		}
		return "", nil
	}
	var s string
	if json.Unmarshal(f[key], &s) != nil {
		return "", wrongType(key, "a string")
	}
	if required && s == "" {
		return "", badParam("%s is empty", key)
	}
	return s, nil
}

// strs reads an array of non-empty strings. A required one must have at
// least one element; limit > 0 bounds its length.
func (f fields) strs(key string, required bool, limit int) ([]string, *apiError) {
	if !f.has(key) {
		if required {
			return nil, missing(key)
		}
		return nil, nil
	}
	var list []string
	if json.Unmarshal(f[key], &list) != nil {
		return nil, wrongType(key, "an array of strings")
	}
	return list, checkList(key, list, required, limit)
}

func checkList(key string, list []string, required bool, limit int) *apiError {
	if required && len(list) == 0 {
		return badParam("%s is empty", key)
	}
	if limit > 0 && len(list) > limit {
		return badParam("%s has %d entries, at most %d", key, len(list), limit)
	}
	for i, s := range list {
		if s == "" {
			return badParam("%s[%d] is empty", key, i)
		}
	}
	return nil
}

// members reads an array of {"Member_Account": "..."} objects.
func (f fields) members(key string, required bool, limit int) ([]string, *apiError) {
	if !f.has(key) {
		if required {
			return nil, missing(key)
		}
		return nil, nil
	}
	var raw []fields
	if json.Unmarshal(f[key], &raw) != nil {
		return nil, wrongType(key, "an array of objects")
	}
	list := make([]string, len(raw))
	for i, m := range raw {
		acc, err := m.str("Member_Account", true)
		if err != nil {
			err.info = fmt.Sprintf("%s[%d].%s", key, i, err.info)
			return nil, err
		}
		list[i] = acc
	}
	return list, checkList(key, list, required, limit)
}

// uint reads a non-negative integer no larger than maxValue. ok is false
// when the field is absent.
func (f fields) uint(key string, required bool, maxValue uint64) (v uint64, ok bool, e *apiError) {
	if !f.has(key) {
		if required {
			return 0, false, missing(key)
		}
		return 0, false, nil
	}
	raw := bytes.TrimSpace(f[key])
	var n json.Number
	// json.Number also accepts a quoted number; the API wants a JSON number.
	if raw[0] == '"' || json.Unmarshal(raw, &n) != nil {
		return 0, false, wrongType(key, "a number")
	}
	v, err := strconv.ParseUint(n.String(), 10, 64)
	if err != nil || v > maxValue {
		return 0, false, badParam("%s %s is not an integer from 0 to %d", key, n, maxValue)
	}
	return v, true, nil
}

// flag reads a 0/1 field such as Silence.
func (f fields) flag(key string) (bool, *apiError) {
	v, _, err := f.uint(key, false, 1)
	return v == 1, err
}

// reader reads a request's fields one after another and keeps the first
// error: once a read fails, the later ones return zero values and record
// nothing, so a handler makes all its reads and checks err once.
type reader struct {
	f   fields
	err *apiError
}

func (f fields) reader() *reader { return &reader{f: f} }

// fail records e unless an earlier error was recorded; it lets a check that
// runs between two reads keep its place in the order errors are reported.
func (r *reader) fail(e *apiError) {
	if r.err == nil {
		r.err = e
	}
}

func (r *reader) str(key string, required bool) string {
	if r.err != nil {
		return ""
	}
	s, err := r.f.str(key, required)
	r.err = err
	return s
}

func (r *reader) strs(key string, required bool, limit int) []string {
	if r.err != nil {
		return nil
	}
	list, err := r.f.strs(key, required, limit)
	r.err = err
	return list
}

func (r *reader) members(key string, required bool, limit int) []string {
	if r.err != nil {
		return nil
	}
	list, err := r.f.members(key, required, limit)
	r.err = err
	return list
}

func (r *reader) uint(key string, required bool, maxValue uint64) (v uint64, ok bool) {
	if r.err != nil {
		return 0, false
	}
	v, ok, r.err = r.f.uint(key, required, maxValue)
	return v, ok
}

func (r *reader) flag(key string) bool {
	if r.err != nil {
		return false
	}
	v, err := r.f.flag(key)
	r.err = err
	return v
}
