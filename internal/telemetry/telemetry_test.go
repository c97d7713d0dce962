package telemetry

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rs/zerolog"
	"go.uber.org/goleak"

	"github.com/orgs-dev/orgs/internal/config"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestNewLogger(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	logger, err := NewLogger(&buf, config.Log{Level: "warn", Format: "json"})
	if err != nil {
		t.Fatalf("NewLogger: %v", err)
	}
	logger.Info().Msg("hidden")
	logger.Warn().Str("org_id", "x").Msg("shown")
	var line map[string]any
	if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
		t.Fatalf("got %q, want one JSON line: %v", buf.String(), err)
	}
	if line["message"] != "shown" || line["org_id"] != "x" || line["level"] != "warn" || line["time"] == nil {
		t.Errorf("got %v, want the warn line with org_id and time", line)
	}

	buf.Reset()
	console, err := NewLogger(&buf, config.Log{Level: "debug", Format: "console"})
	if err != nil {
		t.Fatalf("NewLogger console: %v", err)
	}
	console.Debug().Msg("hello")
	if got := buf.String(); !strings.Contains(got, "hello") || strings.HasPrefix(got, "{") {
		t.Errorf("console output %q, want a human-readable line", got)
	}

	for _, cfg := range []config.Log{{Level: "loud", Format: "json"}, {Level: "info", Format: "xml"}} {
		if _, err := NewLogger(io.Discard, cfg); err == nil {
			t.Errorf("NewLogger(%+v): got nil error, want one", cfg)
		}
	}
}

func TestSlogHandler(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	logger := slog.New(SlogHandler(zerolog.New(&buf).Level(zerolog.InfoLevel)))
	logger.Debug("hidden")
	logger.With("queue", "mail").Error("job failed", "attempt", 3)
	var line map[string]any
	if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
		t.Fatalf("got %q, want one JSON line: %v", buf.String(), err)
	}
	if line["message"] != "job failed" || line["level"] != "error" || line["queue"] != "mail" || line["attempt"] != float64(3) {
		t.Errorf("got %v, want the error line with queue and attempt", line)
	}
}

func TestRegistry(t *testing.T) {
	t.Parallel()
	reg := NewRegistry("1.2.3", "abc")
	m := NewHTTPMetrics(reg)
	m.Requests.WithLabelValues("GET", "GET /v1/me", "200").Inc()
	m.Duration.WithLabelValues("GET", "GET /v1/me").Observe(0.01)

	want := `
# HELP orgs_build_info The running build: always 1, labelled with its version and revision.
# TYPE orgs_build_info gauge
orgs_build_info{revision="abc",version="1.2.3"} 1
# HELP orgs_http_requests_total HTTP requests served, by method, route pattern and status code.
# TYPE orgs_http_requests_total counter
orgs_http_requests_total{code="200",method="GET",route="GET /v1/me"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "orgs_build_info", "orgs_http_requests_total"); err != nil {
		t.Error(err)
	}
	if n, err := testutil.GatherAndCount(reg, "go_goroutines", "process_cpu_seconds_total", "orgs_http_request_duration_seconds"); err != nil || n != 3 {
		t.Errorf("runtime, process and duration metrics: got %d series (%v), want 3", n, err)
	}
}

func TestServeOps(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ready := func(ctx context.Context) error {
		if _, ok := ctx.Deadline(); !ok {
			return errors.New("no deadline")
		}
		return errors.New("postgres: connection refused")
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serveOps(ctx, ln, NewRegistry("v", "r"), ready, zerolog.New(zerolog.NewTestWriter(t))) }()

	base := "http://" + ln.Addr().String()
	get := func(path string) (int, string) {
		t.Helper()
		res, err := http.Get(base + path)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	if code, body := get("/healthz"); code != 200 || body != "ok\n" {
		t.Errorf("/healthz: got %d %q, want 200 ok", code, body)
	}
	if code, body := get("/readyz"); code != 503 || !strings.Contains(body, "connection refused") {
		t.Errorf("/readyz not ready: got %d %q, want 503 with the error", code, body)
	}
	if code, body := get("/metrics"); code != 200 || !strings.Contains(body, "orgs_build_info") {
		t.Errorf("/metrics: got %d, want 200 with orgs_build_info", code)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("serveOps returned %v, want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("serveOps did not return after cancel")
	}
}

func TestOpsHandlerReady(t *testing.T) {
	t.Parallel()
	h := OpsHandler(nil, func(context.Context) error { return nil })
	for path, want := range map[string]int{"/readyz": 200, "/healthz": 200, "/metrics": 404} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		if rec.Code != want {
			t.Errorf("GET %s: got %d, want %d", path, rec.Code, want)
		}
	}
}

// TestPublicReady is the review's finding: /readyz on the API's public port returned the
// driver's error text. The public answer names the dependency only; the log has the rest.
func TestPublicReady(t *testing.T) {
	t.Parallel()
	driver := errors.New(`failed to connect to user=orgs database=orgs: 10.1.2.3:5432 (db.internal): dial error`)
	for _, tt := range []struct {
		err      error
		want     string
		wantCode int
	}{
		{nil, "ok\n", 200},
		{Unready("postgres", driver), "not ready: postgres\n", 503},
		{Unready("nats", errors.New("nats: not connected (RECONNECTING) to nats://10.1.2.4:4222")), "not ready: nats\n", 503},
		{driver, "not ready\n", 503},
	} {
		var logs bytes.Buffer
		h := OpsHandler(nil, PublicReady(func(context.Context) error { return tt.err }, zerolog.New(&logs)))
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "/readyz", nil))
		if rec.Code != tt.wantCode || rec.Body.String() != tt.want {
			t.Errorf("%v: got %d %q, want %d %q", tt.err, rec.Code, rec.Body.String(), tt.wantCode, tt.want)
		}
		if tt.err != nil && !strings.Contains(logs.String(), "10.1.2.") {
			t.Errorf("%v: the log lacks the detail: %s", tt.err, logs.String())
		}
	}
	// The ops port keeps the detail, without a doubled prefix.
	rec := httptest.NewRecorder()
	OpsHandler(nil, func(context.Context) error { return Unready("nats", errors.New("nats: not connected")) }).
		ServeHTTP(rec, httptest.NewRequest("GET", "/readyz", nil))
	if got := rec.Body.String(); got != "nats: not connected\n" {
		t.Errorf("ops /readyz: got %q, want %q", got, "nats: not connected\n")
	}
}
