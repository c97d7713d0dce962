// Package proctest runs a command's run function in a test, the way its main does, against
// real dependencies: a fresh Postgres schema, an embedded JetStream, an SMTP sink and free
// ports. Only the commands' tests import it.
package proctest

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

	"github.com/orgs-dev/orgs/internal/events/eventstest"
	"github.com/orgs-dev/orgs/internal/mail/mailtest"
	"github.com/orgs-dev/orgs/internal/postgres/postgrestest"
)

// RunFunc is a command's run function.
type RunFunc func(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error

// Logs is a buffer safe for the logger's and the test's goroutines.
type Logs struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *Logs) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *Logs) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// FreeAddr returns a 127.0.0.1 address with a port that was free a moment ago.
func FreeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// Env returns the ORGS_ environment of a process on a fresh schema, an embedded
// JetStream, an SMTP sink and free ports.
func Env(t testing.TB) map[string]string {
	t.Helper()
	_, dbURL := postgrestest.NewWithURL(t)
	ns := eventstest.RunServer(t)
	smtp := mailtest.NewServer(t)
	httpAddr := FreeAddr(t)
	return map[string]string{
		"ORGS_DATABASE_URL":     dbURL,
		"ORGS_NATS_URL":         ns.ClientURL(),
		"ORGS_HTTP_ADDR":        httpAddr,
		"ORGS_METRICS_ADDR":     FreeAddr(t),
		"ORGS_PUBLIC_URL":       "http://" + httpAddr,
		"ORGS_MAIL_URL":         smtp.URL(),
		"ORGS_API_KEYS":         "test:test-service-key-0123456789",
		"ORGS_SECRET_KEY":       "cmd-test-secret-key-0123456789-0123456789",
		"ORGS_LOG_LEVEL":        "warn",
		"ORGS_SHUTDOWN_TIMEOUT": "5s",
	}
}

// Proc is a run function running in a goroutine.
type Proc struct {
	Logs   *Logs
	cancel context.CancelFunc
	done   chan error
}

// Start runs run(ctx, args, env) in a goroutine; Stop (or the test's end) cancels it.
func Start(t testing.TB, run RunFunc, args []string, env map[string]string) *Proc {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	p := &Proc{Logs: &Logs{}, cancel: cancel, done: make(chan error, 1)}
	go func() { p.done <- run(ctx, args, func(k string) string { return env[k] }, p.Logs) }()
	t.Cleanup(cancel)
	return p
}

// WaitReady polls url until it answers 200 (20 s at most).
func (p *Proc) WaitReady(t testing.TB, url string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		code, body := Get(url)
		if code == http.StatusOK {
			return
		}
		select {
		case err := <-p.done:
			t.Fatalf("run returned %v before %s was ready; logs:\n%s", err, url, p.Logs)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET %s: got %d %q, want 200 within 20s; logs:\n%s", url, code, body, p.Logs)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Stop cancels run's context and requires it to return nil within 10 s.
func (p *Proc) Stop(t testing.TB) {
	t.Helper()
	p.cancel()
	select {
	case err := <-p.done:
		if err != nil {
			t.Fatalf("run: got %v, want nil; logs:\n%s", err, p.Logs)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("run did not return within 10s of cancel; logs:\n%s", p.Logs)
	}
}

// Get returns the status and body of GET url (0 and the error's text when it fails).
func Get(url string) (int, string) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// CheckOps checks a running process's /healthz and its /metrics (with orgs_build_info,
// the Go collector and the names in want) on base.
func CheckOps(t testing.TB, base string, want ...string) {
	t.Helper()
	if code, _ := Get(base + "/healthz"); code != http.StatusOK {
		t.Errorf("GET /healthz: got %d, want 200", code)
	}
	code, body := Get(base + "/metrics")
	if code != http.StatusOK {
		t.Fatalf("GET /metrics: got %d, want 200", code)
	}
	for _, name := range append([]string{"orgs_build_info", "go_goroutines"}, want...) {
		if !strings.Contains(body, name) {
			t.Errorf("GET /metrics: no %s", name)
		}
	}
}

// CheckHelp requires name -h to list the ORGS_ variables.
func CheckHelp(t testing.TB, run RunFunc, name string) {
	t.Helper()
	out := &Logs{}
	err := run(context.Background(), []string{name, "-h"}, func(string) string { return "" }, out)
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("%s -h: got %v, want flag.ErrHelp or nil", name, err)
	}
	for _, v := range []string{"ORGS_DATABASE_URL", "ORGS_NATS_URL", "ORGS_HTTP_ADDR", "ORGS_METRICS_ADDR", "ORGS_SECRET_KEY", "ORGS_API_KEYS", "ORGS_MAIL_URL", "ORGS_INVITATION_TTL"} {
		if !strings.Contains(out.String(), v) {
			t.Errorf("%s -h does not list %s:\n%s", name, v, out)
		}
	}
}

// CheckBadConfig requires run in production without a secret key to fail, naming it.
func CheckBadConfig(t testing.TB, run RunFunc, name string) {
	t.Helper()
	env := map[string]string{"ORGS_ENV": "production"}
	err := run(context.Background(), []string{name}, func(k string) string { return env[k] }, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "ORGS_SECRET_KEY") {
		t.Fatalf("%s in production without a secret key: got %v, want an error naming ORGS_SECRET_KEY", name, err)
	}
}
