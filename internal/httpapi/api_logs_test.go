package httpapi_test

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/orgs-dev/orgs/internal/httpapi"
	"github.com/orgs-dev/orgs/internal/postgres"
	"github.com/orgs-dev/orgs/internal/postgres/postgrestest"
	"github.com/orgs-dev/orgs/internal/token"
)

// logBuffer collects log lines written by concurrent handlers.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// panickingStore is the real store, except that looking up a link's recipient panics
// for the user id panicUser: a handler that panics on an activation path.
type panickingStore struct {
	*postgres.Store
}

const panicUser = "0190b7a4-8f7e-7c4e-9d7e-00000000dead"

func (s panickingStore) FindActivationRecipient(ctx context.Context, userID string) (token.Recipient, error) {
	if userID == panicUser {
		panic("boom")
	}
	return s.Store.FindActivationRecipient(ctx, userID)
}

// TestAccessLogNeverHasTokens is the review's finding: the access log redacted the token
// only for answers of a matched activation route, so answers made before routing (a 401
// from auth, an idempotency replay, a 404 or 405, a panic) logged it. Each of those
// answers, on each activation path, logs the path without the token.
func TestAccessLogNeverHasTokens(t *testing.T) {
	t.Parallel()
	var logs logBuffer
	store := postgres.NewStore(postgrestest.New(t), postgres.StoreConfig{})
	signer, err := token.NewSigner([]string{"log-test-key-0123456789-0123456789"})
	if err != nil {
		t.Fatal(err)
	}
	h := httpapi.NewServer(zerolog.New(&logs), prometheus.NewRegistry(), panickingStore{store}, signer, httpapi.Config{
		Version: "test", APIKeys: map[string]string{serviceKey: "test"},
		PublicURL: "http://orgs.test", ActivationURL: "http://orgs.test/activate/{user_id}/{token}",
		AcceptURL: "http://orgs.test/v1/me/invitations", SiteName: "Orgs Test", InvitationTTL: time.Hour,
		Ready: func(context.Context) error { return nil },
	})
	srv := httptest.NewServer(h)
	defer srv.Close()

	const userID = "0190b7a4-8f7e-7c4e-9d7e-3f1d2c3b4a59"
	const secret = "n8s0qk.SECRETSECRETSECRETSECRETSECRETSECRETSEC"
	send := func(method, path, body string, header ...string) int {
		t.Helper()
		req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, path := range []string{
		"/activate/" + userID + "/" + secret,
		"/v1/activation/" + userID + "/" + secret,
		"/v1/activation/" + userID + "/" + secret + "/decline",
	} {
		for _, tt := range []struct {
			name         string
			method, body string
			header       []string
			status       int
		}{
			{"401 from auth", "POST", `{"password": "long enough"}`, []string{"Authorization", "Bearer not-a-session"}, http.StatusUnauthorized},
			{"405", "PUT", "", nil, http.StatusMethodNotAllowed},
			{"404 unmatched", "GET", "", nil, 0}, // on path + "/x"
			{"idempotency replay", "POST", `{"password": "long enough"}`, []string{"Idempotency-Key", "k-" + path}, 0},
			{"panic", "GET", "", nil, http.StatusInternalServerError},
		} {
			p := path
			switch tt.name {
			case "404 unmatched":
				p += "/x"
			case "panic":
				p = strings.Replace(p, userID, panicUser, 1)
				if strings.HasPrefix(p, "/v1/") && strings.HasSuffix(p, "/decline") {
					tt.method = "POST"
				}
			}
			first := send(tt.method, p, tt.body, tt.header...)
			if tt.name == "idempotency replay" {
				if again := send(tt.method, p, tt.body, tt.header...); again != first {
					t.Errorf("%s %s: replay got %d, want %d", tt.name, p, again, first)
				}
			}
			if tt.status != 0 && first != tt.status {
				t.Errorf("%s %s %s: got %d, want %d", tt.name, tt.method, p, first, tt.status)
			}
		}
	}
	srv.Close() // every access log line is written once the server is done
	out := logs.String()
	if strings.Contains(out, "SECRETSECRET") {
		for _, line := range strings.Split(out, "\n") {
			if strings.Contains(line, "SECRETSECRET") {
				t.Errorf("a log line has the token: %s", line)
			}
		}
	}
	if n := strings.Count(out, `"message":"request"`); n < 18 {
		t.Errorf("access log lines: got %d, want at least 18:\n%s", n, out)
	}
	if !strings.Contains(out, `"path":"/v1/activation/`+userID+`/REDACTED/decline"`) {
		t.Errorf("the access log lacks the redacted decline path:\n%s", out)
	}
}
