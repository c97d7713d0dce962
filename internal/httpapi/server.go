// Package httpapi is orgs' HTTP API: huma v2 operations on a net/http ServeMux, behind
// middleware for request ids, logging, metrics, bearer authentication, idempotency keys
// and rate limits. problem.go is the only place where domain errors meet HTTP: every
// error, whether huma's, the middleware's or a handler's, leaves as an RFC 9457 problem
// with the contract's code.
package httpapi

import (
	"context"
	"net/http"
	"reflect"

	"github.com/danielgtaylor/huma/v2"
	"github.com/danielgtaylor/huma/v2/adapters/humago"
	"github.com/rs/zerolog"

	"github.com/orgs-dev/orgs/internal/postgres"
)

// Security requirements for operations: bearerAuth documents that a bearer token is
// needed (register's default); optionalAuth that the operation also serves anonymous
// callers (sign-up, sessions, activation).
var (
	bearerAuth   = []map[string][]string{{"bearer": {}}}
	optionalAuth = []map[string][]string{{}, {"bearer": {}}}
)

// newAPI returns a huma API serving its operations on mux: JSON only, unknown fields
// rejected (huma's default: additionalProperties false, here also case-sensitive),
// bodies up to 1 MiB (huma's default Operation.MaxBodyBytes), every error a Problem.
// The OpenAPI 3.1 document is at GET /openapi.json (and /openapi.yaml), a reference
// page at /docs.
func newAPI(mux *http.ServeMux, title, version string) huma.API {
	installHumaErrors()
	cfg := huma.DefaultConfig(title, version)
	// No schema-link transformer: it would add "$schema" to every response body and
	// accept it in requests.
	cfg.CreateHooks = nil
	cfg.SchemasPath = ""
	cfg.Components.SecuritySchemes = map[string]*huma.SecurityScheme{
		"bearer": {
			Type:        "http",
			Scheme:      "bearer",
			Description: "A user session token, or a service API key (which may send On-Behalf-Of: <user_id>).",
		},
	}
	api := humago.New(mux, cfg)
	api.UseMiddleware(routeLogger)
	return api
}

// routeLogger adds the matched pattern as "route" to the request's logger, for the
// handler's own log lines.
func routeLogger(ctx huma.Context, next func(huma.Context)) {
	if r, _ := humago.Unwrap(ctx); r != nil && r.Pattern != "" {
		zerolog.Ctx(ctx.Context()).UpdateContext(func(c zerolog.Context) zerolog.Context {
			return c.Str("route", r.Pattern)
		})
	}
	next(ctx)
}

// register adds an operation with orgs' conventions: bearer security unless op.Security
// is set (use optionalAuth for anonymous endpoints), the usual error responses in the
// OpenAPI document unless op.Errors is set, and h's errors turned into problems
// (problemFor): a handler simply returns a domain error.
//
//	register(api, huma.Operation{
//		OperationID: "get-organization", Method: http.MethodGet,
//		Path: "/v1/organizations/{org_id}", Tags: []string{"organizations"},
//	}, func(ctx context.Context, in *getOrganizationInput) (*organizationOutput, error) {
//		actor, err := requireActor(ctx)
//		...
//	})
func register[I, O any](api huma.API, op huma.Operation, h func(context.Context, *I) (*O, error)) {
	if op.Security == nil {
		op.Security = bearerAuth
	}
	if op.Errors == nil {
		op.Errors = []int{http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound, http.StatusUnprocessableEntity}
		if _, ok := reflect.TypeFor[I]().FieldByName("Body"); ok {
			op.Errors = append(op.Errors, http.StatusBadRequest, http.StatusConflict,
				http.StatusRequestEntityTooLarge, http.StatusUnsupportedMediaType)
		}
	}
	huma.Register(api, op, func(ctx context.Context, in *I) (*O, error) {
		postgres.ArmIdempotency(ctx) // the request reached an endpoint: its key is kept
		out, err := h(ctx, in)
		if err != nil {
			return nil, problemFor(ctx, err)
		}
		return out, nil
	})
}
