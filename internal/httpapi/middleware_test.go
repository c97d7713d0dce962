package httpapi

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestHumaErrorsAreProblems(t *testing.T) {
	t.Parallel()
	ta := newTestAPI(t, false)
	tests := []struct {
		name        string
		req         request
		status      int
		code        string
		contentType string // overrides application/json
		errors      []FieldError
	}{
		{name: "malformed JSON", req: request{method: "POST", path: "/v1/things", body: `{"name": "x"`}, status: 400, code: "malformed_request"},
		{name: "not an object", req: request{method: "POST", path: "/v1/things", body: `[1,2]`}, status: 422, code: "validation_failed"},
		{name: "unknown field", req: request{method: "POST", path: "/v1/things", body: `{"name": "x", "admin": true}`}, status: 422, code: "validation_failed",
			errors: []FieldError{{"body.admin", "unexpected property"}}},
		{name: "field in other case", req: request{method: "POST", path: "/v1/things", body: `{"NAME": "x"}`}, status: 422, code: "validation_failed",
			errors: []FieldError{{"body.name", "is required"}, {"body.NAME", "unexpected property"}}},
		{name: "missing field", req: request{method: "POST", path: "/v1/things", body: `{"email": "a@example.com"}`}, status: 422, code: "validation_failed",
			errors: []FieldError{{"body.name", "is required"}}},
		{name: "wrong type", req: request{method: "POST", path: "/v1/things", body: `{"name": 42}`}, status: 422, code: "validation_failed",
			errors: []FieldError{{"body.name", "expected string"}}},
		{name: "empty body", req: request{method: "POST", path: "/v1/things"}, status: 400, code: "malformed_request"},
		{name: "text/plain", req: request{method: "POST", path: "/v1/things", body: `{"name": "x"}`}, contentType: "text/plain", status: 415, code: "unsupported_media_type"},
		{name: "2 MiB body", req: request{method: "POST", path: "/v1/things", body: `{"name": "` + strings.Repeat("a", 2<<20) + `"}`}, status: 413, code: "payload_too_large"},
		{name: "domain error", req: request{method: "POST", path: "/v1/things", body: `{"name": "taken"}`}, status: 409, code: "slug_taken"},
		{name: "domain validation error", req: request{method: "POST", path: "/v1/things", body: `{"name": "invalid"}`}, status: 422, code: "validation_failed",
			errors: []FieldError{{"body.name", "is odd"}}},
		{name: "unknown error", req: request{method: "POST", path: "/v1/things", body: `{"name": "secret"}`}, status: 500, code: "internal_error"},
		{name: "panic", req: request{method: "POST", path: "/v1/things", body: `{"name": "boom"}`}, status: 500, code: "internal_error"},
		{name: "path id not a UUID", req: request{method: "GET", path: "/v1/things/42"}, status: 404, code: "not_found"},
		{name: "unknown id", req: request{method: "GET", path: "/v1/things/" + unknownUser}, status: 404, code: "not_found"},
		{name: "no route", req: request{method: "GET", path: "/v2/nothing"}, status: 404, code: "not_found"},
		{name: "wrong method", req: request{method: "DELETE", path: "/v1/things"}, status: 405, code: "method_not_allowed"},
		{name: "limit too large", req: request{method: "GET", path: "/v1/things?limit=201"}, status: 422, code: "validation_failed"},
		{name: "limit zero", req: request{method: "GET", path: "/v1/things?limit=0"}, status: 422, code: "validation_failed"},
		{name: "limit not a number", req: request{method: "GET", path: "/v1/things?limit=ten"}, status: 422, code: "validation_failed"},
		{name: "bad cursor", req: request{method: "GET", path: "/v1/things?cursor=bm90IGEgY3Vyc29y"}, status: 422, code: "validation_failed",
			errors: []FieldError{{"query.cursor", "is not a cursor from this API"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if tt.contentType != "" {
				tt.req.header = map[string]string{"Content-Type": tt.contentType}
			}
			res := ta.do(t, tt.req)
			wantProblem(t, res, tt.status, tt.code)
			if got, want := res.problem.Instance, strings.Split(tt.req.path, "?")[0]; got != want {
				t.Errorf("instance: got %q, want %q", got, want)
			}
			if tt.errors != nil {
				if diff := cmp.Diff(tt.errors, res.problem.Errors); diff != "" {
					t.Errorf("errors (-want +got):\n%s", diff)
				}
			}
			if tt.status == 500 && (strings.Contains(string(res.body), "hunter2") || res.problem.Detail != "internal error") {
				t.Errorf("500 body %s: want only \"internal error\"", res.body)
			}
			if tt.status == 405 && res.header.Get("Allow") == "" {
				t.Error("405 without an Allow header")
			}
		})
	}
}

func TestUnknownErrorLoggedOnce(t *testing.T) {
	t.Parallel()
	ta := newTestAPI(t, false)
	ta.do(t, request{method: "POST", path: "/v1/things", body: `{"name": "secret"}`})
	var errorLines []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(ta.logs.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if m["level"] == "error" {
			errorLines = append(errorLines, m)
		}
	}
	if len(errorLines) != 1 {
		t.Fatalf("got %d error lines, want 1:\n%s", len(errorLines), ta.logs.String())
	}
	l := errorLines[0]
	if l["error"] != "connect: password=hunter2 refused" || l["route"] != "POST /v1/things" || l["request_id"] == nil {
		t.Errorf("error line %v: want the full chain, the route and the request id", l)
	}
}

func TestSuccessAndList(t *testing.T) {
	t.Parallel()
	ta := newTestAPI(t, false)
	res := ta.do(t, request{method: "POST", path: "/v1/things", body: `{"name": "Ærø", "email": "a@example.com"}`})
	if res.status != 201 || res.header.Get("Content-Type") != "application/json" {
		t.Fatalf("got %d %s %s, want 201 application/json", res.status, res.header.Get("Content-Type"), res.body)
	}
	if strings.Contains(string(res.body), "$schema") {
		t.Errorf("body %s: want no $schema", res.body)
	}

	res = ta.do(t, request{method: "GET", path: "/v1/things"})
	var page struct {
		Items      []thing `json:"items"`
		NextCursor *string `json:"next_cursor"`
	}
	if err := json.Unmarshal(res.body, &page); err != nil || res.status != 200 {
		t.Fatalf("list: got %d %s (%v), want 200", res.status, res.body, err)
	}
	if page.NextCursor == nil || len(page.Items) != 1 || page.Items[0].Name != "limit=50 after=" {
		t.Fatalf("list: got %s, want one item with the default limit and a next cursor", res.body)
	}
	res = ta.do(t, request{method: "GET", path: "/v1/things?limit=200&cursor=" + *page.NextCursor})
	if !strings.Contains(string(res.body), "limit=200 after="+aliceID) {
		t.Errorf("second page: got %s, want limit=200 after=%s", res.body, aliceID)
	}
}

func TestOpenAPI(t *testing.T) {
	t.Parallel()
	ta := newTestAPI(t, false)
	res := ta.do(t, request{method: "GET", path: "/openapi.json"})
	var doc struct {
		OpenAPI    string `json:"openapi"`
		Components struct {
			SecuritySchemes map[string]any `json:"securitySchemes"`
			Schemas         map[string]any `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(res.body, &doc); err != nil || res.status != 200 {
		t.Fatalf("got %d (%v), want 200 and a JSON document", res.status, err)
	}
	if doc.OpenAPI != "3.1.0" || doc.Components.SecuritySchemes["bearer"] == nil || doc.Components.Schemas["Problem"] == nil {
		t.Errorf("got openapi %q, schemes %v, want 3.1.0 with bearer and the Problem schema", doc.OpenAPI, doc.Components.SecuritySchemes)
	}
}

func TestRequestID(t *testing.T) {
	t.Parallel()
	ta := newTestAPI(t, false)
	res := ta.do(t, request{method: "GET", path: "/healthz", header: map[string]string{"X-Request-Id": "abc-123"}})
	if got := res.header.Get("X-Request-Id"); got != "abc-123" {
		t.Errorf("sane incoming id: got %q, want abc-123", got)
	}
	res = ta.do(t, request{method: "GET", path: "/healthz", header: map[string]string{"X-Request-Id": "bad id\x01"}})
	if got := res.header.Get("X-Request-Id"); got == "" || strings.Contains(got, " ") {
		t.Errorf("bad incoming id: got %q, want a fresh one", got)
	}
	if !strings.Contains(ta.logs.String(), `"request_id":"abc-123"`) {
		t.Errorf("access log lacks the request id:\n%s", ta.logs.String())
	}
}

func TestMetricsRouteIsThePattern(t *testing.T) {
	t.Parallel()
	ta := newTestAPI(t, false)
	ta.do(t, request{method: "GET", path: "/v1/things/" + aliceID})
	ta.do(t, request{method: "GET", path: "/v1/things/" + unknownUser})
	ta.do(t, request{method: "GET", path: "/nothing/here"})
	ta.do(t, request{method: "GET", path: "/healthz"})
	for _, tt := range []struct {
		route, code string
		want        float64
	}{
		{"GET /v1/things/{id}", "200", 1},
		{"GET /v1/things/{id}", "404", 1},
		{"unmatched", "404", 1},
		{"GET /healthz", "200", 1},
	} {
		if got := testutil.ToFloat64(ta.metrics.Requests.WithLabelValues("GET", tt.route, tt.code)); got != tt.want {
			t.Errorf("requests{route=%q,code=%s}: got %v, want %v", tt.route, tt.code, got, tt.want)
		}
	}
	if n := testutil.CollectAndCount(ta.metrics.Requests); n != 4 {
		t.Errorf("got %d series, want 4 (no raw paths)", n)
	}
	if n := testutil.CollectAndCount(ta.metrics.Duration); n != 3 {
		t.Errorf("got %d duration series, want 3", n)
	}
}
