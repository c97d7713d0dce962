package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"testing"

	"github.com/orgs-dev/orgs/internal/domain"
	"github.com/orgs-dev/orgs/internal/token"
)

func TestAuthentication(t *testing.T) {
	t.Parallel()
	ta := newTestAPI(t, false)
	bearer := func(tok string) string { return "Bearer " + tok }
	tests := []struct {
		name    string
		path    string
		header  map[string]string
		status  int
		code    string // problem code when not 200
		wantID  string // the actor's user id in /v1/me's answer
		service string
	}{
		{name: "anonymous /v1/me", path: "/v1/me", status: 401, code: "unauthenticated"},
		{name: "anonymous may reach anonymous endpoints", path: "/healthz", status: 200},
		{name: "user session", path: "/v1/me", header: map[string]string{"Authorization": bearer(userToken)}, status: 200, wantID: aliceID},
		{name: "lowercase scheme", path: "/v1/me", header: map[string]string{"Authorization": "bearer " + userToken}, status: 200, wantID: aliceID},
		{name: "invalid bearer", path: "/healthz", header: map[string]string{"Authorization": bearer("nope")}, status: 401, code: "unauthenticated"},
		{name: "empty bearer", path: "/v1/me", header: map[string]string{"Authorization": "Bearer "}, status: 401, code: "unauthenticated"},
		{name: "basic auth", path: "/v1/me", header: map[string]string{"Authorization": "Basic dXNlcjpwYXNz"}, status: 401, code: "unauthenticated"},
		{name: "service key is nobody's me", path: "/v1/me", header: map[string]string{"Authorization": bearer(serviceKey)}, status: 403, code: "forbidden"},
		{name: "service key on behalf of a user", path: "/v1/me", header: map[string]string{"Authorization": bearer(serviceKey), "On-Behalf-Of": aliceID}, status: 200, wantID: aliceID, service: "billing"},
		{name: "on behalf of an unknown user", path: "/v1/me", header: map[string]string{"Authorization": bearer(serviceKey), "On-Behalf-Of": unknownUser}, status: 401, code: "unauthenticated"},
		{name: "on behalf of a non-UUID", path: "/v1/me", header: map[string]string{"Authorization": bearer(serviceKey), "On-Behalf-Of": "alice' OR 1=1"}, status: 401, code: "unauthenticated"},
		{name: "user session on behalf of someone", path: "/v1/me", header: map[string]string{"Authorization": bearer(userToken), "On-Behalf-Of": aliceID}, status: 403, code: "forbidden"},
		{name: "on behalf without credentials", path: "/v1/me", header: map[string]string{"On-Behalf-Of": aliceID}, status: 401, code: "unauthenticated"},
		{name: "service endpoint with a service key", path: "/v1/events", header: map[string]string{"Authorization": bearer("other-secret")}, status: 200, service: "crm"},
		{name: "service endpoint with a user", path: "/v1/events", header: map[string]string{"Authorization": bearer(userToken)}, status: 403, code: "forbidden"},
		{name: "service endpoint on behalf of a user", path: "/v1/events", header: map[string]string{"Authorization": bearer(serviceKey), "On-Behalf-Of": aliceID}, status: 403, code: "forbidden"},
		{name: "service endpoint anonymous", path: "/v1/events", status: 401, code: "unauthenticated"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			res := ta.do(t, request{method: "GET", path: tt.path, header: tt.header})
			if tt.code != "" {
				wantProblem(t, res, tt.status, tt.code)
				if tt.header["Authorization"] != "" && tt.status == 401 && res.header.Get("WWW-Authenticate") == "" {
					t.Error("401 for a bad credential without WWW-Authenticate")
				}
				return
			}
			if res.status != tt.status {
				t.Fatalf("got %d %s, want %d", res.status, res.body, tt.status)
			}
			if tt.path == "/healthz" {
				return
			}
			var got thing
			if err := json.Unmarshal(res.body, &got); err != nil {
				t.Fatal(err)
			}
			if got.ID != tt.wantID || got.Name != tt.service {
				t.Errorf("actor: got user %q service %q, want %q %q", got.ID, got.Name, tt.wantID, tt.service)
			}
		})
	}
}

func TestAuthenticateSessionActor(t *testing.T) {
	t.Parallel()
	a := NewAuthenticator(nil, fakeSessions{})
	r := httptest.NewRequest("GET", "/v1/me", nil)
	r.Header.Set("Authorization", "Bearer "+userToken)
	actor, err := a.authenticate(r)
	if err != nil {
		t.Fatal(err)
	}
	if actor.UserID != aliceID || actor.IsService() || string(actor.SessionID) != string(token.HashSession(userToken)) {
		t.Errorf("got %+v, want alice with her session hash", actor)
	}
}

type brokenSessions struct{ fakeSessions }

func (brokenSessions) FindSessionUser(context.Context, []byte) (domain.User, error) {
	return domain.User{}, errors.New("connection refused")
}

func TestAuthenticateStoreFailureIsNot401(t *testing.T) {
	t.Parallel()
	a := NewAuthenticator(nil, brokenSessions{})
	r := httptest.NewRequest("GET", "/v1/me", nil)
	r.Header.Set("Authorization", "Bearer whatever")
	_, err := a.authenticate(r)
	if err == nil || errors.Is(err, domain.ErrUnauthenticated) {
		t.Errorf("got %v, want an internal error (a database outage must not log people out)", err)
	}
}
