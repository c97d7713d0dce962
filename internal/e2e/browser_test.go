package e2e_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// chromiumPath returns the Chromium binary to drive: $ORGS_TEST_CHROMIUM, else Debian's.
func chromiumPath() string {
	if p := os.Getenv("ORGS_TEST_CHROMIUM"); p != "" {
		return p
	}
	return "/usr/bin/chromium"
}

// artifactsDir returns $ORGS_TEST_ARTIFACTS or ./test-artifacts, created.
func artifactsDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("ORGS_TEST_ARTIFACTS")
	if dir == "" {
		dir = "test-artifacts"
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	abs, _ := filepath.Abs(dir)
	return abs
}

// TestBrowserSignupAndActivation drives headless Chromium through the built-in pages:
// the sign-up form, the link from the activation email, the set-password form, the
// success page, and the same link again (expired). It keeps full-page screenshots.
func TestBrowserSignupAndActivation(t *testing.T) {
	t.Parallel()
	exec := chromiumPath()
	if _, err := os.Stat(exec); err != nil {
		t.Skipf("no Chromium at %s (set ORGS_TEST_CHROMIUM, or apt-get install chromium): %v", exec, err)
	}
	e := newEnv(t)
	e.start("api", nil)
	e.start("mailer", nil)
	artifacts := artifactsDir(t)

	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(exec),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("no-first-run", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(800, 900),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	ctx, cancelCtx := chromedp.NewContext(actx)
	defer cancelCtx()
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()

	shot := func(name string) chromedp.Action {
		return chromedp.ActionFunc(func(ctx context.Context) error {
			var png []byte
			if err := chromedp.FullScreenshot(&png, 100).Do(ctx); err != nil { // quality 100: PNG
				return err
			}
			path := filepath.Join(artifacts, name)
			t.Logf("screenshot %s", path)
			return os.WriteFile(path, png, 0o644)
		})
	}
	var h1 string
	run := func(what string, actions ...chromedp.Action) {
		t.Helper()
		if err := chromedp.Run(ctx, actions...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}

	const email = "browser.person@example.com"
	run("sign up",
		chromedp.Navigate(e.apiURL+"/signup"),
		chromedp.WaitVisible(`#email`, chromedp.ByQuery),
		chromedp.SendKeys(`#email`, email, chromedp.ByQuery),
		chromedp.SendKeys(`#name`, "Bea Browser", chromedp.ByQuery),
		chromedp.SendKeys(`#organization_name`, "Browser Bakery", chromedp.ByQuery),
		shot("signup-form.png"),
		chromedp.Click(`button[type=submit]`, chromedp.ByQuery),
		chromedp.WaitNotPresent(`#organization_name`, chromedp.ByQuery),
		chromedp.WaitVisible(`h1`, chromedp.ByQuery),
		chromedp.Text(`h1`, &h1, chromedp.ByQuery),
	)
	if !strings.Contains(h1, "Check your email") {
		t.Fatalf("after sign-up: heading %q, want Check your email", h1)
	}

	msg := e.mailTo(email, 1, 15*time.Second)[0]
	link, _, _ := e.link(msg)
	run("open the activation link",
		chromedp.Navigate(link),
		chromedp.WaitVisible(`#password`, chromedp.ByQuery),
		chromedp.Text(`h1`, &h1, chromedp.ByQuery),
	)
	if !strings.Contains(h1, "Set your password") {
		t.Fatalf("activation page: heading %q, want Set your password", h1)
	}
	var name string
	run("read the prefilled name", chromedp.Value(`#name`, &name, chromedp.ByQuery))
	if name != "Bea Browser" {
		t.Errorf("activation form: name field %q, want the sign-up's Bea Browser", name)
	}
	run("set the password",
		chromedp.SendKeys(`#password`, password, chromedp.ByQuery),
		chromedp.SendKeys(`#password_confirmation`, password, chromedp.ByQuery),
		shot("activation-form.png"),
		chromedp.Click(`button[type=submit]`, chromedp.ByQuery),
		chromedp.WaitNotPresent(`#password`, chromedp.ByQuery),
		chromedp.WaitVisible(`h1`, chromedp.ByQuery),
		chromedp.Text(`h1`, &h1, chromedp.ByQuery),
		shot("activation-success.png"),
	)
	if !strings.Contains(h1, "Your account is ready") {
		t.Fatalf("after activation: heading %q, want Your account is ready", h1)
	}

	run("open the link again",
		chromedp.Navigate(link),
		chromedp.WaitVisible(`h1`, chromedp.ByQuery),
		chromedp.Text(`h1`, &h1, chromedp.ByQuery),
		shot("activation-expired.png"),
	)
	if !strings.Contains(h1, "expired or was already used") {
		t.Fatalf("the used link: heading %q, want the expired page", h1)
	}

	// The person can now log in with what they typed.
	e.do(anon, "POST", "/v1/sessions", map[string]any{"email": email, "password": password}, 201, "")
}
