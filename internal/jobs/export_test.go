package jobs

import (
	"context"

	"github.com/jackc/pgx/v5/pgxpool"
)

// RecordDelivery returns the mailer's delivery recorder on pool, for tests.
func RecordDelivery(pool *pgxpool.Pool) func(ctx context.Context, jobID int64, kind, recipientID string) error {
	return newDeliveries(pool).record
}
