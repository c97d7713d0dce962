package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/danielgtaylor/huma/v2"
	"github.com/rs/zerolog"

	"github.com/orgs-dev/orgs/internal/domain"
)

// problemTypeBase prefixes a problem's code to make its type URI: stable, and a page that
// explains every code.
const problemTypeBase = "https://github.com/orgs-dev/orgs/blob/main/docs/problems.md#"

// Problem is an RFC 9457 problem details object (application/problem+json) with orgs'
// stable snake_case code and, for field errors, their locations. It implements
// huma.StatusError, so a handler may return one, and every error huma itself produces is
// one (see newHumaError).
type Problem struct {
	Type     string       `json:"type" doc:"URI identifying the problem type"`
	Title    string       `json:"title" doc:"Short summary of the problem type"`
	Status   int          `json:"status" doc:"HTTP status code"`
	Detail   string       `json:"detail" doc:"Explanation of this occurrence"`
	Code     string       `json:"code" doc:"Stable snake_case problem code"`
	Instance string       `json:"instance,omitempty" doc:"Path of the request"`
	Errors   []FieldError `json:"errors,omitempty" doc:"Field errors"`

	headers http.Header // sent with the problem, e.g. Retry-After
}

// FieldError is one field's problem: Location is like "body.email", "query.limit" or
// "header.Idempotency-Key".
type FieldError struct {
	Location string `json:"location"`
	Message  string `json:"message"`
}

func (p *Problem) Error() string { return p.Code + ": " + p.Detail }

// GetStatus implements huma.StatusError.
func (p *Problem) GetStatus() int { return p.Status }

// ContentType implements huma.ContentTypeFilter: problems are application/problem+json.
func (p *Problem) ContentType(string) string { return "application/problem+json" }

// GetHeaders implements huma.HeadersError.
func (p *Problem) GetHeaders() http.Header {
	if p.headers == nil {
		p.headers = http.Header{}
	}
	return p.headers
}

// problems maps the domain's errors to statuses and contract codes; the first row whose
// error matches (errors.Is) wins.
var problems = []struct {
	err    error
	status int
	code   string
}{
	{domain.ErrNotFound, http.StatusNotFound, "not_found"},
	{domain.ErrUnauthenticated, http.StatusUnauthorized, "unauthenticated"},
	{domain.ErrForbidden, http.StatusForbidden, "forbidden"},
	{domain.ErrAlreadyMember, http.StatusConflict, "already_member"},
	{domain.ErrOwnerCannotBeRemoved, http.StatusConflict, "owner_cannot_be_removed"},
	{domain.ErrOwnerMustBeAdmin, http.StatusConflict, "owner_must_be_admin"},
	{domain.ErrNotAMember, http.StatusConflict, "not_a_member"},
	{domain.ErrMemberNotActive, http.StatusConflict, "member_not_active"},
	{domain.ErrAlreadyActive, http.StatusGone, "already_active"},
	{domain.ErrTokenInvalid, http.StatusNotFound, "token_invalid"},
	{domain.ErrInvitationNotPending, http.StatusConflict, "invitation_not_pending"},
	{domain.ErrEmailTaken, http.StatusConflict, "email_taken"},
	{domain.ErrSlugTaken, http.StatusConflict, "slug_taken"},
	{domain.ErrExternalIDTaken, http.StatusConflict, "external_id_taken"},
	{domain.ErrIdempotencyConflict, http.StatusConflict, "idempotency_conflict"},
	{domain.ErrIdempotencyKeyUsed, http.StatusConflict, "idempotency_conflict"},
	{domain.ErrRateLimited, http.StatusTooManyRequests, "rate_limited"},
}

// statusCodes names the problems that have no domain error: those huma, the ServeMux and
// the middleware produce. Statuses not listed get a code made from their status text.
var statusCodes = map[int]string{
	http.StatusBadRequest:            "malformed_request",
	http.StatusUnauthorized:          "unauthenticated",
	http.StatusForbidden:             "forbidden",
	http.StatusNotFound:              "not_found",
	http.StatusMethodNotAllowed:      "method_not_allowed",
	http.StatusNotAcceptable:         "not_acceptable",
	http.StatusRequestTimeout:        "request_timeout",
	http.StatusConflict:              "conflict",
	http.StatusRequestEntityTooLarge: "payload_too_large",
	http.StatusUnsupportedMediaType:  "unsupported_media_type",
	http.StatusUnprocessableEntity:   "validation_failed",
	http.StatusTooManyRequests:       "rate_limited",
	statusClientClosedRequest:        "client_closed_request",
	http.StatusInternalServerError:   "internal_error",
	http.StatusServiceUnavailable:    "unavailable",
}

// newProblem returns a problem with status, code and detail; the type URI and title follow.
func newProblem(status int, code, detail string) *Problem {
	if code == "" {
		code = codeForStatus(status)
	}
	return &Problem{
		Type:   problemTypeBase + code,
		Title:  http.StatusText(status),
		Status: status,
		Detail: detail,
		Code:   code,
	}
}

func codeForStatus(status int) string {
	if c, ok := statusCodes[status]; ok {
		return c
	}
	if t := http.StatusText(status); t != "" {
		return strings.ReplaceAll(strings.ToLower(t), " ", "_")
	}
	return "status_" + strconv.Itoa(status)
}

// validationProblem is a 422 validation_failed listing field errors.
func validationProblem(errs ...FieldError) *Problem {
	p := newProblem(http.StatusUnprocessableEntity, "validation_failed", "the request has invalid fields")
	p.Errors = errs
	return p
}

// problemFor turns err into the problem the client sees: a *Problem as is, a domain
// sentinel (matched with errors.Is) with its row's status and code, a
// *domain.ValidationError as 422 validation_failed with its field problems, an
// over-long body as 413 payload_too_large. Anything else is a 500 that says only
// "internal error"; it is logged here, once, with the full chain, through the request's
// logger.
func problemFor(ctx context.Context, err error) *Problem {
	p := classify(err)
	switch {
	case p != nil:
	case ctx.Err() != nil && errors.Is(err, ctx.Err()):
		// The client went away (or the server is stopping) mid-request: not our
		// error, and nobody reads the answer. 499 as nginx logs it; never kept for
		// an idempotent replay.
		zerolog.Ctx(ctx).Info().Err(err).Msg("request canceled by the client")
		p = newProblem(statusClientClosedRequest, "", "the client closed the request")
		p.Title = "Client Closed Request"
	default:
		zerolog.Ctx(ctx).Error().Err(err).Msg("internal error")
		p = newProblem(http.StatusInternalServerError, "internal_error", "internal error")
	}
	if p.Instance == "" {
		if info := infoFrom(ctx); info != nil {
			p.Instance = info.path
		}
	}
	return p
}

// statusClientClosedRequest answers a request whose client went away (nginx's 499).
const statusClientClosedRequest = 499

// classify is problemFor without the 500 fallback: nil for an unknown error.
func classify(err error) *Problem {
	var p *Problem
	if errors.As(err, &p) {
		return p
	}
	var ve *domain.ValidationError
	if errors.As(err, &ve) {
		fe := make([]FieldError, len(ve.Problems))
		for i, vp := range ve.Problems {
			fe[i] = FieldError{Location: vp.Location, Message: vp.Message}
		}
		return validationProblem(fe...)
	}
	var rl *domain.RateLimitError
	if errors.As(err, &rl) {
		// A mail limit: the wait goes in Retry-After and, for a bulk item (no header of
		// its own), in the detail.
		secs := strconv.Itoa(max(1, int(math.Ceil(rl.RetryAfter.Seconds()))))
		p := newProblem(http.StatusTooManyRequests, "rate_limited", rl.Error()+"; retry after "+secs+" seconds")
		p.GetHeaders().Set("Retry-After", secs)
		return p
	}
	for _, row := range problems {
		if errors.Is(err, row.err) {
			// The sentinel's own text is the detail: wrapped context (ids, SQL) stays
			// out of the response.
			return newProblem(row.status, row.code, row.err.Error())
		}
	}
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return tooLarge(mbe.Limit)
	}
	return nil
}

func tooLarge(limit int64) *Problem {
	return newProblem(http.StatusRequestEntityTooLarge, "payload_too_large",
		"the request body is larger than "+strconv.FormatInt(limit, 10)+" bytes")
}

// fail returns err as the problem to send, for a handler that wants its error's status
// explicitly: return nil, fail(ctx, err). Handlers registered with register may also
// just return the domain error: register and huma's error hook convert it the same way.
func fail(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	return problemFor(ctx, err)
}

// writeProblem writes err as a problem, for code outside huma (middleware, plain
// net/http handlers).
func writeProblem(w http.ResponseWriter, r *http.Request, err error) {
	writeProblemValue(w, r, problemFor(r.Context(), err))
}

// writeProblemValue writes p with its headers.
func writeProblemValue(w http.ResponseWriter, r *http.Request, p *Problem) {
	if p.Instance == "" && r != nil {
		p.Instance = r.URL.Path
	}
	h := w.Header()
	for k, vs := range p.headers {
		for _, v := range vs {
			h.Add(k, v)
		}
	}
	h.Set("Content-Type", "application/problem+json")
	h.Del("Content-Length")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(p.Status)
	_ = json.NewEncoder(w).Encode(p)
}

// installHumaErrors makes huma build every error it produces (bad JSON, unknown content
// type, body too large, validation, a handler's error) as a *Problem. huma only offers
// this through package variables, so it is set once per process; the replacement is a
// pure function of its arguments and the request's context, so every API shares it.
var installHumaErrors = sync.OnceFunc(func() {
	huma.NewError = func(status int, msg string, errs ...error) huma.StatusError {
		return newHumaError(context.Background(), "", status, msg, errs...)
	}
	huma.NewErrorWithContext = func(hctx huma.Context, status int, msg string, errs ...error) huma.StatusError {
		ctx, path := context.Background(), ""
		if hctx != nil {
			ctx = hctx.Context()
			u := hctx.URL()
			path = u.Path
		}
		return newHumaError(ctx, path, status, msg, errs...)
	}
	// Field names are case-sensitive: {"EMAIL": ...} is an unknown field, not email.
	huma.ValidateStrictCasing = true
})

// requiredPrefix and requiredSuffix frame huma's message for a missing property, which
// it reports at the enclosing object's location.
const (
	requiredPrefix = "expected required property "
	requiredSuffix = " to be present"
)

// newHumaError converts huma's (status, message, errors) into our problem.
func newHumaError(ctx context.Context, path string, status int, msg string, errs ...error) *Problem {
	// A handler's error (or a failed body read) arrives as a 500 with the error itself;
	// route it through the domain table.
	if status == http.StatusInternalServerError && len(errs) == 1 {
		if _, ok := errs[0].(huma.ErrorDetailer); !ok {
			p := problemFor(ctx, errs[0])
			if p.Instance == "" {
				p.Instance = path
			}
			return p
		}
	}
	if status == 0 { // huma's example error for the OpenAPI schema
		return &Problem{}
	}

	var fields []FieldError
	for _, err := range errs {
		if err == nil {
			continue
		}
		var d huma.ErrorDetailer
		if !errors.As(err, &d) {
			fields = append(fields, FieldError{Message: err.Error()})
			continue
		}
		ed := d.ErrorDetail()
		fe := FieldError{Location: ed.Location, Message: ed.Message}
		if name, ok := strings.CutPrefix(fe.Message, requiredPrefix); ok {
			if name, ok = strings.CutSuffix(name, requiredSuffix); ok {
				fe.Location = joinLocation(fe.Location, name)
				fe.Message = "is required"
			}
		}
		fields = append(fields, fe)
	}

	var p *Problem
	switch status {
	case http.StatusBadRequest:
		p = newProblem(status, "malformed_request", "the request body is not valid JSON")
		if msg != "validation failed" {
			p.Detail = msg
		}
		p.Errors = fields
	case http.StatusUnsupportedMediaType:
		p = newProblem(status, "unsupported_media_type", "the request body must be application/json")
	case http.StatusRequestEntityTooLarge:
		p = tooLarge(maxBodyBytes)
	case http.StatusUnprocessableEntity:
		if allPathErrors(fields) {
			// A path id that is not a UUID names nothing that can exist.
			p = newProblem(http.StatusNotFound, "not_found", domain.ErrNotFound.Error())
			break
		}
		p = validationProblem(fields...)
	default:
		p = newProblem(status, "", msg)
		p.Errors = fields
		if status >= 500 {
			zerolog.Ctx(ctx).Error().Int("status", status).Str("detail", msg).Errs("errors", errs).Msg("internal error")
			p.Detail = "internal error"
			p.Errors = nil
		}
	}
	p.Instance = path
	return p
}

func joinLocation(loc, name string) string {
	if loc == "" {
		return name
	}
	return loc + "." + name
}

func allPathErrors(fields []FieldError) bool {
	if len(fields) == 0 {
		return false
	}
	for _, f := range fields {
		if !strings.HasPrefix(f.Location, "path.") {
			return false
		}
	}
	return true
}
