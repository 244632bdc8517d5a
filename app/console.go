package app

import (
	"context"
	"fmt"
	"time"

	"github.com/timguard/timguard/console"
	"github.com/timguard/timguard/replay"
	"github.com/timguard/timguard/rules"
)

// buildConsole builds the moderators' console. It reads the admin token,
// the rule file's path and the App admin from the configuration in force,
// so a reload rotates the token (ending every session) or moves the file.
func (a *App) buildConsole() (*console.Console, error) {
	cfg := a.config()
	return console.New(console.Config{
		Token:       func() string { return a.config().Admin.Token.Reveal() },
		Store:       a.store,
		Rules:       func() *rules.Set { return a.rules.Rules() },
		RulesFile:   func() string { return a.config().RulesPath() },
		Reload:      a.reload,
		AppAdmin:    func() string { return a.config().Tencent.Admin },
		RuleHits:    a.policyMetrics.RuleHitTotals,
		Results:     a.results,
		Replayer:    a.replayer(),
		RESTEnabled: func() bool { return a.client != nil },
		Audit:       a.audit.Write,
		Logger:      a.log,
		Now:         a.now,
		// admin.secure_cookie and admin.session_ttl take effect at start.
		SecureCookie: cfg.Admin.SecureCookie,
		SessionTTL:   cfg.Admin.SessionTTL.D(),
	})
}

// replayer replays the recorded callbacks for the console's playground;
// nil while nothing records them.
func (a *App) replayer() console.Replayer {
	if a.recorder == nil {
		return nil
	}
	return recordedReplayer{a: a}
}

// replayWindow is how far back the console's replay reads the recordings.
const replayWindow = 24 * time.Hour

// recordedReplayer replays the recorder's files of the last day.
type recordedReplayer struct{ a *App }

// Replay implements console.Replayer.
func (r recordedReplayer) Replay(ctx context.Context, current, candidate *rules.Set) (*replay.Report, string, error) {
	dir := r.a.recorder.Dir()
	now := r.a.now()
	src, err := replay.OpenPath(dir, now.Add(-replayWindow))
	if err != nil {
		return nil, "", err
	}
	defer src.Close()
	rep, err := replay.Run(current, candidate, contextSource{ctx: ctx, src: src}, replay.Options{
		AppAdmin: r.a.config().Tencent.Admin, Now: now, Since: now.Add(-replayWindow), MaxChanges: 500,
	})
	return rep, fmt.Sprintf("the callbacks recorded in %s over the last %v", dir, replayWindow), err
}

// contextSource ends a replay when ctx is done.
type contextSource struct {
	ctx context.Context
	src replay.Source
}

func (s contextSource) Next() (replay.Item, error) {
	if err := s.ctx.Err(); err != nil {
		return replay.Item{}, err
	}
	return s.src.Next()
}
