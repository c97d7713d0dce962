package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertype"
	"github.com/rs/zerolog"
)

// ClientConfig configures a working River client (cmd/mailer, cmd/reminder).
type ClientConfig struct {
	Queues map[string]river.QueueConfig
	// Workers are the real workers of the kinds on Queues; NewClient adds a stand-in for
	// every other kind to it.
	Workers      *river.Workers
	PeriodicJobs []*river.PeriodicJob
	// RescueAfter: a job left running by a crashed worker is retried after this. A job
	// times out after half of it (at most a minute), so a live job is never rescued.
	RescueAfter time.Duration
	// SoftStopTimeout: how long a stop waits for running jobs before cancelling them.
	SoftStopTimeout time.Duration
	// FetchPollInterval is how often an idle client looks for jobs whose insert
	// notification it missed (default 50ms, for email; the reminder service, whose jobs
	// wait for their time anyway, polls every second).
	FetchPollInterval time.Duration
	Logger            *slog.Logger
	// ErrorHandler, if not nil, logs job errors and counts the jobs that give up.
	ErrorHandler *ErrorHandler
}

// NewClient returns a River client for working jobs. Fetching is tuned for email: River
// is woken by its own (rate-limited) insert notifications, and re-fetches at most every
// 5 ms while jobs keep coming, so that an email leaves within tens of milliseconds of the
// API's commit; the 50 ms poll bounds the wait for an insert whose notification the
// inserter's rate limit skipped.
//
// Every client that works jobs can lead River and so rescue any process's stuck jobs:
// NewClient completes cfg.Workers with a stand-in for every kind of the other processes
// (see the package documentation). It returns an error if a kind on cfg.Queues has no
// worker in cfg.Workers.
func NewClient(pool *pgxpool.Pool, cfg ClientConfig) (*river.Client[pgx.Tx], error) {
	logger := cfg.Logger
	if logger == nil {
		logger = slog.Default()
	}
	if err := addStandIns(cfg.Workers, slices.Collect(maps.Keys(cfg.Queues)), logger); err != nil {
		return nil, err
	}
	var (
		errorHandler river.ErrorHandler
		middleware   []rivertype.Middleware
	)
	if cfg.ErrorHandler != nil {
		errorHandler = cfg.ErrorHandler
		middleware = append(middleware, cfg.ErrorHandler)
	}
	poll := cfg.FetchPollInterval
	if poll <= 0 {
		poll = 50 * time.Millisecond
	}
	return river.NewClient(riverpgxv5.New(pool), &river.Config{
		Queues:               cfg.Queues,
		Workers:              cfg.Workers,
		PeriodicJobs:         cfg.PeriodicJobs,
		RescueStuckJobsAfter: cfg.RescueAfter,
		SoftStopTimeout:      cfg.SoftStopTimeout,
		JobTimeout:           min(time.Minute, cfg.RescueAfter/2),
		FetchCooldown:        5 * time.Millisecond,
		FetchPollInterval:    poll,
		Logger:               cfg.Logger,
		ErrorHandler:         errorHandler,
		Middleware:           middleware,
	})
}

// ErrorHandler logs job errors once, where they are handled, and counts the jobs that
// this process's workers give up on (orgs_jobs_discarded_total{kind}): a last attempt
// that failed or panicked (River's error handler), and a job its worker cancelled with
// river.JobCancel (as worker middleware: River calls no error handler for those).
type ErrorHandler struct {
	river.MiddlewareDefaults
	logger    zerolog.Logger
	discarded *prometheus.CounterVec
}

// NewErrorHandler registers orgs_jobs_discarded_total on reg, with a series for every
// kind from the start.
func NewErrorHandler(logger zerolog.Logger, reg prometheus.Registerer) *ErrorHandler {
	h := &ErrorHandler{logger: logger, discarded: prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "orgs", Subsystem: "jobs", Name: "discarded_total",
		Help: "Jobs this process's workers gave up on, by kind: the last attempt failed, or the worker cancelled the job (permanent error).",
	}, []string{"kind"})}
	for _, k := range Kinds() {
		h.discarded.WithLabelValues(k)
	}
	reg.MustRegister(h.discarded)
	return h
}

// Work implements rivertype.WorkerMiddleware: it counts and logs a job that its worker
// cancelled.
func (h *ErrorHandler) Work(ctx context.Context, job *rivertype.JobRow, doInner func(context.Context) error) error {
	err := doInner(ctx)
	var cancel *rivertype.JobCancelError
	if errors.As(err, &cancel) {
		h.discarded.WithLabelValues(job.Kind).Inc()
		h.logger.Error().Err(err).Str("kind", job.Kind).Int64("job_id", job.ID).Int("attempt", job.Attempt).Msg("job cancelled by its worker")
	}
	return err
}

// HandleError implements river.ErrorHandler.
func (h *ErrorHandler) HandleError(ctx context.Context, job *rivertype.JobRow, err error) *river.ErrorHandlerResult {
	ev := h.logger.Warn()
	if job.Attempt >= job.MaxAttempts {
		ev = h.logger.Error()
		h.discarded.WithLabelValues(job.Kind).Inc()
	}
	ev.Err(err).Str("kind", job.Kind).Int64("job_id", job.ID).Int("attempt", job.Attempt).Msg("job failed")
	return nil
}

// HandlePanic implements river.ErrorHandler.
func (h *ErrorHandler) HandlePanic(ctx context.Context, job *rivertype.JobRow, panicVal any, trace string) *river.ErrorHandlerResult {
	if job.Attempt >= job.MaxAttempts {
		h.discarded.WithLabelValues(job.Kind).Inc()
	}
	h.logger.Error().Interface("panic", panicVal).Str("trace", trace).Str("kind", job.Kind).Int64("job_id", job.ID).Msg("job panicked")
	return nil
}

// Run starts client, calls started, and works jobs until ctx is done; then it stops the
// client, letting running jobs finish for up to shutdownTimeout (River's soft stop
// cancels them after SoftStopTimeout; a job cut short is retried).
func Run(ctx context.Context, client *river.Client[pgx.Tx], shutdownTimeout time.Duration, started func()) error {
	if err := client.Start(ctx); err != nil {
		return fmt.Errorf("start river: %w", err)
	}
	started()
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
	defer cancel()
	if err := client.Stop(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("stop river: %w", err)
	}
	return nil
}
