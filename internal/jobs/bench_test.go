package jobs_test

import (
	"context"
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/orgs-dev/orgs/internal/domain"
	"github.com/orgs-dev/orgs/internal/postgres"
)

// BenchmarkMailBacklog drains a backlog of 10,000 invitation emails (100 organizations ×
// 100 invitees, inserted before the mailer starts) into a local SMTP sink with one mailer
// of 20 workers, and reports emails per second.
func BenchmarkMailBacklog(b *testing.B) {
	const orgs, perOrg = 100, 100
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		m, start := newMailer(b, 20)
		store, sink, owner := m.store, m.sink, m.owner
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
	m, start := newMailer(b, 20)
	store, sink, owner := m.store, m.sink, m.owner
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
