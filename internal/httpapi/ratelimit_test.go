package httpapi

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/orgs-dev/orgs/internal/domain"
)

func TestRateLimiter(t *testing.T) {
	t.Parallel()
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	l := newRateLimiter(1, 2)
	l.now = func() time.Time { return now }
	for i, want := range []bool{true, true, false} {
		if ok, _ := l.allow("10.0.0.1"); ok != want {
			t.Errorf("request %d: got allowed=%v, want %v", i+1, ok, want)
		}
	}
	if ok, _ := l.allow("10.0.0.2"); !ok {
		t.Error("another client: got limited, want allowed")
	}
	_, wait := l.allow("10.0.0.1")
	if wait <= 0 || wait > time.Second {
		t.Errorf("retry after: got %v, want (0, 1s]", wait)
	}
	now = now.Add(time.Second)
	if ok, _ := l.allow("10.0.0.1"); !ok {
		t.Error("after a second: got limited, want allowed")
	}

	now = now.Add(limiterIdle + time.Minute)
	l.allow("10.0.0.3")
	if got := len(l.clients); got != 1 {
		t.Errorf("after the idle time: got %d clients, want 1 (idle ones evicted)", got)
	}
}

func TestRateLimiterBoundedMemory(t *testing.T) {
	t.Parallel()
	l := newRateLimiter(1, 1)
	for i := range limiterMaxClients + 10 {
		l.allow(string(rune(i)))
	}
	if got := len(l.clients); got > limiterMaxClients {
		t.Errorf("got %d clients, want at most %d", got, limiterMaxClients)
	}
}

func TestRateLimitMiddleware(t *testing.T) {
	t.Parallel()
	l := newRateLimiter(0.001, 1)
	h := l.limit(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusAccepted) }))
	call := func(actor domain.Actor) *httptest.ResponseRecorder {
		r := httptest.NewRequest("POST", "/v1/signup", nil)
		r.RemoteAddr = "192.0.2.7:5555"
		r = r.WithContext(withActor(r.Context(), actor))
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		return rec
	}
	if rec := call(domain.Actor{}); rec.Code != http.StatusAccepted {
		t.Fatalf("first: got %d, want 202", rec.Code)
	}
	rec := call(domain.Actor{})
	if rec.Code != http.StatusTooManyRequests || rec.Header().Get("Retry-After") == "" {
		t.Fatalf("second: got %d Retry-After %q, want 429 with Retry-After", rec.Code, rec.Header().Get("Retry-After"))
	}
	if rec := call(domain.Actor{Service: "billing"}); rec.Code != http.StatusAccepted {
		t.Errorf("service key: got %d, want 202 (never limited)", rec.Code)
	}
}
