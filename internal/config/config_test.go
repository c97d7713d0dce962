package config_test

import (
	"errors"
	"flag"
	"strings"
	"testing"
	"time"

	"github.com/orgs-dev/orgs/internal/config"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestDefaults(t *testing.T) {
	t.Parallel()
	c, err := config.Load(nil, env(nil), "127.0.0.1:9101", nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.HTTPAddr != "127.0.0.1:8080" || c.MetricsAddr != "127.0.0.1:9101" || c.MailURL != "log:" {
		t.Errorf("got %+v", c)
	}
	if c.ActivationURL != "http://127.0.0.1:8080/activate/{user_id}/{token}" {
		t.Errorf("activation url: got %q", c.ActivationURL)
	}
	if len(c.ReminderSchedule) != 2 || c.ReminderSchedule[0] != 48*time.Hour || c.ReminderSchedule[1] != 120*time.Hour {
		t.Errorf("schedule: got %v, want [48h 120h]", c.ReminderSchedule)
	}
	if c.InvitationTTL != 168*time.Hour || c.SessionTTL != 720*time.Hour || c.JobRescueAfter != 2*time.Minute {
		t.Errorf("durations: got %v %v %v", c.InvitationTTL, c.SessionTTL, c.JobRescueAfter)
	}
	if len(c.SecretKeys) != 1 || c.SecretKeys[0] != config.DevSecretKey {
		t.Errorf("dev secret key: got %v", c.SecretKeys)
	}
}

func TestEnvironmentAndFlags(t *testing.T) {
	t.Parallel()
	c, err := config.Load([]string{"-http-addr", "0.0.0.0:9000"}, env(map[string]string{
		"ORGS_HTTP_ADDR":         "127.0.0.1:1",
		"ORGS_PUBLIC_URL":        "https://orgs.example.com/",
		"ORGS_API_KEYS":          "billing:s3cret-key, search:another-key",
		"ORGS_SECRET_KEY":        "new-key,old-key",
		"ORGS_REMINDER_SCHEDULE": "5s, 10s",
	}), "x", nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.HTTPAddr != "0.0.0.0:9000" {
		t.Errorf("the flag must win over the variable: got %q", c.HTTPAddr)
	}
	if c.ActivationURL != "https://orgs.example.com/activate/{user_id}/{token}" {
		t.Errorf("activation url: got %q", c.ActivationURL)
	}
	if c.APIKeys["s3cret-key"] != "billing" || c.APIKeys["another-key"] != "search" {
		t.Errorf("api keys: got %v", c.APIKeys)
	}
	if strings.Join(c.SecretKeys, ",") != "new-key,old-key" {
		t.Errorf("secret keys: got %v", c.SecretKeys)
	}
	if len(c.ReminderSchedule) != 2 || c.ReminderSchedule[0] != 5*time.Second {
		t.Errorf("schedule: got %v", c.ReminderSchedule)
	}
}

func TestInvalid(t *testing.T) {
	t.Parallel()
	for name, vars := range map[string]map[string]string{
		"production without a secret":  {"ORGS_ENV": "production"},
		"short production secret":      {"ORGS_ENV": "production", "ORGS_SECRET_KEY": "short"},
		"bad duration":                 {"ORGS_INVITATION_TTL": "a week"},
		"bad schedule":                 {"ORGS_REMINDER_SCHEDULE": "48h,soon"},
		"bad api key":                  {"ORGS_API_KEYS": "billing"},
		"activation url without token": {"ORGS_ACTIVATION_URL": "https://x.example/{user_id}"},
		"bad log format":               {"ORGS_LOG_FORMAT": "xml"},
		"bad environment":              {"ORGS_ENV": "staging"},
	} {
		if _, err := config.Load(nil, env(vars), "x", nil); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestHelpListsVariables(t *testing.T) {
	t.Parallel()
	var out strings.Builder
	_, err := config.Load([]string{"-h"}, env(nil), "x", &out)
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("got %v, want flag.ErrHelp", err)
	}
	for _, v := range []string{"ORGS_DATABASE_URL", "ORGS_NATS_URL", "ORGS_MAIL_URL", "ORGS_REMINDER_SCHEDULE", "ORGS_SECRET_KEY"} {
		if !strings.Contains(out.String(), v) {
			t.Errorf("-h does not mention %s", v)
		}
	}
}

func TestHelpHidesSecrets(t *testing.T) {
	t.Parallel()
	var out strings.Builder
	_, _ = config.Load([]string{"-h"}, env(map[string]string{
		"ORGS_SECRET_KEY":       "super-secret-signing-key",
		"ORGS_API_KEYS":         "billing:s3cret",
		"ORGS_DATABASE_URL":     "postgres://u:dbpassword@h/db",
		"ORGS_MAIL_URL":         "smtp://u:mailpassword@h:25",
		"ORGS_RIVERUI_PASSWORD": "uipassword",
	}), "x", &out)
	for _, s := range []string{"super-secret-signing-key", "s3cret", "dbpassword", "mailpassword", "uipassword"} {
		if strings.Contains(out.String(), s) {
			t.Errorf("-h shows %q", s)
		}
	}
}

func TestSecretsFromEnvironmentAndFlags(t *testing.T) {
	t.Parallel()
	c, err := config.Load([]string{"-mail-url", "file:///tmp/mail"}, env(map[string]string{
		"ORGS_API_KEYS": "billing:s3cret", "ORGS_MAIL_URL": "log:",
	}), "x", nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.APIKeys["s3cret"] != "billing" {
		t.Errorf("the contract's example key: got %v", c.APIKeys)
	}
	if c.MailURL != "file:///tmp/mail" {
		t.Errorf("mail url: got %q, want the flag's", c.MailURL)
	}
}

func TestDevKeyOnlyOnLoopback(t *testing.T) {
	t.Parallel()
	if _, err := config.Load(nil, env(map[string]string{"ORGS_PUBLIC_URL": "https://orgs.example.com"}), "x", nil); err == nil {
		t.Error("the public development key was accepted for a public URL")
	}
	if _, err := config.Load(nil, env(map[string]string{"ORGS_PUBLIC_URL": "http://localhost:8080"}), "x", nil); err != nil {
		t.Errorf("localhost: %v", err)
	}
}

// TestDevKeyOnlyWhenNothingReachable is the review's finding: the public development key
// was used whenever ORGS_PUBLIC_URL was loopback, even with the API listening on every
// interface or links leading elsewhere, so anyone could forge activation links.
func TestDevKeyOnlyWhenNothingReachable(t *testing.T) {
	t.Parallel()
	for name, tt := range map[string]struct {
		vars      map[string]string
		reachable string // the variable the error must name; "" if accepted
	}{
		"defaults":           {vars: nil},
		"localhost":          {vars: map[string]string{"ORGS_HTTP_ADDR": "localhost:8080", "ORGS_PUBLIC_URL": "http://localhost:8080"}},
		"ipv6 loopback":      {vars: map[string]string{"ORGS_HTTP_ADDR": "[::1]:8080", "ORGS_PUBLIC_URL": "http://[::1]:8080"}},
		"own front end here": {vars: map[string]string{"ORGS_ACTIVATION_URL": "http://127.0.0.1:3000/activate/{user_id}/{token}", "ORGS_ACCEPT_URL": "http://localhost:3000/i/{invitation_id}"}},
		"every interface":    {vars: map[string]string{"ORGS_HTTP_ADDR": "0.0.0.0:8080"}, reachable: "ORGS_HTTP_ADDR"},
		"no host":            {vars: map[string]string{"ORGS_HTTP_ADDR": ":8080"}, reachable: "ORGS_HTTP_ADDR"},
		"a public address":   {vars: map[string]string{"ORGS_HTTP_ADDR": "192.0.2.10:8080"}, reachable: "ORGS_HTTP_ADDR"},
		"public url":         {vars: map[string]string{"ORGS_PUBLIC_URL": "https://orgs.example.com"}, reachable: "ORGS_PUBLIC_URL, ORGS_ACTIVATION_URL, ORGS_ACCEPT_URL"},
		"the review's case": {vars: map[string]string{"ORGS_HTTP_ADDR": "0.0.0.0:8080", "ORGS_ACTIVATION_URL": "https://app.example.com/activate/{user_id}/{token}"},
			reachable: "ORGS_HTTP_ADDR, ORGS_ACTIVATION_URL"},
		"accept url":          {vars: map[string]string{"ORGS_ACCEPT_URL": "https://app.example.com/invitations/{invitation_id}"}, reachable: "ORGS_ACCEPT_URL"},
		"localhost lookalike": {vars: map[string]string{"ORGS_PUBLIC_URL": "http://localhost.example.com:8080"}, reachable: "ORGS_PUBLIC_URL, ORGS_ACTIVATION_URL, ORGS_ACCEPT_URL"},
	} {
		c, err := config.Load(nil, env(tt.vars), "x", nil)
		switch {
		case tt.reachable == "" && err != nil:
			t.Errorf("%s: %v, want accepted with the development key", name, err)
		case tt.reachable == "" && (len(c.SecretKeys) != 1 || c.SecretKeys[0] != config.DevSecretKey):
			t.Errorf("%s: secret keys %v, want the development key", name, c.SecretKeys)
		case tt.reachable != "" && err == nil:
			t.Errorf("%s: accepted without ORGS_SECRET_KEY (keys %v), want refused", name, c.SecretKeys)
		case tt.reachable != "" && !strings.Contains(err.Error(), "ORGS_SECRET_KEY: required, because "+tt.reachable+" can be reached"):
			t.Errorf("%s: got %q, want it to name %s", name, err, tt.reachable)
		}
		if tt.reachable == "" {
			continue
		}
		// A real key makes the same configuration fine.
		vars := map[string]string{"ORGS_SECRET_KEY": "a-real-secret-key"}
		for k, v := range tt.vars {
			vars[k] = v
		}
		if c, err := config.Load(nil, env(vars), "x", nil); err != nil || c.SecretKeys[0] != "a-real-secret-key" {
			t.Errorf("%s with a key: got %v, %v", name, c.SecretKeys, err)
		}
	}
}

// TestRiverUIUserNeedsPassword is the review's finding: a River UI user with an empty
// password was accepted.
func TestRiverUIUserNeedsPassword(t *testing.T) {
	t.Parallel()
	_, err := config.Load(nil, env(map[string]string{"ORGS_RIVERUI_USER": "ops"}), "x", nil)
	if err == nil || !strings.Contains(err.Error(), "ORGS_RIVERUI_PASSWORD") {
		t.Errorf("user without password: got %v, want ORGS_RIVERUI_PASSWORD refused", err)
	}
	c, err := config.Load(nil, env(map[string]string{"ORGS_RIVERUI_USER": "ops", "ORGS_RIVERUI_PASSWORD": "a long password"}), "x", nil)
	if err != nil || c.RiverUIUser != "ops" || c.RiverUIPassword != "a long password" {
		t.Errorf("user with password: got %q %q, %v", c.RiverUIUser, c.RiverUIPassword, err)
	}
}

// TestAPIKeyErrorsHideSecrets is the review's finding: a malformed ORGS_API_KEYS entry
// (a secret without its name, say) was printed in the error.
func TestAPIKeyErrorsHideSecrets(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		keys, want, secret string
	}{
		{"billing:first-secret-value, lone-secret-value", "entry 2 is not name:secret", "lone-secret-value"},
		{":nameless-secret-value", "entry 1 is not name:secret", "nameless-secret-value"},
		{"billing:first-secret-value,,search:", `entry 3 ("search") has no secret`, "first-secret-value"},
	} {
		_, err := config.Load(nil, env(map[string]string{"ORGS_API_KEYS": tt.keys}), "x", nil)
		if err == nil || !strings.Contains(err.Error(), "ORGS_API_KEYS: "+tt.want) {
			t.Errorf("%q: got %v, want %q", tt.keys, err, tt.want)
			continue
		}
		if strings.Contains(err.Error(), tt.secret) {
			t.Errorf("%q: the error shows a secret: %v", tt.keys, err)
		}
	}
}

// TestHelpRedactsURLs is the review's finding: -h printed ORGS_NATS_URL with its
// credentials. The URLs are shown, their secrets are not.
func TestHelpRedactsURLs(t *testing.T) {
	t.Parallel()
	var out strings.Builder
	_, err := config.Load([]string{"-h"}, env(map[string]string{
		"ORGS_NATS_URL":     "nats://natsuser:natspassword@nats-1:4222,nats://natstoken@nats-2:4222",
		"ORGS_DATABASE_URL": "postgres://orgs:dbpassword@db:5432/orgs?sslmode=require&password=querypassword",
		"ORGS_MAIL_URL":     "smtps://mailer:mailpassword@smtp.example.com:465",
	}), "x", &out)
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("got %v, want flag.ErrHelp", err)
	}
	for _, s := range []string{"natspassword", "natstoken", "dbpassword", "querypassword", "mailpassword"} {
		if strings.Contains(out.String(), s) {
			t.Errorf("-h shows %q:\n%s", s, out.String())
		}
	}
	for _, s := range []string{"nats://natsuser:xxxxx@nats-1:4222,nats://xxxxx@nats-2:4222", "postgres://orgs:xxxxx@db:5432/orgs?", "smtps://mailer:xxxxx@smtp.example.com:465"} {
		if !strings.Contains(out.String(), s) {
			t.Errorf("-h does not show %q:\n%s", s, out.String())
		}
	}
}

func TestRedactURLs(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ in, want string }{
		{"", ""},
		{"nats://127.0.0.1:4222", "nats://127.0.0.1:4222"},
		{"nats://a:4222, nats://b:4222", "nats://a:4222,nats://b:4222"},
		{"nats://s3cret@a:4222", "nats://xxxxx@a:4222"},
		{"tls://u:p@a:4222", "tls://u:xxxxx@a:4222"},
		{"127.0.0.1:4222", "127.0.0.1:4222"},
		{"postgres://orgs@127.0.0.1:54329/orgs?sslmode=disable", "postgres://orgs@127.0.0.1:54329/orgs?sslmode=disable"},
		{"postgres://u@h/db?password=p&sslmode=disable", "postgres://u@h/db?password=xxxxx&sslmode=disable"},
		{"host=db user=orgs password=p", "(not shown)"},
		{"smtp://u:p@h:25?starttls=true", "smtp://u:xxxxx@h:25?starttls=true"},
		{"log:", "log:"},
		{"file:///var/mail", "file:///var/mail"},
	} {
		if got := config.RedactURLs(tt.in); got != tt.want {
			t.Errorf("RedactURLs(%q): got %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestPasswordHashes(t *testing.T) {
	t.Parallel()
	c, err := config.Load(nil, env(nil), "x", nil)
	if err != nil || c.PasswordHashes != 0 {
		t.Errorf("default: got %d, %v; want 0 (GOMAXPROCS)", c.PasswordHashes, err)
	}
	c, err = config.Load(nil, env(map[string]string{"ORGS_PASSWORD_HASHES": "3"}), "x", nil)
	if err != nil || c.PasswordHashes != 3 {
		t.Errorf("ORGS_PASSWORD_HASHES=3: got %d, %v", c.PasswordHashes, err)
	}
	for _, v := range []string{"-1", "many"} {
		if _, err := config.Load(nil, env(map[string]string{"ORGS_PASSWORD_HASHES": v}), "x", nil); err == nil {
			t.Errorf("ORGS_PASSWORD_HASHES=%s: accepted", v)
		}
	}
}

func TestTrustedProxies(t *testing.T) {
	t.Parallel()
	c, err := config.Load(nil, env(map[string]string{"ORGS_TRUSTED_PROXIES": "10.0.0.0/8, 192.0.2.7,2001:db8::/32, 10.1.2.3/16"}), "x", nil)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range c.TrustedProxies {
		got = append(got, p.String())
	}
	if want := "10.0.0.0/8,192.0.2.7/32,2001:db8::/32,10.1.0.0/16"; strings.Join(got, ",") != want {
		t.Errorf("got %v, want %s", got, want)
	}
	if c, _ := config.Load(nil, env(nil), "x", nil); len(c.TrustedProxies) != 0 {
		t.Errorf("default: got %v, want none", c.TrustedProxies)
	}
	if _, err := config.Load(nil, env(map[string]string{"ORGS_TRUSTED_PROXIES": "10.0.0.0/8,proxy.internal"}), "x", nil); err == nil {
		t.Error("a host name: accepted")
	}
}

func TestMailLimits(t *testing.T) {
	t.Parallel()
	c, err := config.Load(nil, env(nil), "x", nil)
	if err != nil || c.MailLimitRecipient != 10 || c.MailLimitOrg != 2000 {
		t.Fatalf("defaults: got %d, %d (%v), want 10, 2000", c.MailLimitRecipient, c.MailLimitOrg, err)
	}
	c, err = config.Load([]string{"-mail-limit-organization", "0"}, env(map[string]string{"ORGS_MAIL_LIMIT_RECIPIENT": "3"}), "x", nil)
	if err != nil || c.MailLimitRecipient != 3 || c.MailLimitOrg != 0 {
		t.Fatalf("set: got %d, %d (%v), want 3, 0", c.MailLimitRecipient, c.MailLimitOrg, err)
	}
	for _, v := range []string{"-1", "many"} {
		if _, err := config.Load(nil, env(map[string]string{"ORGS_MAIL_LIMIT_RECIPIENT": v}), "x", nil); err == nil {
			t.Errorf("ORGS_MAIL_LIMIT_RECIPIENT=%s: accepted", v)
		}
	}
}
