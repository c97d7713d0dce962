package httpapi_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/orgs-dev/orgs/internal/httpapi"
	"github.com/orgs-dev/orgs/internal/postgres"
	"github.com/orgs-dev/orgs/internal/postgres/postgrestest"
	"github.com/orgs-dev/orgs/internal/telemetry"
)

// TestReadyzHidesDriverErrors is the review's finding: /readyz on the API's port (which
// anyone can reach) answered with the raw driver error. It names the dependency only;
// the detail goes to the log.
func TestReadyzHidesDriverErrors(t *testing.T) {
	t.Parallel()
	var logs strings.Builder
	logger := zerolog.New(&logs)
	driver := errors.New("failed to connect to `user=orgs database=orgs`: 10.9.8.7:5432: connection refused")
	h := httpapi.NewServer(logger, prometheus.NewRegistry(), postgres.NewStore(postgrestest.New(t), postgres.StoreConfig{}), nil, httpapi.Config{
		Version: "test", PublicURL: "http://orgs.test",
		Ready: func(context.Context) error { return telemetry.Unready("postgres", driver) },
	})
	srv := httptest.NewServer(h)
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || string(body) != "not ready: postgres\n" {
		t.Errorf("GET /readyz: got %d %q, want 503 %q", resp.StatusCode, body, "not ready: postgres\n")
	}
	srv.Close() // the log is complete once the server is done
	if !strings.Contains(logs.String(), "10.9.8.7:5432") {
		t.Errorf("the log lacks the driver's error:\n%s", logs.String())
	}
}

// TestRiverUIRefusesEmptyPassword checks the River UI's basic auth: the operator's
// credentials and a service key get in, nothing else does, and a user configured
// without a password lets nobody in by basic auth.
func TestRiverUIRefusesEmptyPassword(t *testing.T) {
	t.Parallel()
	store := postgres.NewStore(postgrestest.New(t), postgres.StoreConfig{})
	ui := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "river ui") })
	for _, tt := range []struct {
		password   string
		user, pass string
		bearer     string
		wantStatus int
	}{
		{password: "operator password", user: "ops", pass: "operator password", wantStatus: 200},
		{password: "operator password", user: "ops", pass: "", wantStatus: 401},
		{password: "operator password", bearer: serviceKey, wantStatus: 200},
		{password: "", user: "ops", pass: "", wantStatus: 401},
		{password: "", bearer: serviceKey, wantStatus: 200},
	} {
		h := httpapi.NewServer(zerolog.Nop(), prometheus.NewRegistry(), store, nil, httpapi.Config{
			Version: "test", PublicURL: "http://orgs.test", APIKeys: map[string]string{serviceKey: "test"},
			RiverUI: ui, RiverUIUser: "ops", RiverUIPassword: tt.password,
		})
		req := httptest.NewRequest("GET", "/riverui/", nil)
		if tt.user != "" {
			req.SetBasicAuth(tt.user, tt.pass)
		}
		if tt.bearer != "" {
			req.Header.Set("Authorization", "Bearer "+tt.bearer)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != tt.wantStatus {
			t.Errorf("configured password %q, basic %q:%q, bearer %v: got %d, want %d", tt.password, tt.user, tt.pass, tt.bearer != "", rec.Code, tt.wantStatus)
		}
	}
}
