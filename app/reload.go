package app

import (
	"context"
	"fmt"
	"maps"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/timguard/timguard/audit"
	"github.com/timguard/timguard/config"
)

// reload reads the configuration and the rule file again through the
// coordinator and puts them in force. Everything that can fail (parsing,
// validation, compiling, the rule tests) runs first; only then do the
// subscribers (see subscribe) swap the new rules in. On any error the
// configuration and rules in force stay, the failure is counted, audited
// and logged. It returns the rules version in force afterwards.
func (a *App) reload(ctx context.Context) (string, error) {
	s, err := a.coord.Reload(ctx)
	return s.Rules.Version, err
}

// subscribe puts every part that follows the configuration on the
// coordinator, in the order a reload reaches them: secrets masked and
// warnings first, then the rules and configuration swapped in, the dry-run
// switches, the log level, the audit record, and the file watcher last. The
// coordinator itself logs the reload and sets the reload metrics.
func (a *App) subscribe() {
	ok := func(fn func(prev, next *config.Snapshot)) func(config.Change) {
		return func(ch config.Change) {
			if !ch.Failed() {
				fn(ch.Prev, ch.Next)
			}
		}
	}
	a.coord.Subscribe(
		ok(func(prev, next *config.Snapshot) {
			old, cfg := prev.Config, next.Config
			a.redactor.Add(cfg.Callback.Token.Reveal(), cfg.Callback.PreviousToken.Reveal(), cfg.Admin.Token.Reveal())
			if len(old.CallbackTokens()) > 0 && len(cfg.CallbackTokens()) == 0 {
				a.log.Warn("this reload empties callback.token: callbacks are no longer authenticated; anyone who can reach the callback URL can call it")
			}
			if keys := restartOnly(old, cfg); len(keys) > 0 {
				a.log.Warn("these configuration changes take effect only after a restart", "keys", strings.Join(keys, ", "))
			}
		}),
		ok(func(_, next *config.Snapshot) {
			a.rules.Swap(next.Rules)
			a.cfg.Store(next.Config)
		}),
		ok(func(_, next *config.Snapshot) { a.engine.SetDryRun(next.Config.DryRun) }),
		ok(func(_, next *config.Snapshot) { a.executor.SetDryRun(next.Config.DryRun) }),
		ok(func(_, next *config.Snapshot) {
			if level, err := config.ParseLevel(next.Config.Log.Level); err == nil {
				a.level.Set(level)
			}
		}),
		func(ch config.Change) { a.auditReload(ch.Next.Rules.Version, ch.Err) },
		ok(func(_, _ *config.Snapshot) {
			select {
			case a.rewatch <- struct{}{}:
			default: // the watcher will look already
			}
		}),
	)
}

func (a *App) auditReload(version string, err error) {
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
func (a *App) watch(ctx context.Context) error {
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
		// From this line on, a change to these files is seen (tests wait
		// for it before they change one).
		a.log.Info("watching files for changes", "files", slices.Sorted(maps.Keys(files)))
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
