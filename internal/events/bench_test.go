package events_test

import (
	"context"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/orgs-dev/orgs/internal/events"
)

// BenchmarkCommitToStream measures, on an idle relay, the time from a transaction's
// commit (and the store's Notify) to the event's delivery by a JetStream consumer.
func BenchmarkCommitToStream(b *testing.B) {
	bb := setup(b)
	r, _, _ := startRelay(b, bb, events.RelayConfig{PollInterval: time.Second})
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
		r.Notify()
		select {
		case <-got:
		case <-time.After(5 * time.Second):
			b.Fatal("event not delivered")
		}
		lat = append(lat, time.Since(start))
		time.Sleep(2 * time.Millisecond) // idle between events
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50_ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99_ms")
}

// BenchmarkRelayBacklog measures how fast the relay drains a backlog of 20,000 committed
// events.
func BenchmarkRelayBacklog(b *testing.B) {
	const backlog = 20000
	bb := setup(b)
	bs, _ := strconv.Atoi(os.Getenv("BS"))
	r, _, _ := startRelay(b, bb, events.RelayConfig{PollInterval: time.Hour, BatchSize: bs})
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

func BenchmarkZZTimes(b *testing.B) {
	b.Logf("fetch %s pub %s (send %s) step %s", events.TFetch, events.TPub, events.TSend, events.TStep)
}
