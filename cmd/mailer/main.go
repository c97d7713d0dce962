// Command mailer works orgs' email jobs: it renders the invitation, activation, reminder
// and notification emails and sends them through ORGS_MAIL_URL.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/riverqueue/river"
	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"

	"github.com/orgs-dev/orgs/internal/config"
	"github.com/orgs-dev/orgs/internal/jobs"
	"github.com/orgs-dev/orgs/internal/mail"
	"github.com/orgs-dev/orgs/internal/postgres"
	"github.com/orgs-dev/orgs/internal/telemetry"
	"github.com/orgs-dev/orgs/internal/token"
)

// version and revision are set by the build (-ldflags -X).
var version, revision = "dev", "unknown"

func main() {
	if err := run(context.Background(), os.Args, os.Getenv, os.Stdout); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return
		}
		fmt.Fprintf(os.Stderr, "mailer: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	cfg, err := config.Load(args[1:], getenv, "127.0.0.1:9102", stdout)
	if err != nil {
		return err
	}
	logger, err := telemetry.NewLogger(stdout, cfg.Log)
	if err != nil {
		return err
	}
	logger = logger.With().Str("process", "mailer").Logger()
	reg := telemetry.NewRegistry(version, revision)

	pool, err := postgres.Open(ctx, cfg.DatabaseURL, cfg.DatabaseMaxConns, postgres.NewDBMetrics(reg))
	if err != nil {
		return err
	}
	defer pool.Close()

	if cfg.Env == "production" && strings.HasPrefix(cfg.MailURL, "log:") {
		// The log: transport prints activation links, which must not go to production logs.
		return errors.New("ORGS_MAIL_URL: log: is for development; set an smtp:// or file:// URL")
	}
	renderer, err := mail.NewRenderer(cfg.TemplatesDir)
	if err != nil {
		return err
	}
	if o := renderer.Overrides(); len(o) > 0 {
		logger.Info().Strs("files", o).Msg("email templates overridden")
	}
	sender, err := mail.NewSender(cfg.MailURL, cfg.MailFrom, func(e mail.Email) {
		// The log: transport: show the whole message so a developer can click the link.
		logger.Info().Str("to", e.To).Str("template", e.Template).Str("subject", e.Subject).Msg("email\n" + e.Text)
	})
	if err != nil {
		return err
	}
	defer sender.Close()
	signer, err := token.NewSigner(cfg.SecretKeys)
	if err != nil {
		return err
	}

	store := postgres.NewStore(pool, postgres.StoreConfig{InvitationTTL: cfg.InvitationTTL})
	mailer := jobs.NewMailer(pool, store, renderer, sender, signer, jobs.MailConfig{
		SiteName: cfg.SiteName, ActivationURL: cfg.ActivationURL, AcceptURL: cfg.AcceptURL, PublicURL: cfg.PublicURL,
	}, jobs.NewMailMetrics(reg))
	workers := river.NewWorkers()
	mailer.AddWorkers(workers)
	client, err := jobs.NewClient(pool, jobs.ClientConfig{
		Queues:          map[string]river.QueueConfig{jobs.QueueMail: {MaxWorkers: cfg.MailWorkers}},
		Workers:         workers,
		RescueAfter:     cfg.JobRescueAfter,
		SoftStopTimeout: cfg.ShutdownTimeout,
		Logger:          slog.New(telemetry.SlogHandler(logger.Level(zerolog.WarnLevel))),
		ErrorHandler:    jobs.NewErrorHandler(logger, reg),
	})
	if err != nil {
		return fmt.Errorf("river client: %w", err)
	}
	reg.MustRegister(jobs.NewDiscardedCollector(pool, logger))

	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		return telemetry.ServeOps(ctx, cfg.MetricsAddr, reg, pool.Ping, logger)
	})
	g.Go(func() error {
		return jobs.Run(ctx, client, cfg.ShutdownTimeout, func() {
			logger.Info().Str("mail_url", redact(cfg.MailURL)).Int("workers", cfg.MailWorkers).Msg("mailer started")
		})
	})
	err = g.Wait()
	logger.Info().Msg("mailer stopped")
	return err
}

// redact hides a password in a mail URL for logging.
func redact(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unparsable)"
	}
	return u.Redacted()
}
