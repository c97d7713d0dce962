package httpapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/rs/zerolog"

	"github.com/orgs-dev/orgs/internal/domain"
)

// contractCodes are the problem codes of the contract with their statuses, plus our
// additions.
var contractCodes = map[string]int{
	"malformed_request":       400,
	"unsupported_media_type":  415,
	"validation_failed":       422,
	"unauthenticated":         401,
	"forbidden":               403,
	"not_found":               404,
	"already_member":          409,
	"owner_cannot_be_removed": 409,
	"owner_must_be_admin":     409,
	"not_a_member":            409,
	"already_active":          410,
	"token_invalid":           404,
	"invitation_not_pending":  409,
	"email_taken":             409,
	"slug_taken":              409,
	"idempotency_conflict":    409,
	"rate_limited":            429,
	"payload_too_large":       413,
	"member_not_active":       409,
	"external_id_taken":       409,
}

func TestEveryContractCodeHasARow(t *testing.T) {
	t.Parallel()
	have := map[string]int{}
	for _, row := range problems {
		have[row.code] = row.status
	}
	for status, code := range statusCodes {
		if _, ok := have[code]; !ok {
			have[code] = status
		}
	}
	have["validation_failed"] = validationProblem().Status
	for code, status := range contractCodes {
		got, ok := have[code]
		if !ok {
			t.Errorf("code %s: no row, want one with status %d", code, status)
			continue
		}
		if got != status {
			t.Errorf("code %s: got status %d, want %d", code, got, status)
		}
	}
}

func TestEveryDomainSentinelHasARow(t *testing.T) {
	t.Parallel()
	sentinels := []error{
		domain.ErrNotFound, domain.ErrUnauthenticated, domain.ErrForbidden, domain.ErrAlreadyMember,
		domain.ErrOwnerCannotBeRemoved, domain.ErrOwnerMustBeAdmin, domain.ErrNotAMember,
		domain.ErrMemberNotActive, domain.ErrAlreadyActive, domain.ErrTokenInvalid,
		domain.ErrInvitationNotPending, domain.ErrEmailTaken, domain.ErrSlugTaken,
		domain.ErrExternalIDTaken, domain.ErrIdempotencyConflict, domain.ErrIdempotencyKeyUsed,
		domain.ErrRateLimited,
	}
	for _, err := range sentinels {
		wrapped := fmt.Errorf("do something with id 42: %w", err)
		p := classify(wrapped)
		if p == nil {
			t.Errorf("%v: no row", err)
			continue
		}
		if want := contractCodes[p.Code]; p.Status != want {
			t.Errorf("%v: got %d %s, want %d", err, p.Status, p.Code, want)
		}
		if strings.Contains(p.Detail, "42") {
			t.Errorf("%v: detail %q leaks the wrapping context", err, p.Detail)
		}
	}
	if p := classify(domain.ErrIdempotencyKeyUsed); p.Code != "idempotency_conflict" {
		t.Errorf("key used: got %s, want idempotency_conflict", p.Code)
	}
}

func TestProblemForUnknownError(t *testing.T) {
	t.Parallel()
	var logs strings.Builder
	ctx := zerolog.New(&logs).WithContext(context.Background())
	err := fmt.Errorf("insert user: %w", errors.New("password=hunter2 connection refused"))
	p := problemFor(ctx, err)
	if p.Status != http.StatusInternalServerError || p.Code != "internal_error" || p.Detail != "internal error" {
		t.Errorf("got %d %s %q, want 500 internal_error \"internal error\"", p.Status, p.Code, p.Detail)
	}
	if strings.Contains(fmt.Sprintf("%+v", *p), "hunter2") {
		t.Errorf("problem %+v leaks the error", *p)
	}
	if got := strings.Count(logs.String(), "\n"); got != 1 || !strings.Contains(logs.String(), "insert user: password=hunter2") {
		t.Errorf("logs %q: want one line with the full chain", logs.String())
	}
}

func TestProblemForValidationError(t *testing.T) {
	t.Parallel()
	err := fmt.Errorf("create: %w", &domain.ValidationError{Problems: []domain.Problem{
		{Location: "body.email", Message: "must be a bare address"},
		{Location: "body.name", Message: "is required"},
	}})
	p := problemFor(context.Background(), err)
	want := []FieldError{{"body.email", "must be a bare address"}, {"body.name", "is required"}}
	if p.Status != 422 || p.Code != "validation_failed" {
		t.Errorf("got %d %s, want 422 validation_failed", p.Status, p.Code)
	}
	if diff := cmp.Diff(want, p.Errors); diff != "" {
		t.Errorf("errors (-want +got):\n%s", diff)
	}
}

func TestFail(t *testing.T) {
	t.Parallel()
	if fail(context.Background(), nil) != nil {
		t.Error("fail(nil): got an error, want nil")
	}
	var p *Problem
	if err := fail(context.Background(), domain.ErrSlugTaken); !errors.As(err, &p) || p.GetStatus() != 409 {
		t.Errorf("fail(ErrSlugTaken): got %v, want a 409 problem", err)
	}
}

// TestClientGoneIsNotAnError: a client that disconnects mid-request is logged at info as
// such, not as an internal error, and its key keeps nothing.
func TestClientGoneIsNotAnError(t *testing.T) {
	t.Parallel()
	ta := newTestAPI(t, true)
	ctx, cancel := context.WithCancel(context.Background())
	r := httptest.NewRequestWithContext(ctx, "POST", "/v1/things", strings.NewReader(`{"name": "until-canceled"}`))
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("Idempotency-Key", "gone")
	rec := httptest.NewRecorder()
	done := make(chan struct{})
	go func() {
		ta.handler.ServeHTTP(rec, r)
		close(done)
	}()
	<-ta.started
	cancel()
	<-done
	if rec.Code != 499 {
		t.Errorf("status: got %d, want 499", rec.Code)
	}
	logs := ta.logs.String()
	if strings.Contains(logs, "internal error") || strings.Contains(logs, `"level":"error"`) {
		t.Errorf("logged as an error:\n%s", logs)
	}
	if !strings.Contains(logs, "request canceled by the client") {
		t.Errorf("no info line for the canceled request:\n%s", logs)
	}
	if n := ta.keys(t); n != 0 {
		t.Errorf("keys kept: %d, want 0", n)
	}
}
