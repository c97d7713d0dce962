// Command reminder runs orgs' reminder service: scheduled invitation reminders (River
// jobs scheduled from user_invited events, cancelled by the events that end an
// invitation), and the periodic sweep that expires invitations.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/riverqueue/river"
	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"

	"github.com/orgs-dev/orgs/internal/config"
	"github.com/orgs-dev/orgs/internal/events"
	"github.com/orgs-dev/orgs/internal/jobs"
	"github.com/orgs-dev/orgs/internal/postgres"
	"github.com/orgs-dev/orgs/internal/telemetry"
	"github.com/orgs-dev/orgs/orgsevents"
)

// version and revision are set by the build (-ldflags -X).
var version, revision = "dev", "unknown"

func main() {
	if err := run(context.Background(), os.Args, os.Getenv, os.Stdout); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return
		}
		fmt.Fprintf(os.Stderr, "reminder: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	cfg, err := config.Load(args[1:], getenv, "127.0.0.1:9103", stdout)
	if err != nil {
		return err
	}
	logger, err := telemetry.NewLogger(stdout, cfg.Log)
	if err != nil {
		return err
	}
	logger = logger.With().Str("process", "reminder").Logger()
	reg := telemetry.NewRegistry(version, revision)

	pool, err := postgres.Open(ctx, cfg.DatabaseURL, cfg.DatabaseMaxConns, postgres.NewDBMetrics(reg))
	if err != nil {
		return err
	}
	defer pool.Close()
	nc, js, err := events.Connect(cfg.NATSURL, "orgs-reminder", logger)
	if err != nil {
		return err
	}
	defer nc.Close()

	// Scheduled reminders count against (and wait for) the invitee's address's limit.
	// The reminder service's commits (reminders, expiries) wake the api's leading relay
	// through NATS.
	store := postgres.NewStore(pool, postgres.StoreConfig{
		InvitationTTL: cfg.InvitationTTL, MailLimitRecipient: cfg.MailLimitRecipient, AfterCommit: events.WakeRelay(nc),
	})
	reminders := jobs.NewReminders(store, cfg.ReminderSchedule, jobs.NewReminderMetrics(reg), logger)
	workers := river.NewWorkers()
	reminders.AddWorkers(workers)
	client, err := jobs.NewClient(pool, jobs.ClientConfig{
		Queues:            map[string]river.QueueConfig{jobs.QueueReminder: {MaxWorkers: 10}},
		Workers:           workers,
		RescueAfter:       cfg.JobRescueAfter,
		SoftStopTimeout:   cfg.ShutdownTimeout,
		FetchPollInterval: time.Second,
		Logger:            slog.New(telemetry.SlogHandler(logger.Level(zerolog.WarnLevel))),
		ErrorHandler:      jobs.NewErrorHandler(logger, reg),
	})
	if err != nil {
		return fmt.Errorf("river client: %w", err)
	}
	reg.MustRegister(jobs.NewDiscardedCollector(pool, logger))
	reminders.SetClient(client)

	ready := func(ctx context.Context) error {
		if err := pool.Ping(ctx); err != nil {
			return err
		}
		return events.Ready(nc)
	}
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return telemetry.ServeOps(ctx, cfg.MetricsAddr, reg, ready, logger) })
	g.Go(func() error {
		return jobs.Run(ctx, client, cfg.ShutdownTimeout, func() {
			logger.Info().Str("schedule", fmt.Sprint(cfg.ReminderSchedule)).Str("sweep_interval", cfg.SweepInterval.String()).Msg("reminder started")
		})
	})
	g.Go(func() error { return reminders.RunSweeper(ctx, cfg.SweepInterval) })
	g.Go(func() error {
		// The stream may not exist yet when the api has not started: ensure it (same
		// configuration as the api's relay).
		for {
			_, err := events.EnsureStream(ctx, js, events.StreamConfig{Replicas: cfg.NATSReplicas, MaxAge: cfg.EventsMaxAge})
			if err == nil {
				break
			}
			logger.Warn().Err(err).Msg("waiting for jetstream")
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(2 * time.Second):
			}
		}
		err := orgsevents.Subscribe(ctx, js, orgsevents.Config{
			Durable: "orgs-reminder",
			Types:   jobs.EventTypes,
			Logger:  logger,
		}, reminders.HandleEvent)
		if err != nil && ctx.Err() == nil {
			return fmt.Errorf("subscribe: %w", err)
		}
		return nil
	})
	err = g.Wait()
	if derr := nc.Drain(); derr != nil && !errors.Is(derr, context.Canceled) {
		logger.Debug().Err(derr).Msg("drain nats")
	}
	logger.Info().Msg("reminder stopped")
	return err
}
