// Package logging builds the operational logger (log/slog to standard
// error). It masks secrets twice: attributes whose key names a secret are
// replaced, and any string attribute containing a registered secret value
// (the secret key, tokens, a UserSig) has it cut out, so a secret that slips
// into an error message still never reaches the log.
package logging

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"sync"
)

// Redactor removes known secret values from strings.
type Redactor struct {
	mu      sync.RWMutex
	secrets []string
	seen    map[string]bool
}

// Add registers secret values; empty and very short values are ignored
// (masking "a" everywhere would mangle the log, and is no protection), and
// a value already known is not added again (reloads add the tokens each
// time).
func (r *Redactor) Add(secrets ...string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.seen == nil {
		r.seen = map[string]bool{}
	}
	for _, s := range secrets {
		if len(s) >= 6 && !r.seen[s] {
			r.seen[s] = true
			r.secrets = append(r.secrets, s)
		}
	}
}

// Redact replaces every registered secret in s.
func (r *Redactor) Redact(s string) string {
	if r == nil {
		return s
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	for _, secret := range r.secrets {
		if strings.Contains(s, secret) {
			s = strings.ReplaceAll(s, secret, "[redacted]")
		}
	}
	return s
}

// sensitiveKey reports whether an attribute key names a secret: sign,
// authorization, anything ending in token, secret, secret_key or password,
// and anything mentioning usersig.
func sensitiveKey(key string) bool {
	k := strings.ToLower(key)
	if k == "sign" || k == "authorization" || strings.Contains(k, "usersig") {
		return true
	}
	for _, suffix := range []string{"token", "secret", "secret_key", "password"} {
		if strings.HasSuffix(k, suffix) {
			return true
		}
	}
	return false
}

// Options configure New.
type Options struct {
	Level  slog.Leveler
	Format string // json or text
	// Redactor, when set, masks registered secret values.
	Redactor *Redactor
}

// New returns a logger writing to w.
func New(w io.Writer, opts Options) *slog.Logger {
	ho := &slog.HandlerOptions{
		Level: opts.Level,
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if sensitiveKey(a.Key) && a.Value.Kind() != slog.KindGroup {
				if a.Value.Kind() == slog.KindString && a.Value.String() == "" {
					return a
				}
				return slog.String(a.Key, "[redacted]")
			}
			switch a.Value.Kind() {
			case slog.KindString:
				if opts.Redactor != nil {
					a.Value = slog.StringValue(opts.Redactor.Redact(a.Value.String()))
				}
			case slog.KindAny:
				if err, ok := a.Value.Any().(error); ok {
					a.Value = slog.StringValue(opts.Redactor.Redact(err.Error()))
				}
			}
			return a
		},
	}
	var h slog.Handler
	if opts.Format == "text" {
		h = slog.NewTextHandler(w, ho)
	} else {
		h = slog.NewJSONHandler(w, ho)
	}
	return slog.New(&redactMsg{Handler: h, r: opts.Redactor})
}

// redactMsg masks secrets in the log message itself.
type redactMsg struct {
	slog.Handler
	r *Redactor
}

func (h *redactMsg) Handle(ctx context.Context, rec slog.Record) error {
	if h.r != nil {
		if m := h.r.Redact(rec.Message); m != rec.Message {
			clean := slog.NewRecord(rec.Time, rec.Level, m, rec.PC)
			rec.Attrs(func(a slog.Attr) bool { clean.AddAttrs(a); return true })
			rec = clean
		}
	}
	return h.Handler.Handle(ctx, rec)
}

func (h *redactMsg) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &redactMsg{Handler: h.Handler.WithAttrs(attrs), r: h.r}
}

func (h *redactMsg) WithGroup(name string) slog.Handler {
	return &redactMsg{Handler: h.Handler.WithGroup(name), r: h.r}
}
