package httpapi

import (
	"encoding/json"
	"strings"
	"sync"
	"testing"
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
	if got := ta.calls.Load(); got != 1 {
		t.Errorf("handler ran %d times, want 1", got)
	}

	conflict := ta.do(t, request{method: "POST", path: "/v1/things", body: `{"name": "two"}`, header: req.header})
	wantProblem(t, conflict, 409, "idempotency_conflict")

	// Another credential, path or key is another scope.
	other := req
	other.header = map[string]string{"Idempotency-Key": "key-1", "Authorization": "Bearer " + serviceKey}
	if res := ta.do(t, other); res.status != 201 || res.header.Get("Idempotent-Replayed") != "" {
		t.Errorf("other credential: got %d replayed=%q, want a fresh 201", res.status, res.header.Get("Idempotent-Replayed"))
	}
	if got := ta.calls.Load(); got != 2 {
		t.Errorf("handler ran %d times, want 2", got)
	}
}

func TestIdempotencyStoresClientErrorsAndReleasesServerErrors(t *testing.T) {
	t.Parallel()
	ta := newTestAPI(t, true)
	taken := request{method: "POST", path: "/v1/things", body: `{"name": "taken"}`, header: map[string]string{"Idempotency-Key": "k-409"}}
	ta.do(t, taken)
	res := ta.do(t, taken)
	wantProblem(t, res, 409, "slug_taken")
	if res.header.Get("Idempotent-Replayed") != "true" || ta.calls.Load() != 1 {
		t.Errorf("4xx: got replayed=%q after %d calls, want the stored answer after 1", res.header.Get("Idempotent-Replayed"), ta.calls.Load())
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
	var wg sync.WaitGroup
	results := make([]response, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = ta.do(t, req)
		}()
	}
	wg.Wait()
	for _, res := range results {
		wantProblem(t, res, 409, "idempotency_conflict")
		if !strings.Contains(res.problem.Detail, "in progress") {
			t.Errorf("detail %q: want it to say the request is in progress", res.problem.Detail)
		}
	}
	close(ta.gate)
	first := <-firstDone
	if first.status != 201 {
		t.Fatalf("first: got %d %s, want 201", first.status, first.body)
	}
	after := ta.do(t, req)
	if after.status != 201 || string(after.body) != string(first.body) {
		t.Errorf("after: got %d %s, want the replay of %s", after.status, after.body, first.body)
	}
	var got thing
	_ = json.Unmarshal(after.body, &got)
	if ta.calls.Load() != 1 || got.Call != 1 {
		t.Errorf("handler ran %d times, want 1", ta.calls.Load())
	}
}
