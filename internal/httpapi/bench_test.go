package httpapi_test

import (
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/orgs-dev/orgs/internal/domain"
	"github.com/orgs-dev/orgs/internal/postgres"
)

// The benchmarks drive the real API (httptest server, real Postgres) with parallel
// clients, as a load would: go test -run '^$' -bench . -benchtime 3s ./internal/httpapi.
// They report requests per second ("req/s") besides ns/op.

// benchAPI's store has the default mail limits, so that their counting is measured.
func benchAPI(b *testing.B) *apiBundle {
	return setupAPIStore(b, postgres.StoreConfig{MailLimitRecipient: 10, MailLimitOrganization: 2000})
}

func reportRate(b *testing.B, start time.Time) {
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "req/s")
}

func BenchmarkCreateOrganization(b *testing.B) {
	a := benchAPI(b)
	owner := a.newUser("owner@example.com")
	var n atomic.Int64
	b.SetParallelism(8)
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			r := a.do(owner.caller, "POST", "/v1/organizations", map[string]any{"name": fmt.Sprintf("Bench Club %d", n.Add(1))})
			if r.status != http.StatusCreated {
				b.Fatalf("got %d %s", r.status, r.body)
			}
		}
	})
	reportRate(b, start)
}

// BenchmarkAddMember invites new users across 64 organizations (the common shape: many
// customers inviting at once).
func BenchmarkAddMember(b *testing.B) {
	benchAddMember(b, 0, false)
}

// BenchmarkAddMemberIdempotent is BenchmarkAddMember with an Idempotency-Key on every
// request, as clients that retry send them.
func BenchmarkAddMemberIdempotent(b *testing.B) {
	benchAddMember(b, 0, true)
}

// BenchmarkAddMember1MUsers is BenchmarkAddMember with a million users in the table.
func BenchmarkAddMember1MUsers(b *testing.B) {
	benchAddMember(b, 1_000_000, false)
}

func benchAddMember(b *testing.B, seedUsers int, keyed bool) {
	a := benchAPI(b)
	if seedUsers > 0 {
		_, err := a.pool.Exec(a.ctx, `
			INSERT INTO users (id, email, name, is_active)
			SELECT gen_random_uuid(), 'seed' || g || '@example.com', 'Seed ' || g, g % 2 = 0
			FROM generate_series(1, $1) g`, seedUsers)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := a.pool.Exec(a.ctx, `ANALYZE users`); err != nil {
			b.Fatal(err)
		}
	}
	owner := a.newUser("owner@example.com")
	orgs := make([]domain.Organization, 64)
	for i := range orgs {
		orgs[i] = a.newOrg(owner, fmt.Sprintf("Org %d", i))
	}
	var n atomic.Int64
	b.SetParallelism(8)
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := n.Add(1)
			org := orgs[i%int64(len(orgs))]
			var headers []string
			if keyed {
				headers = []string{"Idempotency-Key", fmt.Sprintf("bench-%d", i)}
			}
			r := a.do(owner.caller, "POST", "/v1/organizations/"+org.ID+"/members",
				map[string]any{"email": fmt.Sprintf("invitee%d@example.com", i)}, headers...)
			if r.status != http.StatusCreated {
				b.Fatalf("got %d %s", r.status, r.body)
			}
		}
	})
	reportRate(b, start)
}

// BenchmarkListMembers reads the first page (50) of a 200-member organization.
func BenchmarkListMembers(b *testing.B) {
	a := benchAPI(b)
	owner := a.newUser("owner@example.com")
	org := a.newOrg(owner, "Big")
	for i := 0; i < 199; i++ {
		r := a.do(owner.caller, "POST", "/v1/organizations/"+org.ID+"/members", map[string]any{"email": fmt.Sprintf("m%d@example.com", i)})
		if r.status != http.StatusCreated {
			b.Fatalf("got %d %s", r.status, r.body)
		}
	}
	b.SetParallelism(8)
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			r := a.do(owner.caller, "GET", "/v1/organizations/"+org.ID+"/members", nil)
			if r.status != http.StatusOK {
				b.Fatalf("got %d %s", r.status, r.body)
			}
		}
	})
	reportRate(b, start)
}
