package main

import (
	"context"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/timguard/timguard/audit"
	"github.com/timguard/timguard/config"
	"github.com/timguard/timguard/policy"
)

// reload reads the configuration and the rule file again and puts them in
// force. Everything that can fail (parsing, validation, compiling, the rule
// tests) runs first; only then are the new rules swapped in. On any error the
// configuration and rules in force stay, the failure metric is set and every
// problem is logged. It returns the rules version in force afterwards.
func (a *app) reload(_ context.Context) (string, error) {
	a.reloadMu.Lock()
	defer a.reloadMu.Unlock()
	old := a.config()
	cur := a.rules.Rules()
	fail := func(err error) (string, error) {
		a.metrics.Reloaded(false, cur, a.now())
		a.log.Error("reload failed; the configuration and rules in force stay", "version", cur.Version, "err", err)
		a.auditReload(cur.Version, err)
		return cur.Version, err
	}
	cfg, err := config.Load(a.cfgPath)
	if err != nil {
		return fail(err)
	}
	set, err := policy.LoadRules(cfg.RulesPath())
	if err != nil {
		return fail(fmt.Errorf("rules: %w", err))
	}
	if len(old.CallbackTokens()) > 0 && len(cfg.CallbackTokens()) == 0 {
		a.log.Warn("this reload empties callback.token: callbacks are no longer authenticated; anyone who can reach the callback URL can call it")
	}
	if keys := restartOnly(old, cfg); len(keys) > 0 {
		a.log.Warn("these configuration changes take effect only after a restart", "keys", strings.Join(keys, ", "))
	}
	a.redactor.Add(cfg.Callback.Token.Reveal(), cfg.Callback.PreviousToken.Reveal(), cfg.Admin.Token.Reveal())
	prev := a.rules.Swap(set)
	a.cfg.Store(cfg)
	a.engine.SetDryRun(cfg.DryRun)
	a.executor.SetDryRun(cfg.DryRun)
	if level, err := config.ParseLevel(cfg.Log.Level); err == nil {
		a.level.Set(level)
	}
	a.metrics.Reloaded(true, set, a.now())
	a.auditReload(set.Version, nil)
	select {
	case a.rewatch <- struct{}{}:
	default: // the watcher will look already
	}
	a.log.Info("configuration and rules reloaded", "from_version", prev.Version, "to_version", set.Version,
		"rules", set.Summary(), "dry_run", cfg.DryRun)
	return set.Version, nil
}

func (a *app) auditReload(version string, err error) {
	rec := &audit.Record{Time: a.now(), Kind: audit.KindReload, RulesVersion: version, Result: audit.ResultDone}
	if err != nil {
		rec.Result, rec.Error = audit.ResultFailed, err.Error()
	}
	a.audit.Write(rec)
}

// restartOnly names the keys whose change needs a restart: they shaped parts
// built once at start (the listener, the store, the REST client, the audit
// file, the executor).
func restartOnly(old, cfg *config.Config) []string {
	var keys []string
	check := func(key string, a, b any) {
		if !reflect.DeepEqual(a, b) {
			keys = append(keys, key)
		}
	}
	check("listen", old.Listen, cfg.Listen)
	check("trusted_proxies", old.TrustedProxies, cfg.TrustedProxies)
	check("callback.path", old.Callback.Path, cfg.Callback.Path)
	check("callback.max_clock_skew", old.Callback.MaxClockSkew, cfg.Callback.MaxClockSkew)
	check("callback.max_body_bytes", old.Callback.MaxBodyBytes, cfg.Callback.MaxBodyBytes)
	check("callback.deadline", old.Callback.Deadline, cfg.Callback.Deadline)
	check("tencent", old.Tencent, cfg.Tencent)
	check("store", old.Store, cfg.Store)
	check("audit", old.Audit, cfg.Audit)
	check("log.format", old.Log.Format, cfg.Log.Format)
	check("executor", old.Executor, cfg.Executor)
	check("schedule", old.Schedule, cfg.Schedule)
	check("http", old.HTTP, cfg.HTTP)
	check("state_dir", old.StateDir, cfg.StateDir)
	check("record", old.Record, cfg.Record)
	return keys
}

// watch reloads when the configuration, the rule file or a list file it
// reads changes on disk, until ctx is done. Editors replace files by
// renaming, so the directories are watched, and a burst of events becomes
// one reload. After every successful reload the files are worked out
// again: a reload may name another rule file or other list files.
func (a *app) watch(ctx context.Context) error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watch files: %w", err)
	}
	defer w.Close()
	files := map[string]bool{}
	dirs := map[string]bool{}
	follow := func() error {
		clear(files)
		for _, f := range append([]string{a.cfgPath, a.config().RulesPath()}, a.rules.Rules().ListFiles()...) {
			abs, err := filepath.Abs(f)
			if err != nil {
				return err
			}
			files[abs] = true
			if d := filepath.Dir(abs); !dirs[d] {
				if err := w.Add(d); err != nil {
					return fmt.Errorf("watch %s: %w", d, err)
				}
				dirs[d] = true
			}
		}
		return nil
	}
	if err := follow(); err != nil {
		return err
	}
	const settle = 300 * time.Millisecond
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-a.rewatch:
			if err := follow(); err != nil {
				a.log.Warn("the rule file named by the reloaded configuration is not watched", "err", err)
			}
		case ev, ok := <-w.Events:
			if !ok {
				return nil
			}
			if abs, err := filepath.Abs(ev.Name); err == nil && files[abs] && !ev.Has(fsnotify.Chmod) {
				timer.Reset(settle)
			}
		case err, ok := <-w.Errors:
			if !ok {
				return nil
			}
			a.log.Warn("file watcher", "err", err)
		case <-timer.C:
			a.log.Info("configuration or rule file changed on disk; reloading")
			_, _ = a.reload(ctx) // a failure is logged, audited and counted
		}
	}
}
