package events_test

import (
	"context"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/orgs-dev/orgs/internal/events"
	"github.com/orgs-dev/orgs/internal/postgres/postgrestest"
)

// BenchmarkCommitToStream measures, on an idle relay, the time from a transaction's
// commit (and the store's Notify) to the event's delivery by a JetStream consumer.
func BenchmarkCommitToStream(b *testing.B) {
	bb := setup(b)
	r, _, _ := startRelay(b, bb, events.RelayConfig{PollInterval: time.Second})
	commitToStream(b, bb, r.Notify, func() time.Duration { return 2 * time.Millisecond })
}

// BenchmarkCommitToStreamPolling measures the same for commits made by another process:
// no Notify, the relay finds them by polling with cmd/api's default
// ORGS_RELAY_POLL_INTERVAL (10ms). "idle" commits every 20-40ms, so the relay has backed
// off to PollInterval each time; "busy" commits every 1-3ms, so it polls tightly. The
// gaps are random so as not to fall into step with the poll timer.
func BenchmarkCommitToStreamPolling(b *testing.B) {
	for _, bc := range []struct {
		name     string
		min, max time.Duration
	}{
		{"idle", 20 * time.Millisecond, 40 * time.Millisecond},
		{"busy", time.Millisecond, 3 * time.Millisecond},
	} {
		b.Run(bc.name, func(b *testing.B) {
			bb := setup(b)
			startRelay(b, bb, events.RelayConfig{PollInterval: 10 * time.Millisecond})
			commitToStream(b, bb, func() {}, func() time.Duration {
				return bc.min + rand.N(bc.max-bc.min)
			})
		})
	}
}

// commitToStream commits one event per iteration, calls notify, waits for a consumer to
// receive it, sleeps gap(), and reports the latency's p50 and p99.
func commitToStream(b *testing.B, bb *testBundle, notify func(), gap func() time.Duration) {
	ctx := context.Background()
	got := make(chan struct{}, 1)
	if _, err := events.EnsureStream(ctx, bb.js, events.StreamConfig{}); err != nil {
		b.Fatal(err)
	}
	cons, err := bb.js.OrderedConsumer(ctx, events.StreamName, jetstream.OrderedConsumerConfig{})
	if err != nil {
		b.Fatal(err)
	}
	cc, err := cons.Consume(func(jetstream.Msg) { got <- struct{}{} })
	if err != nil {
		b.Fatal(err)
	}
	defer func() { cc.Stop(); <-cc.Closed() }()
	org := newOrg()
	lat := make([]time.Duration, 0, b.N)
	for b.Loop() {
		tx, err := bb.pool.Begin(ctx)
		if err != nil {
			b.Fatal(err)
		}
		insertTx(b, tx, org, 1)
		if err := tx.Commit(ctx); err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		notify()
		select {
		case <-got:
		case <-time.After(5 * time.Second):
			b.Fatal("event not delivered")
		}
		lat = append(lat, time.Since(start))
		time.Sleep(gap())
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50_ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99_ms")
	b.ReportMetric(float64(lat[len(lat)-1].Microseconds())/1000, "max_ms")
}

// BenchmarkRelayBacklog measures how fast the relay drains a backlog of 20,000 committed
// events.
func BenchmarkRelayBacklog(b *testing.B) {
	const backlog = 20000
	bb := setup(b)
	r, _, _ := startRelay(b, bb, events.RelayConfig{PollInterval: time.Hour})
	ctx := context.Background()
	total := 0
	var elapsed time.Duration
	for b.Loop() {
		b.StopTimer()
		tx, err := bb.pool.Begin(ctx)
		if err != nil {
			b.Fatal(err)
		}
		insertTx(b, tx, newOrg(), backlog)
		if err := tx.Commit(ctx); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		start := time.Now()
		total += backlog
		r.Notify()
		waitStream(b, bb.js, uint64(total), time.Minute)
		elapsed += time.Since(start)
	}
	b.ReportMetric(float64(total)/elapsed.Seconds(), "events/s")
}

// BenchmarkWakeRelay measures what waking the relay with pg_notify would cost the write
// path: 8 writers commit small transactions like the store's (lock one of 64
// organizations, insert an outbox row) with no notify (the design: in-process Notify
// plus polling), a pg_notify in every transaction, or one at most every 10ms per
// process (a time check in Go decides whether a transaction adds it). It reports
// transactions per second and each transaction's latency.
func BenchmarkWakeRelay(b *testing.B) {
	for _, bc := range []struct {
		name  string
		every time.Duration // -1: never
	}{
		{"plain", -1},
		{"notify_every_tx", 0},
		{"notify_every_10ms", 10 * time.Millisecond},
	} {
		b.Run(bc.name, func(b *testing.B) {
			const writers, orgCount = 8, 64
			pool := postgrestest.New(b)
			ctx := context.Background()
			orgIDs := make([]string, orgCount)
			for i := range orgIDs {
				orgIDs[i] = newOrg()
				_, err := pool.Exec(ctx, `WITH u AS (
						INSERT INTO users (id, email) VALUES (gen_random_uuid(), gen_random_uuid() || '@example.com') RETURNING id
					), o AS (
						INSERT INTO organizations (id, name, slug, owner_id) SELECT $1::uuid, 'org', $1::text, id FROM u
					)
					INSERT INTO memberships (organization_id, user_id, is_admin) SELECT $1::uuid, id, true FROM u`, orgIDs[i])
				if err != nil {
					b.Fatalf("fixture: %v", err)
				}
			}
			var lastNotify atomic.Int64
			notify := func() bool {
				switch {
				case bc.every < 0:
					return false
				case bc.every == 0:
					return true
				}
				now, last := time.Now().UnixNano(), lastNotify.Load()
				return now-last >= int64(bc.every) && lastNotify.CompareAndSwap(last, now)
			}
			var next atomic.Int64
			var notified atomic.Int64
			lats := make([][]time.Duration, writers)
			b.ResetTimer()
			start := time.Now()
			var wg sync.WaitGroup
			for w := range writers {
				wg.Go(func() {
					for next.Add(1) <= int64(b.N) {
						t0 := time.Now()
						org := orgIDs[rand.N(orgCount)]
						err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
							if _, err := tx.Exec(ctx, "SELECT 1 FROM organizations WHERE id = $1 FOR NO KEY UPDATE", org); err != nil {
								return err
							}
							var batch pgx.Batch
							batch.Queue(`INSERT INTO outbox (id, type, subject, organization_id, data)
								VALUES (gen_random_uuid(), 'member_updated', $1::text, $1::text::uuid, jsonb_build_object('organization_id', $1::text))`, org)
							if notify() {
								notified.Add(1)
								batch.Queue("SELECT pg_notify('orgs_outbox', '')")
							}
							return tx.SendBatch(ctx, &batch).Close()
						})
						if err != nil {
							b.Error(err)
							return
						}
						lats[w] = append(lats[w], time.Since(t0))
					}
				})
			}
			wg.Wait()
			elapsed := time.Since(start)
			b.StopTimer()
			all := slices.Sorted(slices.Values(slices.Concat(lats...)))
			b.ReportMetric(float64(len(all))/elapsed.Seconds(), "tx/s")
			b.ReportMetric(float64(all[len(all)/2].Microseconds())/1000, "p50_ms")
			b.ReportMetric(float64(all[len(all)*99/100].Microseconds())/1000, "p99_ms")
			b.ReportMetric(float64(notified.Load())/float64(len(all)), "notifies/tx")
		})
	}
}
