package record

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"hash"
)

// Hasher replaces the text members wrote in a callback body by its hash:
// every string inside each message element's MsgContent (texts, custom
// data, descriptions, file names and links), CloudCustomData and an
// application's ApplyMsg. Equal texts keep equal hashes, so rules comparing
// texts with each other still can; rules reading words in texts cannot.
type Hasher struct {
	key []byte
}

// NewHasher returns a Hasher. With a key the hash is an HMAC, which nobody
// without the key can test guesses against; without one it is plain SHA-256,
// and a short or common text can be found by hashing candidates.
func NewHasher(key string) *Hasher {
	return &Hasher{key: []byte(key)}
}

// Text returns the hash of s as it appears in a hashed body.
func (h *Hasher) Text(s string) string {
	var m hash.Hash
	prefix := "sha256:"
	if len(h.key) > 0 {
		m = hmac.New(sha256.New, h.key)
		prefix = "hmac-sha256:"
	} else {
		m = sha256.New()
	}
	m.Write([]byte(s))
	return prefix + hex.EncodeToString(m.Sum(nil)[:16])
}

// Body returns body with the texts replaced by their hashes. Numbers are
// kept as written.
func (h *Hasher) Body(body []byte) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, err
	}
	if m == nil {
		return nil, errors.New("body is not a JSON object")
	}
	for _, k := range []string{"ApplyMsg", "CloudCustomData"} {
		if s, ok := m[k].(string); ok && s != "" {
			m[k] = h.Text(s)
		}
	}
	if elems, ok := m["MsgBody"].([]any); ok {
		for _, el := range elems {
			if obj, ok := el.(map[string]any); ok {
				if c, ok := obj["MsgContent"]; ok {
					obj["MsgContent"] = h.all(c)
				}
			}
		}
	}
	return json.Marshal(m)
}

// all hashes every string in v.
func (h *Hasher) all(v any) any {
	switch x := v.(type) {
	case string:
		if x == "" {
			return x
		}
		return h.Text(x)
	case map[string]any:
		for k, e := range x {
			x[k] = h.all(e)
		}
	case []any:
		for i, e := range x {
			x[i] = h.all(e)
		}
	}
	return v
}
