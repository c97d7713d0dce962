// Command api serves the orgs HTTP API and relays the outbox to NATS JetStream.
//
//	api            serve the API (and, on its metrics address, /metrics)
//	api migrate    apply the database migrations (orgs' and River's) and exit
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"
	"riverqueue.com/riverui"

	"github.com/orgs-dev/orgs/internal/config"
	"github.com/orgs-dev/orgs/internal/events"
	"github.com/orgs-dev/orgs/internal/httpapi"
	"github.com/orgs-dev/orgs/internal/password"
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
		fmt.Fprintf(os.Stderr, "api: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	migrateOnly := len(args) > 1 && args[1] == "migrate"
	if migrateOnly {
		args = append(args[:1:1], args[2:]...)
	}
	cfg, err := config.Load(args[1:], getenv, "127.0.0.1:9101", stdout)
	if err != nil {
		return err
	}
	logger, err := telemetry.NewLogger(stdout, cfg.Log)
	if err != nil {
		return err
	}
	logger = logger.With().Str("process", "api").Logger()

	reg := telemetry.NewRegistry(version, revision)
	var dbMetrics *postgres.DBMetrics
	if !migrateOnly {
		dbMetrics = postgres.NewDBMetrics(reg)
	}
	pool, err := postgres.Open(ctx, cfg.DatabaseURL, cfg.DatabaseMaxConns, dbMetrics)
	if err != nil {
		return err
	}
	defer pool.Close()
	if migrateOnly {
		if err := postgres.Migrate(ctx, pool); err != nil {
			return err
		}
		logger.Info().Msg("migrations applied")
		return nil
	}

	nc, js, err := events.Connect(cfg.NATSURL, "orgs-api", logger)
	if err != nil {
		return err
	}
	defer nc.Close()
	relay := events.NewRelay(pool, js, logger, events.NewMetrics(reg), events.RelayConfig{
		PollInterval: cfg.RelayPollInterval,
		Source:       cfg.PublicURL,
		Retention:    cfg.EventsMaxAge,
		Stream:       events.StreamConfig{Replicas: cfg.NATSReplicas, MaxAge: cfg.EventsMaxAge},
	})
	store := postgres.NewStore(pool, postgres.StoreConfig{
		InvitationTTL: cfg.InvitationTTL, SessionTTL: cfg.SessionTTL, AfterCommit: relay.Notify,
		MailLimitRecipient: cfg.MailLimitRecipient, MailLimitOrganization: cfg.MailLimitOrg,
		ReminderSchedule: cfg.ReminderSchedule,
	})
	signer, err := token.NewSigner(cfg.SecretKeys)
	if err != nil {
		return err
	}
	ready := func(ctx context.Context) error {
		if err := pool.Ping(ctx); err != nil {
			return telemetry.Unready("postgres", err)
		}
		return telemetry.Unready("nats", events.Ready(nc))
	}
	riverUI, err := newRiverUI(pool, logger)
	if err != nil {
		return err
	}
	handler := httpapi.NewServer(logger, reg, store, signer, httpapi.Config{
		Version: version, APIKeys: cfg.APIKeys, PublicURL: cfg.PublicURL,
		ActivationURL: cfg.ActivationURL, AcceptURL: cfg.AcceptURL, SiteName: cfg.SiteName,
		EventSource: cfg.PublicURL, ActivationSuccessURL: cfg.ActivationSuccessURL, InvitationTTL: cfg.InvitationTTL,
		Ready: ready, RiverUI: riverUI, RiverUIUser: cfg.RiverUIUser, RiverUIPassword: cfg.RiverUIPassword,
		AnonymousRate: cfg.AnonymousRate, AnonymousBurst: int(2*cfg.AnonymousRate) + 1, Sealer: httpapi.NewSealer(cfg.SecretKeys...),
		Passwords: password.NewLimiter(cfg.PasswordHashes, httpapi.DefaultPasswordWait), TrustedProxies: cfg.TrustedProxies,
	})
	srv := &http.Server{
		Addr:              cfg.HTTPAddr,
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(telemetry.SlogHandler(logger), slog.LevelWarn),
	}
	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}

	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		logger.Info().Str("addr", ln.Addr().String()).Str("version", version).Msg("api listening")
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	})
	g.Go(func() error {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.ShutdownTimeout)
		defer cancel()
		return srv.Shutdown(sctx)
	})
	g.Go(func() error { return telemetry.ServeOps(ctx, cfg.MetricsAddr, reg, ready, logger) })
	g.Go(func() error { return relay.Run(ctx) })
	g.Go(func() error { return riverUI.Start(ctx) })
	g.Go(func() error { return housekeeping(ctx, store, logger) })
	err = g.Wait()
	if derr := nc.Drain(); derr != nil {
		logger.Debug().Err(derr).Msg("drain nats")
	}
	logger.Info().Msg("api stopped")
	return err
}

// newRiverUI returns the River UI handler, mounted under /riverui, on an insert-only
// River client.
func newRiverUI(pool *pgxpool.Pool, logger zerolog.Logger) (*riverui.Handler, error) {
	client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{})
	if err != nil {
		return nil, fmt.Errorf("river client: %w", err)
	}
	h, err := riverui.NewHandler(&riverui.HandlerOpts{
		Endpoints: riverui.NewEndpoints(client, nil),
		Logger:    slog.New(telemetry.SlogHandler(logger.Level(zerolog.WarnLevel))),
		Prefix:    "/riverui",
	})
	if err != nil {
		return nil, fmt.Errorf("river ui: %w", err)
	}
	return h, nil
}

// housekeeping prunes expired sessions, idempotency keys older than a day and the mail
// limits' ended windows, hourly.
func housekeeping(ctx context.Context, store *postgres.Store, logger zerolog.Logger) error {
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if n, err := store.PruneSessions(ctx); err != nil {
			logger.Warn().Err(err).Msg("prune sessions")
		} else if n > 0 {
			logger.Info().Int64("sessions", n).Msg("pruned expired sessions")
		}
		if n, err := store.PruneIdempotencyKeys(ctx, 24*time.Hour); err != nil {
			logger.Warn().Err(err).Msg("prune idempotency keys")
		} else if n > 0 {
			logger.Info().Int64("keys", n).Msg("pruned idempotency keys")
		}
		if n, err := store.PruneMailLimits(ctx); err != nil {
			logger.Warn().Err(err).Msg("prune mail limits")
		} else if n > 0 {
			logger.Info().Int64("counters", n).Msg("pruned mail limit counters")
		}
	}
}
