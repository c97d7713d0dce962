package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"go.uber.org/goleak"

	"github.com/orgs-dev/orgs/internal/domain"
	"github.com/orgs-dev/orgs/internal/postgres"
	"github.com/orgs-dev/orgs/internal/postgres/postgrestest"
	"github.com/orgs-dev/orgs/internal/telemetry"
	"github.com/orgs-dev/orgs/internal/token"
)

func TestMain(m *testing.M) {
	// pgxpool's background health checks end with the pool, in t.Cleanup.
	goleak.VerifyTestMain(m)
}

// Fixtures of the test API.
const (
	serviceKey  = "service-secret-1"
	userToken   = "user-session-token"
	aliceID     = "0190a1b2-0000-7000-8000-00000000a11c"
	unknownUser = "0190a1b2-0000-7000-8000-000000000000"
)

// fakeSessions is the sessions and users of the test API. (The real ones are the lead's
// postgres.Store; authentication only needs these two lookups.)
type fakeSessions struct{}

func (fakeSessions) FindSessionUser(_ context.Context, hash []byte) (domain.User, error) {
	if bytes.Equal(hash, token.HashSession(userToken)) {
		return domain.User{ID: aliceID, Email: "alice@example.com", IsActive: true}, nil
	}
	return domain.User{}, domain.ErrNotFound
}

func (fakeSessions) FindUserByID(_ context.Context, id string) (domain.User, error) {
	if id == aliceID {
		return domain.User{ID: aliceID, Email: "alice@example.com", IsActive: true}, nil
	}
	return domain.User{}, fmt.Errorf("find user %s: %w", id, domain.ErrNotFound)
}

type thingBody struct {
	Name  string `json:"name" minLength:"1" maxLength:"100"`
	Email string `json:"email,omitempty" format:"email"`
}

type thing struct {
	ID    string `json:"id"`
	Name  string `json:"name"`
	Email string `json:"email"`
	Call  int32  `json:"call"`
}

type thingOutput struct {
	Body thing
}

// testAPI is a tiny API on the real framework: POST /v1/things (its name picks an
// outcome), GET /v1/things/{id}, GET /v1/things (a list), GET /v1/me.
type testAPI struct {
	handler http.Handler
	metrics *telemetry.HTTPMetrics
	logs    *syncBuffer
	calls   atomic.Int32
	gate    chan struct{} // "wait" blocks on it
	started chan struct{} // "wait" signals on it
	pool    *pgxpool.Pool // with db
}

// keys counts the idempotency keys kept.
func (ta *testAPI) keys(t *testing.T) int {
	t.Helper()
	var n int
	if err := ta.pool.QueryRow(context.Background(), `SELECT count(*) FROM idempotency_keys`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// newTestAPI builds the test API; with db, idempotency keys live in a fresh Postgres
// schema.
func newTestAPI(t *testing.T, db bool) *testAPI {
	t.Helper()
	ta := &testAPI{logs: &syncBuffer{}, gate: make(chan struct{}), started: make(chan struct{}, 16)}
	logger := zerolog.New(io.MultiWriter(ta.logs, zerolog.NewTestWriter(t))).Level(zerolog.DebugLevel)
	mux := http.NewServeMux()
	api := newAPI(mux, "orgs test", "0.0.0")

	register(api, huma.Operation{
		OperationID: "create-thing", Method: http.MethodPost, Path: "/v1/things",
		DefaultStatus: http.StatusCreated, Security: optionalAuth,
	}, func(ctx context.Context, in *struct{ Body thingBody }) (*thingOutput, error) {
		n := ta.calls.Add(1)
		switch in.Body.Name {
		case "boom":
			panic("boom")
		case "taken":
			return nil, fmt.Errorf("create thing %q: %w", in.Body.Name, domain.ErrSlugTaken)
		case "secret":
			return nil, errors.New("connect: password=hunter2 refused")
		case "invalid":
			return nil, &domain.ValidationError{Problems: []domain.Problem{{Location: "body.name", Message: "is odd"}}}
		case "wait":
			ta.started <- struct{}{}
			<-ta.gate
		case "until-canceled": // a query the client's disconnect cancels
			ta.started <- struct{}{}
			<-ctx.Done()
			return nil, fmt.Errorf("query: %w", ctx.Err())
		}
		return &thingOutput{Body: thing{ID: aliceID, Name: in.Body.Name, Email: in.Body.Email, Call: n}}, nil
	})
	register(api, huma.Operation{
		OperationID: "get-thing", Method: http.MethodGet, Path: "/v1/things/{id}",
	}, func(ctx context.Context, in *struct {
		ID string `path:"id" format:"uuid"`
	}) (*thingOutput, error) {
		if in.ID != aliceID {
			return nil, domain.ErrNotFound
		}
		return &thingOutput{Body: thing{ID: in.ID}}, nil
	})
	register(api, huma.Operation{
		OperationID: "list-things", Method: http.MethodGet, Path: "/v1/things",
	}, func(ctx context.Context, in *struct{ Pagination }) (*listOutput[thing], error) {
		items := []thing{{ID: aliceID, Name: fmt.Sprintf("limit=%d after=%s", in.Limit, in.AfterID)}}
		return newList(items, encodeCursor(time.Date(2025, 1, 2, 3, 4, 5, 6, time.UTC), aliceID)), nil
	})
	register(api, huma.Operation{
		OperationID: "get-me", Method: http.MethodGet, Path: "/v1/me",
	}, func(ctx context.Context, _ *struct{}) (*thingOutput, error) {
		actor, err := requireUser(ctx)
		if err != nil {
			return nil, err
		}
		return &thingOutput{Body: thing{ID: actor.UserID, Name: actor.Service}}, nil
	})
	register(api, huma.Operation{
		OperationID: "get-events", Method: http.MethodGet, Path: "/v1/events",
	}, func(ctx context.Context, _ *struct{}) (*thingOutput, error) {
		actor, err := requireService(ctx)
		if err != nil {
			return nil, err
		}
		return &thingOutput{Body: thing{Name: actor.Service}}, nil
	})
	ops := telemetry.OpsHandler(nil, nil)
	mux.Handle("GET /healthz", ops)

	var store idempotencyStore
	if db {
		ta.pool = postgrestest.New(t)
		store = postgres.NewStore(ta.pool, postgres.StoreConfig{})
	}
	ta.metrics = telemetry.NewHTTPMetrics(prometheus.NewRegistry())
	auth := NewAuthenticator(map[string]string{serviceKey: "billing", "other-secret": "crm"}, fakeSessions{})
	ta.handler = middleware(mux, logger, ta.metrics, auth, store, NewSealer("test-secret"))
	return ta
}

// request is one request to the test API.
type request struct {
	method, path, body string
	header             map[string]string
}

type response struct {
	status  int
	header  http.Header
	body    []byte
	problem Problem
}

func (ta *testAPI) do(t *testing.T, req request) response {
	t.Helper()
	var body io.Reader
	if req.body != "" {
		body = strings.NewReader(req.body)
	}
	r := httptest.NewRequest(req.method, req.path, body)
	if req.body != "" {
		r.Header.Set("Content-Type", "application/json")
	}
	for k, v := range req.header {
		r.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	ta.handler.ServeHTTP(rec, r)
	res := response{status: rec.Code, header: rec.Header(), body: rec.Body.Bytes()}
	if strings.HasPrefix(rec.Header().Get("Content-Type"), "application/problem+json") {
		if err := json.Unmarshal(res.body, &res.problem); err != nil {
			t.Fatalf("%s %s: problem body %q: %v", req.method, req.path, res.body, err)
		}
	}
	return res
}

// wantProblem checks a problem response's status, code and shape.
func wantProblem(t *testing.T, res response, status int, code string) {
	t.Helper()
	if res.status != status || res.problem.Code != code {
		t.Fatalf("got %d %q (%s), want %d %q", res.status, res.problem.Code, res.body, status, code)
	}
	p := res.problem
	if p.Status != status || p.Type != problemTypeBase+code || p.Title == "" || p.Detail == "" {
		t.Errorf("problem %+v: want status %d, type %s, a title and a detail", p, status, problemTypeBase+code)
	}
	if got := res.header.Get("Content-Type"); got != "application/problem+json" {
		t.Errorf("Content-Type: got %q, want application/problem+json", got)
	}
}
