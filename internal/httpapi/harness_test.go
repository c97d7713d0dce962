package httpapi_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/orgs-dev/orgs/internal/domain"
	"github.com/orgs-dev/orgs/internal/httpapi"
	"github.com/orgs-dev/orgs/internal/postgres"
	"github.com/orgs-dev/orgs/internal/postgres/postgrestest"
	"github.com/orgs-dev/orgs/internal/token"
)

// The service key of every test API: ORGS_API_KEYS=test:<serviceKey>.
const serviceKey = "test-service-key-0123456789"

// apiBundle is a real API (NewServer on a fresh schema) served by httptest.
type apiBundle struct {
	t      testing.TB
	ctx    context.Context
	srv    *httptest.Server
	pool   *pgxpool.Pool
	store  *postgres.Store
	signer *token.Signer
}

// setupAPI's opts change the API's configuration before NewServer.
func setupAPI(t testing.TB, opts ...func(*httpapi.Config)) *apiBundle {
	t.Helper()
	return setupAPIStore(t, postgres.StoreConfig{}, opts...)
}

// setupAPIStore is setupAPI with a store configured by storeCfg (mail limits, a clock).
func setupAPIStore(t testing.TB, storeCfg postgres.StoreConfig, opts ...func(*httpapi.Config)) *apiBundle {
	t.Helper()
	pool := postgrestest.New(t)
	store := postgres.NewStore(pool, storeCfg)
	signer, err := token.NewSigner([]string{"api-test-key-0123456789-0123456789"})
	if err != nil {
		t.Fatal(err)
	}
	logger := zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)
	cfg := httpapi.Config{
		Version: "test", APIKeys: map[string]string{serviceKey: "test"},
		PublicURL: "http://orgs.test", ActivationURL: "http://orgs.test/activate/{user_id}/{token}",
		AcceptURL: "http://orgs.test/v1/me/invitations", SiteName: "Orgs Test", InvitationTTL: 168 * time.Hour,
		Ready: func(context.Context) error { return nil },
	}
	for _, o := range opts {
		o(&cfg)
	}
	h := httpapi.NewServer(logger, prometheus.NewRegistry(), store, signer, cfg)
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &apiBundle{t: t, ctx: context.Background(), srv: srv, pool: pool, store: store, signer: signer}
}

// caller is who sends a request: a bearer token and optional On-Behalf-Of.
type caller struct {
	bearer   string
	onBehalf string
}

var anonymous = caller{}

func service() caller { return caller{bearer: serviceKey} }

// res is a response with its body read.
type res struct {
	status int
	header http.Header
	body   []byte
}

// decode unmarshals the body into v, failing the test on error.
func (r res) decode(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
}

// code returns a problem's code ("" for a non-problem body).
func (r res) code() string {
	var p struct {
		Code string `json:"code"`
	}
	_ = json.Unmarshal(r.body, &p)
	return p.Code
}

// do sends method path with body (a JSON-encodable value, a string sent as is, or nil) as
// c, failing the test on a transport error (try reports it instead).
func (b *apiBundle) do(c caller, method, path string, body any, headers ...string) res {
	b.t.Helper()
	r, err := b.try(c, method, path, body, headers...)
	if err != nil {
		b.t.Fatal(err)
	}
	return r
}

// want fails the test unless r has status (and, for a problem, code).
func want(t testing.TB, r res, status int, code string) {
	t.Helper()
	if r.status != status || (code != "" && r.code() != code) {
		t.Fatalf("got %d %s, want %d %s", r.status, r.body, status, code)
	}
	if r.status >= 400 && !strings.HasPrefix(r.header.Get("Content-Type"), "application/problem+json") {
		t.Fatalf("error with Content-Type %q, want application/problem+json", r.header.Get("Content-Type"))
	}
}

// user is an active user with a password and a session.
type user struct {
	domain.User
	caller
}

// newUser creates an active user with a session token, through the API (service key
// upsert) and the store (password and session).
func (b *apiBundle) newUser(email string) user {
	b.t.Helper()
	r := b.do(service(), "POST", "/v1/users", map[string]any{"email": email, "name": strings.Split(email, "@")[0], "is_active": true})
	if r.status != http.StatusCreated && r.status != http.StatusOK {
		b.t.Fatalf("create user %s: %d %s", email, r.status, r.body)
	}
	var u domain.User
	r.decode(b.t, &u)
	tok, hash := token.NewSession()
	if _, err := b.store.CreateSession(b.ctx, u.ID, hash); err != nil {
		b.t.Fatal(err)
	}
	return user{User: u, caller: caller{bearer: tok}}
}

// newOrg creates an organization owned by owner through the API.
func (b *apiBundle) newOrg(owner user, name string) domain.Organization {
	b.t.Helper()
	r := b.do(owner.caller, "POST", "/v1/organizations", map[string]any{"name": name})
	want(b.t, r, http.StatusCreated, "")
	var o domain.Organization
	r.decode(b.t, &o)
	return o
}

// addMember adds u to org as actor (is_admin as given) and checks the 201.
func (b *apiBundle) addMember(actor caller, orgID, email string, isAdmin bool) domain.Member {
	b.t.Helper()
	r := b.do(actor, "POST", "/v1/organizations/"+orgID+"/members", map[string]any{"email": email, "is_admin": isAdmin})
	want(b.t, r, http.StatusCreated, "")
	var m domain.Member
	r.decode(b.t, &m)
	return m
}

// outboxTypes returns the outbox's event types for organization orgID in commit order.
func (b *apiBundle) outboxTypes(orgID string) []string {
	b.t.Helper()
	rows, err := b.pool.Query(b.ctx, `SELECT type FROM outbox WHERE organization_id = $1 ORDER BY xid, pos`, orgID)
	if err != nil {
		b.t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			b.t.Fatal(err)
		}
		out = append(out, s)
	}
	return out
}

func TestHarnessSmoke(t *testing.T) {
	t.Parallel()
	b := setupAPI(t)
	owner := b.newUser("owner@example.com")
	org := b.newOrg(owner, "Vizsla Club")
	if org.Slug != "vizsla-club" {
		t.Fatalf("slug: got %q", org.Slug)
	}
	r := b.do(owner.caller, "GET", "/v1/organizations/"+org.ID, nil)
	want(t, r, http.StatusOK, "")
	want(t, b.do(anonymous, "GET", "/v1/organizations/"+org.ID, nil), http.StatusUnauthorized, "unauthenticated")
	want(t, b.do(owner.caller, "GET", "/v1/organizations/not-a-uuid", nil), http.StatusNotFound, "not_found")
}
