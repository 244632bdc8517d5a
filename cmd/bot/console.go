package main

import (
	"github.com/timguard/timguard/console"
	"github.com/timguard/timguard/rules"
)

// buildConsole builds the moderators' console. It reads the admin token,
// the rule file's path and the App admin from the configuration in force,
// so a reload rotates the token (ending every session) or moves the file.
func (a *app) buildConsole() (*console.Console, error) {
	cfg := a.config()
	return console.New(console.Config{
		Token:       func() string { return a.config().Admin.Token.Reveal() },
		Store:       a.store,
		Rules:       func() *rules.Set { return a.rules.Rules() },
		RulesFile:   func() string { return a.config().RulesPath() },
		Reload:      a.reload,
		AppAdmin:    func() string { return a.config().Tencent.Admin },
		RuleHits:    a.metrics.RuleHitTotals,
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
func (a *app) replayer() console.Replayer { return nil }
