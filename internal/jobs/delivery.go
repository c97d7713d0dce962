package jobs

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// deliveries records in mail_deliveries the emails the SMTP server accepted, many in one
// statement: each worker hands its delivery over and waits until the statement that holds
// it has committed. While one statement runs, the next deliveries gather for the one after
// it, so the batches grow with the load and an idle mailer waits for nobody.
type deliveries struct {
	pool *pgxpool.Pool
	reqs chan delivery

	mu      sync.Mutex
	running bool // the loop runs; it stops after a second without deliveries
}

type delivery struct {
	jobID     int64
	kind      string
	recipient *string
	done      chan error
}

// maxDeliveryBatch bounds the deliveries of one statement.
const maxDeliveryBatch = 500

func newDeliveries(pool *pgxpool.Pool) *deliveries {
	return &deliveries{pool: pool, reqs: make(chan delivery, maxDeliveryBatch)}
}

// record records that job jobID's email (template kind, to user recipientID) was accepted,
// and returns when that is committed.
func (d *deliveries) record(ctx context.Context, jobID int64, kind, recipientID string) error {
	r := delivery{jobID: jobID, kind: kind, done: make(chan error, 1)}
	if recipientID != "" {
		r.recipient = &recipientID
	}
	d.mu.Lock()
	if !d.running {
		d.running = true
		go d.loop()
	}
	d.mu.Unlock()
	select {
	case d.reqs <- r:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-r.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (d *deliveries) loop() {
	idle := time.NewTimer(time.Second)
	defer idle.Stop()
	batch := make([]delivery, 0, maxDeliveryBatch)
	for {
		select {
		case r := <-d.reqs:
			batch = append(batch[:0], r)
		gather:
			for len(batch) < maxDeliveryBatch {
				select {
				case r := <-d.reqs:
					batch = append(batch, r)
				default:
					break gather
				}
			}
			err := d.insert(batch)
			for _, r := range batch {
				r.done <- err
			}
			idle.Reset(time.Second)
		case <-idle.C:
			d.mu.Lock()
			if len(d.reqs) == 0 {
				d.running = false
				d.mu.Unlock()
				return
			}
			d.mu.Unlock()
			idle.Reset(time.Second)
		}
	}
}

func (d *deliveries) insert(batch []delivery) error {
	ids := make([]int64, len(batch))
	kinds := make([]string, len(batch))
	recipients := make([]*string, len(batch))
	for i, r := range batch {
		ids[i], kinds[i], recipients[i] = r.jobID, r.kind, r.recipient
	}
	// A shutdown must not cut this short: the emails are out.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := d.pool.Exec(ctx, `
		INSERT INTO mail_deliveries (job_id, kind, recipient_id)
		SELECT * FROM unnest($1::bigint[], $2::text[], $3::uuid[])
		ON CONFLICT DO NOTHING`, ids, kinds, recipients)
	if err != nil {
		return fmt.Errorf("record deliveries: %w", err)
	}
	return nil
}
