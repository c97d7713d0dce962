package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/orgs-dev/orgs/internal/events/eventstest"
	"github.com/orgs-dev/orgs/internal/mail/mailtest"
	"github.com/orgs-dev/orgs/internal/postgres/postgrestest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// syncBuffer is a bytes.Buffer safe for the logger's and the test's goroutines.
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

// freeAddr returns a 127.0.0.1 address with a port that was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// testEnv returns a getenv over a fresh schema, an embedded JetStream, an SMTP sink and
// free ports, and the map behind it.
func testEnv(t *testing.T) (func(string) string, map[string]string) {
	t.Helper()
	_, dbURL := postgrestest.NewWithURL(t)
	ns := eventstest.RunServer(t)
	smtp := mailtest.NewServer(t)
	httpAddr := freeAddr(t)
	env := map[string]string{
		"ORGS_DATABASE_URL":     dbURL,
		"ORGS_NATS_URL":         ns.ClientURL(),
		"ORGS_HTTP_ADDR":        httpAddr,
		"ORGS_METRICS_ADDR":     freeAddr(t),
		"ORGS_PUBLIC_URL":       "http://" + httpAddr,
		"ORGS_MAIL_URL":         smtp.URL(),
		"ORGS_API_KEYS":         "test:test-service-key-0123456789",
		"ORGS_SECRET_KEY":       "cmd-test-secret-key-0123456789-0123456789",
		"ORGS_LOG_LEVEL":        "warn",
		"ORGS_SHUTDOWN_TIMEOUT": "5s",
	}
	return func(k string) string { return env[k] }, env
}

// get returns the status and body of GET url.
func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// waitReady polls url until it answers 200.
func waitReady(t *testing.T, url string, done <-chan error, logs *syncBuffer) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		code, body := get(t, url)
		if code == http.StatusOK {
			return
		}
		select {
		case err := <-done:
			t.Fatalf("run returned %v before %s was ready; logs:\n%s", err, url, logs)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET %s: got %d %q, want 200 within 20s; logs:\n%s", url, code, body, logs)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestRun(t *testing.T) {
	t.Parallel()
	getenv, env := testEnv(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	logs := &syncBuffer{}
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"reminder"}, getenv, logs) }()

	metrics := "http://" + env["ORGS_METRICS_ADDR"]
	waitReady(t, metrics+"/readyz", done, logs)
	if code, _ := get(t, metrics+"/healthz"); code != http.StatusOK {
		t.Errorf("GET /healthz: got %d, want 200", code)
	}
	code, body := get(t, metrics+"/metrics")
	if code != http.StatusOK || !strings.Contains(body, "orgs_build_info") {
		t.Errorf("GET /metrics: got %d without orgs_build_info, want 200 with it:\n%s", code, body)
	}
	if !strings.Contains(body, "go_goroutines") {
		t.Errorf("GET /metrics: no go_goroutines")
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run: got %v, want nil; logs:\n%s", err, logs)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("run did not return within 10s of cancel; logs:\n%s", logs)
	}
}

func TestRunHelp(t *testing.T) {
	t.Parallel()
	out := &syncBuffer{}
	err := run(context.Background(), []string{"reminder", "-h"}, func(string) string { return "" }, out)
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("reminder -h: got %v, want flag.ErrHelp or nil", err)
	}
	for _, v := range []string{"ORGS_DATABASE_URL", "ORGS_NATS_URL", "ORGS_HTTP_ADDR", "ORGS_METRICS_ADDR", "ORGS_SECRET_KEY", "ORGS_API_KEYS", "ORGS_MAIL_URL", "ORGS_INVITATION_TTL"} {
		if !strings.Contains(out.String(), v) {
			t.Errorf("reminder -h does not list %s:\n%s", v, out)
		}
	}
}

func TestRunBadConfig(t *testing.T) {
	t.Parallel()
	env := map[string]string{"ORGS_ENV": "production"} // no ORGS_SECRET_KEY
	err := run(context.Background(), []string{"reminder"}, func(k string) string { return env[k] }, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "ORGS_SECRET_KEY") {
		t.Fatalf("run in production without a secret key: got %v, want an error naming ORGS_SECRET_KEY", err)
	}
}
