package app

// Browser tests of the moderators' console: Debian's chromium, driven by
// chromedp, against the whole bot with real Redis, the fake IM server and
// the recorder on. Without chromium the tests are skipped, unless
// TIMGUARD_REQUIRE_BROWSER=1 (scripts/test.sh and CI set it), which makes
// them fail. With TIMGUARD_SCREENSHOTS=DIR they save screenshots of the
// main pages there (docs/img in the repository).

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/timguard/timguard/internal/redistest"
	"github.com/timguard/timguard/tim"
	"github.com/timguard/timguard/tim/timtest"
)

// envRequireBrowser set to 1 turns a missing chromium into a failure.
const envRequireBrowser = "TIMGUARD_REQUIRE_BROWSER"

// browserPath finds Debian's chromium, or skips (fails when required).
func browserPath(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv(envRequireBrowser) == "1" {
		t.Fatalf("chromium is not installed and %s=1: install it (apt-get install chromium) or run scripts/test.sh, which does", envRequireBrowser)
	}
	t.Skipf("chromium is not installed; the console's browser tests need it (%s=1 makes this a failure)", envRequireBrowser)
	return ""
}

// browser starts a headless chromium for the test.
func browser(t *testing.T) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(browserPath(t)), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.WindowSize(1200, 860), chromedp.Flag("disable-dev-shm-usage", true))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(actx)
	t.Cleanup(func() { cancelCtx(); cancelAlloc() })
	// The first run starts the browser, which lives as long as ctx: no
	// timeout on it; each step has its own.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

// stepTimeout bounds one group of browser steps.
const stepTimeout = 90 * time.Second

// drive runs browser steps and fails the test on an error.
func drive(ctx context.Context, t *testing.T, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, stepTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// value runs one browser action that returns a value.
func value[T any](ctx context.Context, t *testing.T, what string, a chromedp.Action[T]) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, stepTimeout)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	return v
}

// screenshot saves the viewport as name.png in TIMGUARD_SCREENSHOTS, when
// set (a relative DIR is taken from the module's root).
func screenshot(ctx context.Context, t *testing.T, name string) {
	t.Helper()
	dir := os.Getenv("TIMGUARD_SCREENSHOTS")
	if dir == "" {
		return
	}
	if !filepath.IsAbs(dir) {
		dir = filepath.Join("..", "..", dir) // from the module's root
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	png := value(ctx, t, "screenshot "+name, chromedp.CaptureScreenshot())
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

// bodyText is the text of the page shown.
func bodyText(ctx context.Context, t *testing.T) string {
	t.Helper()
	return value(ctx, t, "read the page", chromedp.Text(chromedp.CSS("body")))
}

// waitPage waits up to 30s for the page shown to contain want (the
// browser may be between two pages meanwhile) and returns its text.
func waitPage(ctx context.Context, t *testing.T, want string) string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	text := ""
	for time.Now().Before(deadline) {
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		got, err := chromedp.Run(sctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`))
		cancel()
		if err == nil {
			text = got
			if strings.Contains(text, want) {
				break
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return text
}

const consoleGroup = "@TGS#console"

// startConsoleBot runs a bot with the console, Redis, the fake IM server
// and the recorder (texts kept), with one group of members.
func startConsoleBot(t *testing.T) *bot {
	t.Helper()
	im := timtest.New(timtest.Options{})
	t.Cleanup(im.Close)
	redisURL := redistest.URL(t)
	b := startApp(t, im, botConfig{
		token: e2eToken, imURL: im.URL(), rateLimit: 50, redisURL: redisURL, prefix: keyPrefix(t, redisURL),
		adminToken: e2eAdminTok, executor: fastRetries,
		record: "  enabled: true\n  dir: recordings\n  text: keep\n",
	}, e2eRules, nil, nil)
	t.Cleanup(b.stop)
	im.AddGroup(timtest.Group{ID: consoleGroup, Type: "Public", Owner: "olga", Admins: []string{"adam"},
		Members: []string{"jared", "carol", "frank", "nina"}})
	im.AddGroup(timtest.Group{ID: e2eWave + "1", Type: "Public", Owner: "olga", Members: []string{"nina"}})
	return b
}

// forbids returns the forbid_send_msg calls the fake took for user, as
// their MuteTime.
func forbids(b *bot, user string) []float64 {
	var out []float64
	for _, c := range b.im.EffectiveCallsTo(tim.CommandForbidSendMsg) {
		var body struct {
			Members  []string `json:"Members_Account"`
			MuteTime float64  `json:"MuteTime"`
		}
		if json.Unmarshal(c.Body, &body) == nil && slices.Contains(body.Members, user) {
			out = append(out, body.MuteTime)
		}
	}
	return out
}

func TestConsoleInABrowser(t *testing.T) {
	ctx := browser(t)
	b := startConsoleBot(t)
	base := b.base + "/console"

	// Traffic: jared's spam is blocked; nina joins the wave group and is
	// muted for 5 minutes by newcomers-listen-first.
	if r := b.message(consoleGroup, "jared", "free crypto here"); r.ErrorCode != 10101 {
		t.Fatalf("spam answered %+v", r)
	}
	b.message(consoleGroup, "carol", "good morning")
	b.joined(e2eWave+"1", []string{"nina"})
	b.settle(60*time.Second, func() bool { return len(forbids(b, "nina")) == 1 })

	t.Run("without a session every page sends the browser to the login", func(t *testing.T) {
		drive(ctx, t, "open the mutes", chromedp.Navigate(base+"/mutes"), chromedp.WaitVisible(chromedp.CSS("#token")))
		loc := value(ctx, t, "where", chromedp.Location())
		if !strings.Contains(loc, "/console/login?next=") {
			t.Fatalf("without a session the mutes page led to %s", loc)
		}
		// A form posted without a session is refused.
		res, err := http.PostForm(base+"/act", url.Values{"group": {consoleGroup}, "user": {"carol"}, "kind": {"kick"}, "reason": {"x"}})
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusUnauthorized {
			t.Fatalf("a form without a session answered %d, want 401", res.StatusCode)
		}
		screenshot(ctx, t, "console-login")
	})

	t.Run("a moderator logs in by name with the admin token", func(t *testing.T) {
		drive(ctx, t, "log in",
			chromedp.SendKeys(chromedp.CSS("#name"), "mia"),
			chromedp.SendKeys(chromedp.CSS("#token"), e2eAdminTok),
			chromedp.Click(chromedp.CSS("#login")),
			chromedp.WaitVisible(chromedp.CSS("form.who")))
		loc := value(ctx, t, "where", chromedp.Location())
		if !strings.HasSuffix(loc, "/console/mutes") {
			t.Fatalf("after the login the browser is at %s, want the page it asked for", loc)
		}
	})

	t.Run("the decision of a blocked user opens to its trace", func(t *testing.T) {
		drive(ctx, t, "search the decisions",
			chromedp.Navigate(base+"/decisions?user=jared&verdict=block"),
			chromedp.WaitVisible(chromedp.CSS("tr.decision")),
			chromedp.Click(chromedp.CSS("tr.decision details.trace summary")),
			chromedp.WaitVisible(chromedp.CSS("tr.decision details.trace li.matched")))
		trace := value(ctx, t, "read the trace", chromedp.Text(chromedp.CSS("tr.decision details.trace")))
		for _, want := range []string{"spam-words matched", "flood did not match", "lists.spam_words"} {
			if !strings.Contains(trace, want) {
				t.Errorf("the trace does not say %q:\n%s", want, trace)
			}
		}
		if text := bodyText(ctx, t); strings.Contains(text, "carol") {
			t.Errorf("the search for jared's blocks shows carol:\n%s", text)
		}
		screenshot(ctx, t, "console-decisions")
	})

	t.Run("lifting a mute reaches the IM server", func(t *testing.T) {
		drive(ctx, t, "open the mutes",
			chromedp.Navigate(base+"/mutes"),
			chromedp.WaitVisible(chromedp.CSS(`button.lift[data-user="nina"]`)))
		screenshot(ctx, t, "console-mutes")
		drive(ctx, t, "lift nina's mute",
			chromedp.SendKeys(chromedp.CSS(`form:has(button.lift[data-user="nina"]) input[name="reason"]`), "joined to ask a question"),
			chromedp.Click(chromedp.CSS(`button.lift[data-user="nina"]`)),
			chromedp.WaitVisible(chromedp.CSS("p.note")))
		b.settle(60*time.Second, func() bool { return slices.Contains(forbids(b, "nina"), 0) })
		if got := forbids(b, "nina"); !slices.Equal(got, []float64{300, 0}) {
			t.Fatalf("the fake muted nina for %v seconds, want 300 then 0 (the lift)", got)
		}
		ms, err := b.app.store.ListMutes(context.Background(), e2eWave+"1")
		if err != nil || len(ms) != 0 {
			t.Fatalf("mutes recorded after the lift: %+v, %v", ms, err)
		}
		if !hasAdminRecord(b, "mia@", "unmute", "nina") {
			t.Error("no admin audit record of mia's lift")
		}
	})

	t.Run("a form whose CSRF token was removed is refused", func(t *testing.T) {
		drive(ctx, t, "send the act form without its CSRF token",
			chromedp.Navigate(base+"/act"),
			chromedp.WaitVisible(chromedp.CSS("#act")),
			chromedp.SetValue(chromedp.CSS("#group"), consoleGroup),
			chromedp.SetValue(chromedp.CSS("#user"), "frank"),
			chromedp.SetValue(chromedp.CSS("#reason"), "no token"),
			chromedp.Evaluate[chromedp.Void](`document.querySelector('form.act input[name="csrf"]').remove()`),
			chromedp.Click(chromedp.CSS("#act")))
		if text := waitPage(ctx, t, "CSRF"); !strings.Contains(text, "no valid CSRF token") {
			t.Fatalf("the form without a CSRF token was not refused:\n%s", text)
		}
		if ps, _ := b.app.store.Pending(context.Background(), 100); len(ps) != 0 {
			t.Fatalf("the refused form queued %+v", ps)
		}
	})

	t.Run("a member muted from the act page is muted at the IM server", func(t *testing.T) {
		drive(ctx, t, "mute carol",
			chromedp.Navigate(base+"/act"),
			chromedp.WaitVisible(chromedp.CSS("#act")),
			chromedp.SetValue(chromedp.CSS("#group"), consoleGroup),
			chromedp.SetValue(chromedp.CSS("#user"), "carol"),
			chromedp.SetValue(chromedp.CSS("#kind"), "mute"),
			chromedp.SetValue(chromedp.CSS("#duration"), "15m"),
			chromedp.SetValue(chromedp.CSS("#reason"), "insults in private messages"))
		screenshot(ctx, t, "console-act")
		drive(ctx, t, "send", chromedp.Click(chromedp.CSS("#act")), chromedp.WaitVisible(chromedp.CSS("p.note")))
		b.settle(60*time.Second, func() bool { return len(forbids(b, "carol")) > 0 })
		if got := forbids(b, "carol"); !slices.Equal(got, []float64{900}) {
			t.Fatalf("the fake muted carol for %v seconds, want 900 once", got)
		}
		if !hasAdminRecord(b, "mia@", "mute", "carol") {
			t.Error("no admin audit record of mia's mute")
		}
	})

	t.Run("the live view shows the decisions as they come", func(t *testing.T) {
		drive(ctx, t, "open the live view", chromedp.Navigate(base+"/live"), chromedp.WaitVisible(chromedp.CSS("#live-rows")))
		b.message(consoleGroup, "frank", "airdrop for everyone")
		value(ctx, t, "wait for frank's block", chromedp.Poll[bool](`document.querySelector("#live-rows").innerText.includes("frank")`,
			chromedp.WithPollingTimeout(30*time.Second)))
		screenshot(ctx, t, "console-live")
	})

	t.Run("an edited rule is replayed against the recorded callbacks", func(t *testing.T) {
		// The recorder writes in the background: wait for jared's message.
		waitFor(t, 30*time.Second, "the recording of jared's message", func() bool {
			files, _ := filepath.Glob(filepath.Join(b.dir, "recordings", "*.jsonl"))
			for _, f := range files {
				if data, err := os.ReadFile(f); err == nil && strings.Contains(string(data), "free crypto here") {
					return true
				}
			}
			return false
		})
		edited := strings.Replace(e2eRules, `verdict: block
    reply: {code: 10101, text: "Blocked words are not allowed here."}`, `verdict: drop`, 1)
		if edited == e2eRules {
			t.Fatal("the edit did not apply")
		}
		drive(ctx, t, "replay the edit",
			chromedp.Navigate(base+"/rules"),
			chromedp.WaitVisible(chromedp.CSS("#source")),
			chromedp.SetValue(chromedp.CSS("#source"), edited),
			chromedp.Click(chromedp.CSS("#op-replay")),
			chromedp.WaitVisible(chromedp.CSS("#replay-summary")))
		summary := value(ctx, t, "read the summary", chromedp.Text(chromedp.CSS("#replay-summary")))
		changes := value(ctx, t, "read the changes", chromedp.Text(chromedp.CSS("table.replay")))
		if !strings.Contains(summary, "recorded") || !strings.Contains(summary, "decisions change") {
			t.Fatalf("replay summary: %s", summary)
		}
		for _, want := range []string{"jared", "block", "drop", "10101"} {
			if !strings.Contains(changes, want) {
				t.Errorf("the side-by-side replay does not show %q:\n%s", want, changes)
			}
		}
		if strings.Contains(changes, "carol") {
			t.Errorf("carol's message changes nothing but is listed:\n%s", changes)
		}
		screenshot(ctx, t, "console-rules")
		// The playground changed nothing in force.
		if b.app.rules.Rules().Rules[0].Verdict != "block" {
			t.Fatal("the playground changed the rules in force")
		}
	})

	t.Run("the pages read well at phone width", func(t *testing.T) {
		drive(ctx, t, "phone", chromedp.EmulateViewport(390, 844), chromedp.Navigate(base+"/decisions"), chromedp.WaitVisible(chromedp.CSS("tr.decision")))
		width := value(ctx, t, "measure", chromedp.Evaluate[int](`document.documentElement.scrollWidth`))
		if width > 390 {
			t.Errorf("the decisions page is %dpx wide at a 390px screen", width)
		}
		screenshot(ctx, t, "console-phone")
	})
}

// hasAdminRecord reports whether the audit log has an admin record by an
// actor starting with actor, doing kind to user.
func hasAdminRecord(b *bot, actor, kind, user string) bool {
	for _, r := range b.records() {
		if r.Kind == "admin" && strings.HasPrefix(r.Actor, actor) && len(r.Actions) == 1 && r.Actions[0].Kind == kind && r.Actions[0].User == user {
			return true
		}
	}
	return false
}
