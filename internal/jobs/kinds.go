package jobs

import (
	"context"
	"fmt"
	"log/slog"
	"reflect"
	"slices"
	"time"

	"github.com/riverqueue/river"
)

// kind is one of orgs' job kinds: its permanent name, the queue it is inserted on (and so
// the process that works it), and how to register a stand-in worker for it.
type kind struct {
	name    string
	queue   string
	args    string // the Go type of its arguments, for the test that keeps this list whole
	standIn func(w *river.Workers, logger *slog.Logger) error
}

func kindOf[T interface {
	river.JobArgs
	river.JobArgsWithInsertOpts
}]() kind {
	var args T
	return kind{
		name:  args.Kind(),
		queue: args.InsertOpts().Queue,
		args:  reflect.TypeFor[T]().Name(),
		standIn: func(w *river.Workers, logger *slog.Logger) error {
			return river.AddWorkerSafely[T](w, &standInWorker[T]{logger: logger})
		},
	}
}

// kinds lists every job kind of every process.
var kinds = []kind{
	kindOf[SendInvitationArgs](),
	kindOf[SendActivationArgs](),
	kindOf[SendReminderArgs](),
	kindOf[SendNotificationArgs](),
	kindOf[ScheduledReminderArgs](),
	kindOf[ExpireInvitationsArgs](),
}

// Kinds returns the names of every job kind, of every process.
func Kinds() []string {
	names := make([]string, len(kinds))
	for i, k := range kinds {
		names[i] = k.name
	}
	return names
}

// addStandIns completes w, which holds the real workers of a process working queues, with
// a stand-in for every kind of the other processes, so that the client knows every kind
// (see the package documentation). It returns an error if a kind of queues has no real
// worker in w, or if w has a worker for a kind of another queue.
func addStandIns(w *river.Workers, queues []string, logger *slog.Logger) error {
	for _, k := range kinds {
		err := k.standIn(w, logger)
		switch own := slices.Contains(queues, k.queue); {
		case own && err == nil:
			return fmt.Errorf("job kind %s of queue %s has no worker", k.name, k.queue)
		case !own && err != nil:
			return fmt.Errorf("job kind %s belongs to queue %s, which this client does not work: %w", k.name, k.queue, err)
		}
	}
	return nil
}

// standInSnooze is how long a stand-in puts back a job it should never have got.
const standInSnooze = time.Minute

// standInWorker stands for the worker of a kind that another process works. The leader's
// rescuer asks it, as it asks every worker, for the job's timeout and next retry: it
// embeds the same WorkerDefaults as the real worker, and every client has the same
// JobTimeout and RetryPolicy (NewClient), so a rescued job is retried exactly as the
// owning process would retry it. It never works a job: a client fetches only the queues
// it works, and a job is on its kind's queue. Should a job of its kind reach it anyway
// (inserted on another queue), it logs an error and snoozes the job, which keeps its
// attempts: the job waits, visible in River UI, and is never discarded.
type standInWorker[T river.JobArgs] struct {
	river.WorkerDefaults[T]
	logger *slog.Logger
}

func (w *standInWorker[T]) Work(ctx context.Context, job *river.Job[T]) error {
	w.logger.ErrorContext(ctx, "job of a kind this process does not work, snoozed: move it to its own queue",
		slog.String("kind", job.Kind), slog.Int64("job_id", job.ID), slog.String("queue", job.Queue))
	return river.JobSnooze(standInSnooze)
}
