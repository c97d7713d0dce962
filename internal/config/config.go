// Package config loads the configuration of the orgs processes: one flag per ORGS_
// environment variable, the flag winning over the variable, the variable over the default.
package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"time"
)

// DevSecretKey signs tokens when ORGS_SECRET_KEY is unset and ORGS_ENV is dev.
const DevSecretKey = "orgs-development-secret-key-do-not-use-in-production"

// Config is the configuration shared by cmd/api, cmd/mailer and cmd/reminder. Each process
// reads the fields it needs.
type Config struct {
	Env                  string // dev or production; dev allows the development secret key
	DatabaseURL          string
	DatabaseMaxConns     int
	NATSURL              string
	NATSReplicas         int
	EventsMaxAge         time.Duration
	HTTPAddr             string
	MetricsAddr          string
	PublicURL            string
	ActivationURL        string
	AcceptURL            string
	SecretKeys           []string          // the first signs, all verify
	APIKeys              map[string]string // secret -> name
	MailURL              string
	MailFrom             string
	SiteName             string
	ActivationSuccessURL string
	TemplatesDir         string
	InvitationTTL        time.Duration
	SessionTTL           time.Duration
	ReminderSchedule     []time.Duration
	SweepInterval        time.Duration
	JobRescueAfter       time.Duration
	MailWorkers          int
	RelayPollInterval    time.Duration
	ShutdownTimeout      time.Duration
	AnonymousRate        float64 // anonymous POSTs per second per client IP; 0 disables
	MailLimitRecipient   int     // emails per hour to one address of no active user; 0 disables
	MailLimitOrg         int     // emails per hour that one organization's members cause; 0 disables
	RiverUIUser          string
	RiverUIPassword      string
	Log                  Log
	PasswordHashes       int // concurrent password hashes (19 MiB each); 0: GOMAXPROCS
	// TrustedProxies are the reverse proxies whose X-Forwarded-For / Forwarded names the
	// client; a bare address is a /32 or /128.
	TrustedProxies []netip.Prefix
}

// Log configures the zerolog logger.
type Log struct {
	Level  string
	Format string // json or console
}

// Load reads args (without the program name) and the ORGS_ environment through getenv.
// defaultMetricsAddr differs per process. -h prints every flag with its default and
// returns flag.ErrHelp.
func Load(args []string, getenv func(string) string, defaultMetricsAddr string, usage io.Writer) (Config, error) {
	var c Config
	fs := flag.NewFlagSet("orgs", flag.ContinueOnError)
	if usage != nil {
		fs.SetOutput(usage)
	}
	env := func(name, def string) string {
		if v := getenv(name); v != "" {
			return v
		}
		return def
	}
	str := func(p *string, flagName, envName, def, help string) {
		fs.StringVar(p, flagName, env(envName, def), help+" ("+envName+")")
	}
	// secret is str for values that must not show in -h (which prints defaults, here the
	// environment's values): the flag's default stays empty and the environment (or the
	// default) applies after parsing when the flag is not given.
	type pending struct {
		p                      *string
		flagName, envName, def string
	}
	var secrets []pending
	secret := func(p *string, flagName, envName, def, help string) {
		fs.StringVar(p, flagName, "", help+" ("+envName+"; not shown)")
		secrets = append(secrets, pending{p, flagName, envName, def})
	}
	// secretURL is secret for URLs that may hold credentials: -h shows the value with
	// its passwords and tokens redacted.
	secretURL := func(p *string, flagName, envName, def, help string) {
		fs.StringVar(p, flagName, "", fmt.Sprintf("%s (%s) (default %q)", help, envName, RedactURLs(env(envName, def))))
		secrets = append(secrets, pending{p, flagName, envName, def})
	}
	var (
		secretKeys, apiKeys, schedule                                         string
		invitationTTL, sessionTTL, sweep, rescue, relayPoll, shutdown, maxAge string
		maxConns, mailWorkers, replicas, anonRate                             string
		mailLimitRecipient, mailLimitOrganization                             string
	)
	str(&c.Env, "env", "ORGS_ENV", "dev", "environment: dev or production")
	secretURL(&c.DatabaseURL, "database-url", "ORGS_DATABASE_URL", "postgres://orgs@127.0.0.1:54329/orgs?sslmode=disable", "Postgres connection string")
	str(&maxConns, "database-max-conns", "ORGS_DATABASE_MAX_CONNS", "20", "maximum Postgres connections in the pool")
	secretURL(&c.NATSURL, "nats-url", "ORGS_NATS_URL", "nats://127.0.0.1:4222", "NATS server(s), comma separated")
	str(&replicas, "nats-replicas", "ORGS_NATS_REPLICAS", "1", "replicas of the ORGS_EVENTS stream")
	str(&maxAge, "events-max-age", "ORGS_EVENTS_MAX_AGE", "168h", "how long events are kept in the stream and for replay")
	str(&c.HTTPAddr, "http-addr", "ORGS_HTTP_ADDR", "127.0.0.1:8080", "API listen address")
	str(&c.MetricsAddr, "metrics-addr", "ORGS_METRICS_ADDR", defaultMetricsAddr, "/metrics, /healthz and /readyz listen address")
	str(&c.PublicURL, "public-url", "ORGS_PUBLIC_URL", "http://127.0.0.1:8080", "base URL used in links")
	str(&c.ActivationURL, "activation-url", "ORGS_ACTIVATION_URL", "", "activation link template with {user_id} and {token} (default {ORGS_PUBLIC_URL}/activate/{user_id}/{token})")
	str(&c.AcceptURL, "accept-url", "ORGS_ACCEPT_URL", "", "invitation link template for active users, with {invitation_id} (default {ORGS_PUBLIC_URL}/v1/me/invitations)")
	secret(&secretKeys, "secret-key", "ORGS_SECRET_KEY", "", "token keys, comma separated: the first signs, all verify (required outside dev)")
	secret(&apiKeys, "api-keys", "ORGS_API_KEYS", "", "service API keys, name:secret,...")
	secretURL(&c.MailURL, "mail-url", "ORGS_MAIL_URL", "log:", "smtp://user:pass@host:port, smtps://..., file:///dir or log:")
	str(&c.MailFrom, "mail-from", "ORGS_MAIL_FROM", "orgs <no-reply@localhost>", "From address")
	str(&c.SiteName, "site-name", "ORGS_SITE_NAME", "orgs", "product name shown in emails and pages")
	str(&c.ActivationSuccessURL, "activation-success-url", "ORGS_ACTIVATION_SUCCESS_URL", "", "where the activation page sends the person afterwards (empty: a success page)")
	str(&c.TemplatesDir, "templates-dir", "ORGS_TEMPLATES_DIR", "", "directory of templates overriding the embedded defaults")
	str(&invitationTTL, "invitation-ttl", "ORGS_INVITATION_TTL", "168h", "how long an invitation or activation link is valid")
	str(&sessionTTL, "session-ttl", "ORGS_SESSION_TTL", "720h", "how long a user session is valid")
	str(&schedule, "reminder-schedule", "ORGS_REMINDER_SCHEDULE", "48h,120h", "delays after the invitation at which reminders go out")
	str(&sweep, "sweep-interval", "ORGS_SWEEP_INTERVAL", "1m", "how often expired invitations are looked for")
	str(&rescue, "job-rescue-after", "ORGS_JOB_RESCUE_AFTER", "2m", "a job left running by a crashed worker is retried after this")
	str(&mailWorkers, "mail-workers", "ORGS_MAIL_WORKERS", "20", "concurrent mail workers")
	str(&relayPoll, "relay-poll-interval", "ORGS_RELAY_POLL_INTERVAL", "1s", "how often an idle outbox relay looks for events committed by other processes (their commits wake it through NATS; this is the fallback)")
	str(&shutdown, "shutdown-timeout", "ORGS_SHUTDOWN_TIMEOUT", "20s", "how long a stopping process waits for work in flight")
	str(&anonRate, "anonymous-rate", "ORGS_ANONYMOUS_RATE", "20", "anonymous POSTs (sign-up, sign-in, activation) per second per client IP, bursts of twice that; 0 disables")
	str(&mailLimitRecipient, "mail-limit-recipient", "ORGS_MAIL_LIMIT_RECIPIENT", "10", "emails per hour that one address of no active user may get through requests without a service key (invitations, reminders, activations); 0 disables")
	str(&mailLimitOrganization, "mail-limit-organization", "ORGS_MAIL_LIMIT_ORGANIZATION", "2000", "emails per hour that one organization's members may cause (requests without a service key); 0 disables")
	str(&c.RiverUIUser, "riverui-user", "ORGS_RIVERUI_USER", "", "HTTP basic auth user for /riverui (a service key works too)")
	secret(&c.RiverUIPassword, "riverui-password", "ORGS_RIVERUI_PASSWORD", "", "HTTP basic auth password for /riverui")
	str(&c.Log.Level, "log-level", "ORGS_LOG_LEVEL", "info", "zerolog level")
	str(&c.Log.Format, "log-format", "ORGS_LOG_FORMAT", "json", "json or console")
	var passwordHashes, trustedProxies string
	str(&trustedProxies, "trusted-proxies", "ORGS_TRUSTED_PROXIES", "", "CIDRs (or addresses) of reverse proxies whose X-Forwarded-For / Forwarded names the client, comma separated; other peers are the client themselves")
	str(&passwordHashes, "password-hashes", "ORGS_PASSWORD_HASHES", "0", "password hashes and checks at once (Argon2id, 19 MiB each); more wait up to 2s, then 429; 0: one per CPU (GOMAXPROCS)")

	if err := fs.Parse(args); err != nil {
		return Config{}, err
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	for _, sp := range secrets {
		if !given[sp.flagName] {
			*sp.p = env(sp.envName, sp.def)
		}
	}

	var errs []error
	dur := func(name, v string, min time.Duration) time.Duration {
		d, err := time.ParseDuration(strings.TrimSpace(v))
		if err != nil || d < min {
			errs = append(errs, fmt.Errorf("%s: %q is not a duration of at least %s", name, v, min))
		}
		return d
	}
	num := func(name, v string, min int) int {
		var n int
		if _, err := fmt.Sscanf(strings.TrimSpace(v), "%d", &n); err != nil || n < min {
			errs = append(errs, fmt.Errorf("%s: %q is not a whole number of at least %d", name, v, min))
		}
		return n
	}
	if _, err := fmt.Sscanf(strings.TrimSpace(anonRate), "%g", &c.AnonymousRate); err != nil || c.AnonymousRate < 0 {
		errs = append(errs, fmt.Errorf("ORGS_ANONYMOUS_RATE: %q is not a number of at least 0", anonRate))
	}
	c.DatabaseMaxConns = num("ORGS_DATABASE_MAX_CONNS", maxConns, 2)
	c.PasswordHashes = num("ORGS_PASSWORD_HASHES", passwordHashes, 0)
	for _, v := range strings.Split(trustedProxies, ",") {
		if v = strings.TrimSpace(v); v == "" {
			continue
		}
		p, err := netip.ParsePrefix(v)
		if err != nil {
			ip, ierr := netip.ParseAddr(v)
			if ierr != nil {
				errs = append(errs, fmt.Errorf("ORGS_TRUSTED_PROXIES: %q is neither a CIDR nor an address", v))
				continue
			}
			p = netip.PrefixFrom(ip, ip.BitLen())
		}
		c.TrustedProxies = append(c.TrustedProxies, p.Masked())
	}
	c.MailWorkers = num("ORGS_MAIL_WORKERS", mailWorkers, 1)
	c.MailLimitRecipient = num("ORGS_MAIL_LIMIT_RECIPIENT", mailLimitRecipient, 0)
	c.MailLimitOrg = num("ORGS_MAIL_LIMIT_ORGANIZATION", mailLimitOrganization, 0)
	c.NATSReplicas = num("ORGS_NATS_REPLICAS", replicas, 1)
	c.EventsMaxAge = dur("ORGS_EVENTS_MAX_AGE", maxAge, time.Minute)
	c.InvitationTTL = dur("ORGS_INVITATION_TTL", invitationTTL, time.Second)
	c.SessionTTL = dur("ORGS_SESSION_TTL", sessionTTL, time.Second)
	c.SweepInterval = dur("ORGS_SWEEP_INTERVAL", sweep, time.Second)
	c.JobRescueAfter = dur("ORGS_JOB_RESCUE_AFTER", rescue, time.Second)
	c.RelayPollInterval = dur("ORGS_RELAY_POLL_INTERVAL", relayPoll, time.Millisecond)
	c.ShutdownTimeout = dur("ORGS_SHUTDOWN_TIMEOUT", shutdown, 0)
	for _, s := range strings.Split(schedule, ",") {
		if s = strings.TrimSpace(s); s != "" {
			c.ReminderSchedule = append(c.ReminderSchedule, dur("ORGS_REMINDER_SCHEDULE", s, time.Second))
		}
	}

	c.PublicURL = strings.TrimRight(c.PublicURL, "/")
	if c.ActivationURL == "" {
		c.ActivationURL = c.PublicURL + "/activate/{user_id}/{token}"
	}
	if !strings.Contains(c.ActivationURL, "{user_id}") || !strings.Contains(c.ActivationURL, "{token}") {
		errs = append(errs, errors.New("ORGS_ACTIVATION_URL: must contain {user_id} and {token}"))
	}
	if c.AcceptURL == "" {
		c.AcceptURL = c.PublicURL + "/v1/me/invitations"
	}

	for _, k := range strings.Split(secretKeys, ",") {
		if k = strings.TrimSpace(k); k != "" {
			c.SecretKeys = append(c.SecretKeys, k)
		}
	}
	switch c.Env {
	case "dev":
		if len(c.SecretKeys) == 0 {
			// The development key is public: only for a system nobody else can reach,
			// neither where it listens nor where its links lead.
			var reachable []string
			if !loopbackAddr(c.HTTPAddr) {
				reachable = append(reachable, "ORGS_HTTP_ADDR")
			}
			for _, u := range []struct{ name, url string }{
				{"ORGS_PUBLIC_URL", c.PublicURL}, {"ORGS_ACTIVATION_URL", c.ActivationURL}, {"ORGS_ACCEPT_URL", c.AcceptURL},
			} {
				if !loopback(u.url) {
					reachable = append(reachable, u.name)
				}
			}
			if len(reachable) > 0 {
				errs = append(errs, fmt.Errorf("ORGS_SECRET_KEY: required, because %s can be reached from elsewhere and the development key is public (it is used only when ORGS_HTTP_ADDR, ORGS_PUBLIC_URL, ORGS_ACTIVATION_URL and ORGS_ACCEPT_URL are all loopback)",
					strings.Join(reachable, ", ")))
			}
			c.SecretKeys = []string{DevSecretKey}
		}
	case "production":
		if len(c.SecretKeys) == 0 {
			errs = append(errs, errors.New("ORGS_SECRET_KEY: required outside dev"))
		}
		for _, k := range c.SecretKeys {
			if len(k) < 32 {
				errs = append(errs, errors.New("ORGS_SECRET_KEY: each key must be at least 32 characters"))
				break
			}
		}
	default:
		errs = append(errs, fmt.Errorf("ORGS_ENV: %q is neither dev nor production", c.Env))
	}

	c.APIKeys = map[string]string{}
	for i, kv := range strings.Split(apiKeys, ",") {
		if kv = strings.TrimSpace(kv); kv == "" {
			continue
		}
		// An entry that is not name:secret may be a secret alone: name its position only.
		name, secret, ok := strings.Cut(kv, ":")
		switch {
		case !ok || name == "":
			errs = append(errs, fmt.Errorf("ORGS_API_KEYS: entry %d is not name:secret", i+1))
			continue
		case secret == "":
			errs = append(errs, fmt.Errorf("ORGS_API_KEYS: entry %d (%q) has no secret", i+1, name))
			continue
		}
		if c.Env == "production" && len(secret) < 16 {
			errs = append(errs, fmt.Errorf("ORGS_API_KEYS: the secret of %q must be at least 16 characters outside dev", name))
			continue
		}
		c.APIKeys[secret] = name
	}
	if c.RiverUIUser != "" && c.RiverUIPassword == "" {
		errs = append(errs, errors.New("ORGS_RIVERUI_PASSWORD: required when ORGS_RIVERUI_USER is set (an empty password would let anyone in)"))
	}
	switch c.Log.Format {
	case "json", "console":
	default:
		errs = append(errs, fmt.Errorf("ORGS_LOG_FORMAT: %q is neither json nor console", c.Log.Format))
	}
	if err := errors.Join(errs...); err != nil {
		return Config{}, fmt.Errorf("config: %w", err)
	}
	return c, nil
}

// loopback reports whether rawURL's host is localhost or a loopback address.
func loopback(rawURL string) bool {
	u, err := url.Parse(rawURL)
	if err != nil {
		return false
	}
	return loopbackHost(u.Hostname())
}

// loopbackAddr reports whether listen address addr (host:port) listens on loopback only;
// an empty host (":8080") listens everywhere.
func loopbackAddr(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	return err == nil && loopbackHost(host)
}

func loopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// redacted replaces a secret in a URL shown to people.
const redacted = "xxxxx"

// RedactURLs returns urls (one URL or a comma-separated list) fit to be shown or logged:
// passwords in the userinfo, a NATS token (a userinfo without password) and query
// parameters that name a password, token, secret or key are redacted. A value that does
// not parse as a URL with a scheme (a Postgres keyword/value string, say) is not shown.
func RedactURLs(urls string) string {
	parts := strings.Split(urls, ",")
	for i, p := range parts {
		parts[i] = redactURL(strings.TrimSpace(p))
	}
	return strings.Join(parts, ",")
}

func redactURL(raw string) string {
	if raw == "" {
		return ""
	}
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" {
		// host:port alone holds nothing secret; anything else (key=value strings) may.
		if !strings.ContainsAny(raw, "@=?") {
			return raw
		}
		return "(not shown)"
	}
	if u.User != nil {
		if _, ok := u.User.Password(); ok {
			u.User = url.UserPassword(u.User.Username(), redacted)
		} else if strings.HasPrefix(u.Scheme, "nats") || u.Scheme == "tls" || strings.HasPrefix(u.Scheme, "ws") {
			u.User = url.User(redacted) // nats://<token>@host
		}
	}
	if u.RawQuery != "" {
		q := u.Query()
		for k := range q {
			lk := strings.ToLower(k)
			for _, w := range []string{"pass", "token", "secret", "key", "auth", "cred"} {
				if strings.Contains(lk, w) {
					q[k] = []string{redacted}
					break
				}
			}
		}
		u.RawQuery = q.Encode()
	}
	return u.String()
}
