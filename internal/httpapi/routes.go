package httpapi

import (
	"context"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/orgs-dev/orgs/internal/password"
	"github.com/orgs-dev/orgs/internal/telemetry"
	"github.com/orgs-dev/orgs/internal/token"
)

// Config is what the API needs besides its store.
type Config struct {
	Version string
	// APIKeys maps service API key secrets to their names.
	APIKeys map[string]string
	// PublicURL is the base of links; ActivationURL the activation link template.
	PublicURL     string
	ActivationURL string
	// AcceptURL is the invitation link template for active users ({invitation_id}).
	AcceptURL string
	SiteName  string
	// EventSource is the CloudEvents source of replayed events (the relay's).
	EventSource string
	// ActivationSuccessURL is where the activation page sends people afterwards ("" shows
	// a success page).
	ActivationSuccessURL string
	// InvitationTTL is the validity of links returned with send_email: false.
	InvitationTTL time.Duration
	// Sealer encrypts the responses kept for Idempotency-Key replays (NewSealer); nil
	// keeps them in the clear.
	Sealer *Sealer
	// Ready reports whether Postgres and NATS are reachable (GET /readyz); a
	// telemetry.DependencyError names the one that is down.
	Ready func(context.Context) error
	// RiverUI, if set, is mounted under /riverui behind a service key or HTTP basic auth
	// (RiverUIUser and RiverUIPassword).
	RiverUI                      http.Handler
	RiverUIUser, RiverUIPassword string
	// AnonymousRate and AnonymousBurst limit anonymous POSTs (sign-up, sessions,
	// activation) per client IP; zero disables the limit.
	AnonymousRate  float64
	AnonymousBurst int
	// TrustedProxies are the reverse proxies whose X-Forwarded-For or Forwarded names the
	// client (rate limits, access log); other peers are the client themselves.
	TrustedProxies []netip.Prefix
	// Passwords bounds concurrent password hashes and checks (sessions, activation, the
	// activation page); nil: password.NewLimiter(0, DefaultPasswordWait).
	Passwords *password.Limiter
}

// DefaultPasswordWait is how long a password check waits for a free slot of the
// Config.Passwords limiter before it is answered 429 rate_limited.
const DefaultPasswordWait = 2 * time.Second

// NewServer returns the orgs API: every route of the contract, the built-in pages,
// /openapi.json, /healthz, /readyz and (if configured) /riverui.
func NewServer(logger zerolog.Logger, reg prometheus.Registerer, store Store, signer tokenSigner, cfg Config) http.Handler {
	if cfg.Passwords == nil {
		cfg.Passwords = password.NewLimiter(0, DefaultPasswordWait)
	}
	mux := http.NewServeMux()
	api := newAPI(mux, "orgs", cfg.Version)
	h := &handlers{store: store, signer: signer, cfg: cfg}
	var (
		anon      huma.Middlewares
		limitPage = func(h http.Handler) http.Handler { return h }
	)
	if cfg.AnonymousRate > 0 {
		l := newRateLimiter(cfg.AnonymousRate, cfg.AnonymousBurst)
		anon = huma.Middlewares{l.operation}
		limitPage = l.limit
	}

	// Sessions and the caller.
	register(api, op("create-session", http.MethodPost, "/v1/sessions", http.StatusCreated, "sessions", optionalAuth, anon), h.createSession)
	register(api, op("delete-session", http.MethodDelete, "/v1/sessions/current", http.StatusNoContent, "sessions", nil, nil), h.deleteSession)
	register(api, op("get-me", http.MethodGet, "/v1/me", 0, "users", nil, nil), h.getMe)
	register(api, op("list-my-invitations", http.MethodGet, "/v1/me/invitations", 0, "invitations", nil, nil), h.listMyInvitations)

	// Users of the customer's own user system.
	register(api, op("upsert-user", http.MethodPost, "/v1/users", http.StatusCreated, "users", nil, nil), h.upsertUser)
	register(api, op("get-user", http.MethodGet, "/v1/users/{user_id}", 0, "users", nil, nil), h.getUser)
	register(api, op("list-users", http.MethodGet, "/v1/users", 0, "users", nil, nil), h.listUsers)

	// Sign-up and activation.
	register(api, op("signup", http.MethodPost, "/v1/signup", http.StatusAccepted, "signup", optionalAuth, anon), h.signup)
	register(api, op("resend-activation", http.MethodPost, "/v1/activation/resend", http.StatusAccepted, "signup", optionalAuth, anon), h.resendActivation)
	register(api, op("get-activation", http.MethodGet, "/v1/activation/{user_id}/{token}", 0, "signup", optionalAuth, nil), h.getActivation)
	register(api, op("activate", http.MethodPost, "/v1/activation/{user_id}/{token}", 0, "signup", optionalAuth, anon), h.activate)
	register(api, op("decline-activation", http.MethodPost, "/v1/activation/{user_id}/{token}/decline", 0, "signup", optionalAuth, anon), h.declineActivation)

	// Organizations.
	register(api, op("list-organizations", http.MethodGet, "/v1/organizations", 0, "organizations", nil, nil), h.listOrganizations)
	register(api, op("create-organization", http.MethodPost, "/v1/organizations", http.StatusCreated, "organizations", nil, nil), h.createOrganization)
	register(api, op("get-organization", http.MethodGet, "/v1/organizations/{org_id}", 0, "organizations", nil, nil), h.getOrganization)
	register(api, op("update-organization", http.MethodPatch, "/v1/organizations/{org_id}", 0, "organizations", nil, nil), h.updateOrganization)
	register(api, op("delete-organization", http.MethodDelete, "/v1/organizations/{org_id}", http.StatusNoContent, "organizations", nil, nil), h.deleteOrganization)
	register(api, op("transfer-ownership", http.MethodPut, "/v1/organizations/{org_id}/owner", 0, "organizations", nil, nil), h.transferOwnership)

	// Members.
	register(api, op("list-members", http.MethodGet, "/v1/organizations/{org_id}/members", 0, "members", nil, nil), h.listMembers)
	register(api, op("add-member", http.MethodPost, "/v1/organizations/{org_id}/members", http.StatusCreated, "members", nil, nil), h.addMember)
	register(api, op("add-members", http.MethodPost, "/v1/organizations/{org_id}/members:bulk", 0, "members", nil, nil), h.addMembers)
	register(api, op("get-member", http.MethodGet, "/v1/organizations/{org_id}/members/{user_id}", 0, "members", nil, nil), h.getMember)
	register(api, op("update-member", http.MethodPatch, "/v1/organizations/{org_id}/members/{user_id}", 0, "members", nil, nil), h.updateMember)
	register(api, op("remove-member", http.MethodDelete, "/v1/organizations/{org_id}/members/{user_id}", http.StatusNoContent, "members", nil, nil), h.removeMember)
	register(api, op("remind-member", http.MethodPost, "/v1/organizations/{org_id}/members/{user_id}/reminders", http.StatusAccepted, "invitations", nil, nil), h.remindMember)

	// Invitations.
	register(api, op("list-invitations", http.MethodGet, "/v1/organizations/{org_id}/invitations", 0, "invitations", nil, nil), h.listInvitations)
	register(api, op("revoke-invitation", http.MethodDelete, "/v1/organizations/{org_id}/invitations/{invitation_id}", http.StatusNoContent, "invitations", nil, nil), h.revokeInvitation)
	register(api, op("accept-invitation", http.MethodPost, "/v1/invitations/{invitation_id}/accept", 0, "invitations", nil, nil), h.acceptInvitation)
	register(api, op("decline-invitation", http.MethodPost, "/v1/invitations/{invitation_id}/decline", 0, "invitations", nil, nil), h.declineInvitation)

	// Event replay.
	register(api, op("list-events", http.MethodGet, "/v1/events", 0, "events", nil, nil), h.listEvents)

	// Built-in pages for people who click the links in the emails.
	pages := newPages(store, signer, cfg)
	mux.Handle("GET /activate/{user_id}/{token}", pages.activateForm())
	mux.Handle("POST /activate/{user_id}/{token}", limitPage(pages.activateSubmit()))
	mux.Handle("GET /signup", pages.signupForm())
	mux.Handle("POST /signup", limitPage(pages.signupSubmit()))
	mux.Handle("GET /{$}", http.RedirectHandler("/signup", http.StatusFound))

	// Anyone can reach this port: /readyz names the dependency that is down, the log has
	// the detail.
	ops := telemetry.OpsHandler(nil, telemetry.PublicReady(cfg.Ready, logger))
	mux.Handle("GET /healthz", ops)
	mux.Handle("GET /readyz", ops)

	var metrics *telemetry.HTTPMetrics
	if reg != nil {
		metrics = telemetry.NewHTTPMetrics(reg)
	}
	handler := withClientIP(cfg.TrustedProxies, middleware(mux, logger, metrics, NewAuthenticator(cfg.APIKeys, store), store, cfg.Sealer))
	if cfg.RiverUI == nil {
		return handler
	}
	// The River UI has its own authentication (basic auth or a service key), outside the
	// API's bearer middleware, which would refuse a Basic header.
	root := http.NewServeMux()
	root.Handle("/riverui/", operatorOnly(cfg, cfg.RiverUI))
	root.Handle("/", handler)
	return root
}

// op builds an operation; status 0 means huma's default (200). The headers that the
// middleware reads (On-Behalf-Of, and Idempotency-Key on POSTs) are documented on it.
func op(id, method, path string, status int, tag string, security []map[string][]string, mw huma.Middlewares) huma.Operation {
	params := []*huma.Param{{
		Name: "On-Behalf-Of", In: "header",
		Description: "With a service key: act as this user (a user id), with exactly that user's rights.",
		Schema:      &huma.Schema{Type: huma.TypeString, Format: "uuid"},
	}}
	if method == http.MethodPost {
		params = append(params, &huma.Param{
			Name: "Idempotency-Key", In: "header",
			Description: "A retry with the same key and body returns the first response (for 24 h); the same key with another body is 409 idempotency_conflict.",
			Schema:      &huma.Schema{Type: huma.TypeString, MinLength: ptr(1), MaxLength: ptr(255)},
		})
	}
	return huma.Operation{
		OperationID: id, Method: method, Path: path, DefaultStatus: status,
		Tags: []string{tag}, Security: security, Middlewares: mw, Parameters: params,
	}
}

func ptr[T any](v T) *T { return &v }

// operatorOnly lets through a request with a service key as bearer, or with the River
// UI's HTTP basic auth credentials.
func operatorOnly(cfg Config, next http.Handler) http.Handler {
	auth := NewAuthenticator(cfg.APIKeys, nil)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if scheme, bearer, ok := strings.Cut(r.Header.Get("Authorization"), " "); ok && strings.EqualFold(scheme, "Bearer") {
			if auth.serviceName(strings.TrimSpace(bearer)) != "" {
				next.ServeHTTP(w, r)
				return
			}
		}
		// Basic auth only with a password: an empty one would let anyone in who knows the
		// user name (config refuses it too).
		if cfg.RiverUIUser != "" && cfg.RiverUIPassword != "" {
			u, p, ok := r.BasicAuth()
			if ok && token.EqualConstantTime(u, cfg.RiverUIUser) && token.EqualConstantTime(p, cfg.RiverUIPassword) {
				next.ServeHTTP(w, r)
				return
			}
		}
		w.Header().Set("WWW-Authenticate", `Basic realm="orgs operators"`)
		http.Error(w, "a service key or the operator's credentials are required", http.StatusUnauthorized)
	})
}
