package httpapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/google/uuid"

	"github.com/orgs-dev/orgs/internal/domain"
	"github.com/orgs-dev/orgs/internal/token"
)

// sessionFinder is what authentication needs from the store.
type sessionFinder interface {
	// FindSessionUser returns the user of the unexpired session with this token hash;
	// domain.ErrNotFound (or ErrUnauthenticated) when there is none.
	FindSessionUser(ctx context.Context, tokenHash []byte) (domain.User, error)
	// FindUserByID returns a user; domain.ErrNotFound when there is none.
	FindUserByID(ctx context.Context, id string) (domain.User, error)
}

// Authenticator turns a request's bearer token into a domain.Actor: a service API key
// (a superuser, or with On-Behalf-Of exactly that user), or a user session. Sessions are
// looked up on every request, never cached, so that logging out takes effect at once.
type Authenticator struct {
	keys     []apiKey
	sessions sessionFinder
}

type apiKey struct {
	secret []byte
	name   string
}

// NewAuthenticator returns an Authenticator for the service keys apiKeys (secret → name,
// as config.Config.APIKeys) and the sessions in sessions.
func NewAuthenticator(apiKeys map[string]string, sessions sessionFinder) *Authenticator {
	a := &Authenticator{sessions: sessions}
	for secret, name := range apiKeys {
		a.keys = append(a.keys, apiKey{secret: []byte(secret), name: name})
	}
	return a
}

// serviceName returns the name of the service key equal to secret, or "". It compares
// with every key in constant time, so the time taken says nothing about which key, or
// how much of one, matched.
func (a *Authenticator) serviceName(secret string) string {
	name := ""
	for _, k := range a.keys {
		// Hash-then-compare: equal lengths, so not even a key's length leaks.
		if token.EqualConstantTime(string(k.secret), secret) {
			name = k.name
		}
	}
	return name
}

// errBadOnBehalfOf is the detail when On-Behalf-Of names no user.
var errBadOnBehalfOf = fmt.Errorf("%w: On-Behalf-Of names no user", domain.ErrUnauthenticated)

// authenticate returns the request's actor. No Authorization header is the anonymous
// actor (each endpoint decides); a present but malformed, unknown or expired bearer is
// domain.ErrUnauthenticated, as is On-Behalf-Of without credentials or naming no user;
// On-Behalf-Of with a user session is domain.ErrForbidden.
func (a *Authenticator) authenticate(r *http.Request) (domain.Actor, error) {
	ctx := r.Context()
	obo := r.Header.Get("On-Behalf-Of")
	header := r.Header.Get("Authorization")
	if header == "" {
		if obo != "" {
			return domain.Actor{}, domain.ErrUnauthenticated
		}
		return domain.Actor{}, nil
	}
	scheme, bearer, ok := strings.Cut(header, " ")
	bearer = strings.TrimSpace(bearer)
	if !ok || !strings.EqualFold(scheme, "Bearer") || bearer == "" {
		return domain.Actor{}, domain.ErrUnauthenticated
	}

	if name := a.serviceName(bearer); name != "" {
		actor := domain.Actor{Service: name}
		if obo == "" {
			return actor, nil
		}
		if _, err := uuid.Parse(obo); err != nil || len(obo) != 36 {
			return domain.Actor{}, errBadOnBehalfOf
		}
		u, err := a.sessions.FindUserByID(ctx, strings.ToLower(obo))
		if err != nil {
			if errors.Is(err, domain.ErrNotFound) {
				return domain.Actor{}, errBadOnBehalfOf
			}
			return domain.Actor{}, fmt.Errorf("find on-behalf-of user: %w", err)
		}
		actor.UserID = u.ID
		return actor, nil
	}

	hash := token.HashSession(bearer)
	u, err := a.sessions.FindSessionUser(ctx, hash)
	if err != nil {
		if errors.Is(err, domain.ErrNotFound) || errors.Is(err, domain.ErrUnauthenticated) {
			return domain.Actor{}, domain.ErrUnauthenticated
		}
		return domain.Actor{}, fmt.Errorf("find session: %w", err)
	}
	if obo != "" {
		return domain.Actor{}, fmt.Errorf("%w: On-Behalf-Of needs a service key", domain.ErrForbidden)
	}
	return domain.Actor{UserID: u.ID, SessionID: hash}, nil
}

// middleware authenticates each request and stores its actor in the context; a failed
// authentication is answered with its problem (401 or 403) before any handler runs.
func (a *Authenticator) middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		actor, err := a.authenticate(r)
		if err != nil {
			if errors.Is(err, domain.ErrUnauthenticated) {
				w.Header().Set("WWW-Authenticate", `Bearer realm="orgs"`)
			}
			writeProblem(w, r, err)
			return
		}
		next.ServeHTTP(w, r.WithContext(withActor(r.Context(), actor)))
	})
}

type actorKey struct{}

func withActor(ctx context.Context, a domain.Actor) context.Context {
	return context.WithValue(ctx, actorKey{}, a)
}

// actorFrom returns the request's actor; the zero Actor (anonymous) when there is none.
func actorFrom(ctx context.Context) domain.Actor {
	a, _ := ctx.Value(actorKey{}).(domain.Actor)
	return a
}

// requireActor returns the actor of an authenticated request: a user, a service, or a
// service on behalf of a user. Returns domain.ErrUnauthenticated for an anonymous one.
func requireActor(ctx context.Context) (domain.Actor, error) {
	a := actorFrom(ctx)
	if a.IsAnonymous() {
		return a, domain.ErrUnauthenticated
	}
	return a, nil
}

// requireUser returns the actor for endpoints about "me" (/v1/me, the caller's
// invitations, creating an organization): a user session, or a service key on behalf of
// a user. Returns domain.ErrUnauthenticated for an anonymous request and
// domain.ErrForbidden for a service key acting as itself, which is nobody's "me".
func requireUser(ctx context.Context) (domain.Actor, error) {
	a := actorFrom(ctx)
	switch {
	case a.IsAnonymous():
		return a, domain.ErrUnauthenticated
	case a.UserID == "":
		return a, fmt.Errorf("%w: this endpoint acts as a user: send On-Behalf-Of", domain.ErrForbidden)
	}
	return a, nil
}

// requireService returns the actor for service-only endpoints: a service key acting as
// itself. Returns domain.ErrUnauthenticated for an anonymous request and
// domain.ErrForbidden for anyone else (a user, or a service on behalf of one).
func requireService(ctx context.Context) (domain.Actor, error) {
	a := actorFrom(ctx)
	switch {
	case a.IsAnonymous():
		return a, domain.ErrUnauthenticated
	case !a.IsSuperuser():
		return a, domain.ErrForbidden
	}
	return a, nil
}
