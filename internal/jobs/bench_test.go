package jobs_test

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/riverqueue/river"

	"github.com/orgs-dev/orgs/internal/domain"
	"github.com/orgs-dev/orgs/internal/jobs"
	"github.com/orgs-dev/orgs/internal/mail"
	"github.com/orgs-dev/orgs/internal/mail/mailtest"
	"github.com/orgs-dev/orgs/internal/postgres"
	"github.com/orgs-dev/orgs/internal/postgres/postgrestest"
	"github.com/orgs-dev/orgs/internal/token"
)

func newBenchMailer(b *testing.B, workers int) (*postgres.Store, *mailtest.Server, func(), domain.User) {
	b.Helper()
	ctx := context.Background()
	pool := postgrestest.New(b)
	sink := mailtest.NewServer(b)
	store := postgres.NewStore(pool, postgres.StoreConfig{})
	renderer, err := mail.NewRenderer("")
	if err != nil {
		b.Fatal(err)
	}
	sender, err := mail.NewSender(sink.URL(), "orgs <no-reply@orgs.test>", nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = sender.Close() })
	signer, _ := token.NewSigner([]string{"bench-key"})
	mailer := jobs.NewMailer(pool, store, renderer, sender, signer, jobs.MailConfig{ActivationURL: activationURL}, jobs.NewMailMetrics(prometheus.NewRegistry()))
	w := river.NewWorkers()
	mailer.AddWorkers(w)
	client, err := jobs.NewClient(pool, jobs.ClientConfig{
		Queues: map[string]river.QueueConfig{jobs.QueueMail: {MaxWorkers: workers}}, Workers: w,
		RescueAfter: time.Minute, Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		b.Fatal(err)
	}
	start := func() {
		if err := client.Start(ctx); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = client.Stop(context.Background()) })
	}
	active := true
	owner, _, err := store.UpsertUser(ctx, domain.Actor{Service: "b"}, postgres.UpsertUserInput{Email: "owner@example.com", IsActive: &active})
	if err != nil {
		b.Fatal(err)
	}
	return store, sink, start, owner
}

// BenchmarkMailBacklog drains a backlog of 10,000 invitation emails (100 organizations ×
// 100 invitees, inserted before the mailer starts) into a local SMTP sink with one mailer
// of 20 workers, and reports emails per second.
func BenchmarkMailBacklog(b *testing.B) {
	const orgs, perOrg = 100, 100
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		store, sink, start, owner := newBenchMailer(b, 20)
		ctx := context.Background()
		for o := 0; o < orgs; o++ {
			org, err := store.CreateOrganization(ctx, domain.Actor{UserID: owner.ID}, postgres.CreateOrganizationInput{Name: fmt.Sprintf("org %d", o)})
			if err != nil {
				b.Fatal(err)
			}
			items := make([]postgres.AddMemberInput, perOrg)
			for j := range items {
				items[j] = postgres.AddMemberInput{Email: fmt.Sprintf("u%d-%d@example.com", o, j), SendEmail: true}
			}
			if _, err := store.AddMembers(ctx, domain.Actor{UserID: owner.ID}, org.ID, items); err != nil {
				b.Fatal(err)
			}
		}
		b.StartTimer()
		t0 := time.Now()
		start()
		for sink.Count() < orgs*perOrg {
			time.Sleep(5 * time.Millisecond)
		}
		b.ReportMetric(float64(orgs*perOrg)/time.Since(t0).Seconds(), "emails/s")
	}
}

// BenchmarkMailLatency measures, with an idle mailer, the time from the commit of an
// invitation to the SMTP server's acceptance of its email; it reports p50 and p99.
func BenchmarkMailLatency(b *testing.B) {
	store, sink, start, owner := newBenchMailer(b, 20)
	ctx := context.Background()
	org, err := store.CreateOrganization(ctx, domain.Actor{UserID: owner.ID}, postgres.CreateOrganizationInput{Name: "latency"})
	if err != nil {
		b.Fatal(err)
	}
	start()
	time.Sleep(500 * time.Millisecond) // let the client settle (leader election, listeners)
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		n := sink.Count()
		t0 := time.Now()
		if _, err := store.AddMember(ctx, domain.Actor{UserID: owner.ID}, org.ID, postgres.AddMemberInput{Email: fmt.Sprintf("l%d@example.com", i), SendEmail: true}); err != nil {
			b.Fatal(err)
		}
		for sink.Count() <= n {
			time.Sleep(200 * time.Microsecond)
		}
		lat = append(lat, time.Since(t0))
		time.Sleep(20 * time.Millisecond) // idle between emails
	}
	b.StopTimer()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50_ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99_ms")
}
