package httpapi

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestIdempotentReplay(t *testing.T) {
	t.Parallel()
	ta := newTestAPI(t, true)
	req := request{method: "POST", path: "/v1/things", body: `{"name": "one"}`, header: map[string]string{"Idempotency-Key": "key-1"}}
	first := ta.do(t, req)
	if first.status != 201 {
		t.Fatalf("first: got %d %s, want 201", first.status, first.body)
	}
	second := ta.do(t, req)
	if second.status != 201 || string(second.body) != string(first.body) {
		t.Errorf("replay: got %d %s, want 201 %s", second.status, second.body, first.body)
	}
	if second.header.Get("Idempotent-Replayed") != "true" || second.header.Get("Content-Type") != "application/json" {
		t.Errorf("replay headers: got %v, want Idempotent-Replayed: true and application/json", second.header)
	}
	// The test handler makes no change of its own, so nothing claims the key before it
	// runs: the retry runs it again, and its answer gives way to the kept one.
	if got := ta.calls.Load(); got != 2 {
		t.Errorf("handler ran %d times, want 2", got)
	}

	conflict := ta.do(t, request{method: "POST", path: "/v1/things", body: `{"name": "two"}`, header: req.header})
	wantProblem(t, conflict, 409, "idempotency_conflict")

	// Another credential, path or key is another scope.
	other := req
	other.header = map[string]string{"Idempotency-Key": "key-1", "Authorization": "Bearer " + serviceKey}
	if res := ta.do(t, other); res.status != 201 || res.header.Get("Idempotent-Replayed") != "" {
		t.Errorf("other credential: got %d replayed=%q, want a fresh 201", res.status, res.header.Get("Idempotent-Replayed"))
	}
	if got := ta.calls.Load(); got != 4 {
		t.Errorf("handler ran %d times, want 4", got)
	}
}

func TestIdempotencyStoresClientErrorsAndReleasesServerErrors(t *testing.T) {
	t.Parallel()
	ta := newTestAPI(t, true)
	taken := request{method: "POST", path: "/v1/things", body: `{"name": "taken"}`, header: map[string]string{"Idempotency-Key": "k-409"}}
	ta.do(t, taken)
	res := ta.do(t, taken)
	wantProblem(t, res, 409, "slug_taken")
	if res.header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("4xx: got replayed=%q, want the stored answer", res.header.Get("Idempotent-Replayed"))
	}

	for _, name := range []string{"secret", "boom"} {
		req := request{method: "POST", path: "/v1/things", body: `{"name": "` + name + `"}`, header: map[string]string{"Idempotency-Key": "k-" + name}}
		before := ta.calls.Load()
		wantProblem(t, ta.do(t, req), 500, "internal_error")
		res := ta.do(t, req)
		wantProblem(t, res, 500, "internal_error")
		if res.header.Get("Idempotent-Replayed") != "" || ta.calls.Load() != before+2 {
			t.Errorf("%s: the retry was replayed or did not run (%d calls), want it run again", name, ta.calls.Load()-before)
		}
	}
}

func TestIdempotencyKeyValidation(t *testing.T) {
	t.Parallel()
	ta := newTestAPI(t, true)
	for _, key := range []string{strings.Repeat("k", 256), "has space", "tab\there", "ünïcode"} {
		res := ta.do(t, request{method: "POST", path: "/v1/things", body: `{"name": "x"}`, header: map[string]string{"Idempotency-Key": key}})
		wantProblem(t, res, 422, "validation_failed")
		if len(res.problem.Errors) != 1 || res.problem.Errors[0].Location != "header.Idempotency-Key" {
			t.Errorf("key %q: got errors %v, want one at header.Idempotency-Key", key, res.problem.Errors)
		}
	}
	res := ta.do(t, request{method: "POST", path: "/v1/things", body: `{"name": "` + strings.Repeat("a", 2<<20) + `"}`, header: map[string]string{"Idempotency-Key": "big"}})
	wantProblem(t, res, 413, "payload_too_large")
	if ta.calls.Load() != 0 {
		t.Errorf("handler ran %d times, want 0", ta.calls.Load())
	}
}

func TestIdempotencyConcurrent(t *testing.T) {
	t.Parallel()
	ta := newTestAPI(t, true)
	req := request{method: "POST", path: "/v1/things", body: `{"name": "wait"}`, header: map[string]string{"Idempotency-Key": "same"}}

	firstDone := make(chan response)
	go func() { firstDone <- ta.do(t, req) }()
	<-ta.started // the first request holds the key and is in its handler

	const n = 5
	results := make(chan response, n)
	for range n {
		go func() { results <- ta.do(t, req) }()
	}
	// The others wait for the first rather than answer 409.
	select {
	case res := <-results:
		t.Fatalf("a concurrent request answered while the first ran: %d %s", res.status, res.body)
	case <-time.After(300 * time.Millisecond):
	}
	close(ta.gate)
	first := <-firstDone
	if first.status != 201 {
		t.Fatalf("first: got %d %s, want 201", first.status, first.body)
	}
	for range n {
		res := <-results
		if res.status != 201 || string(res.body) != string(first.body) || res.header.Get("Idempotent-Replayed") != "true" {
			t.Errorf("concurrent: got %d %s, want the replay of %s", res.status, res.body, first.body)
		}
	}
	var got thing
	_ = json.Unmarshal(first.body, &got)
	if ta.calls.Load() != 1 || got.Call != 1 {
		t.Errorf("handler ran %d times, want 1", ta.calls.Load())
	}
}

func TestIdempotencyKeepsNothingWithoutAnEndpoint(t *testing.T) {
	t.Parallel()
	ta := newTestAPI(t, true)
	for _, req := range []request{
		{method: "POST", path: "/v1/nowhere", body: `{}`},
		{method: "POST", path: "/v1/things", body: `{"name": "x"}`, header: map[string]string{"Authorization": "Bearer wrong"}},
	} {
		if req.header == nil {
			req.header = map[string]string{}
		}
		for i := range 3 {
			req.header["Idempotency-Key"] = fmt.Sprintf("fresh-%d", i)
			if res := ta.do(t, req); res.status < 400 {
				t.Fatalf("%s: got %d, want an error", req.path, res.status)
			}
		}
	}
	if n := ta.keys(t); n != 0 {
		t.Errorf("keys kept: %d, want 0", n)
	}
	// A request that reaches the endpoint keeps its key, also when refused.
	ta.do(t, request{method: "POST", path: "/v1/things", body: `{"name": "invalid"}`, header: map[string]string{"Idempotency-Key": "kept"}})
	if n := ta.keys(t); n != 1 {
		t.Errorf("keys kept: %d, want 1", n)
	}
}

func TestSealerOpensWithAnyKey(t *testing.T) {
	t.Parallel()
	sealed := NewSealer("old").seal([]byte("the response"))
	if string(sealed) == "the response" {
		t.Fatal("not sealed")
	}
	if body, err := NewSealer("new", "old").open(sealed); err != nil || string(body) != "the response" {
		t.Errorf("after rotation: got %q, %v, want the response", body, err)
	}
	if _, err := NewSealer("new").open(sealed); err == nil {
		t.Error("opened without the sealing key")
	}
}
