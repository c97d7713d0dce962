package soak_test

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// request is one logical request of a client: the first attempt and every retry, with
// the same Idempotency-Key and body.
type request struct {
	kind         string // signup, create_org, invite, bulk, activate, read
	method, path string
	onBehalf     string // On-Behalf-Of, with the service key
	anonymous    bool   // no Authorization
	key          string // Idempotency-Key (POST only)
	body         []byte

	// What the request is about, for the checks.
	orgID    string   // the organization it writes to or reads (create_org, signup: from the answer)
	emails   []string // the new addresses it invites or signs up
	userID   string   // the user it activates (activate), or signs up (from the answer)
	invIDs   []string // the invitations the answer names
	invUsers []string // and their users
	orgName  string   // create_org, signup: the unique name

	sent, done  time.Time
	attempts    int
	noAnswer    int // attempts that ended without a response (connection lost, timeout)
	status5xx   int // attempts answered 5xx
	conflicts   int // attempts answered 409 idempotency_conflict
	deadRunning int // of those, answered while no earlier attempt could still be running
	status      int // the last answer's status; 0 if no attempt got one
	code        string
	answer      []byte
	replayed    bool
	history     []string // one line per attempt: where it went and how it ended
}

func (r *request) ok() bool { return r.status >= 200 && r.status < 300 }

func (r *request) String() string {
	answer := bytes.TrimSpace(r.answer)
	if len(answer) > 160 {
		answer = append(answer[:160:160], "…"...)
	}
	return fmt.Sprintf("%s %s %s (key %s, %d attempts over %v): %d %s", r.kind, r.method, r.path, r.key, r.attempts,
		r.done.Sub(r.sent).Round(time.Millisecond), r.status, answer)
}

// newKey returns a fresh Idempotency-Key.
func newKey() string {
	var b [12]byte
	_, _ = crand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// client sends requests to random api replicas and retries as a real client does: after a
// lost connection, a 5xx, a 429 or a 409 idempotency_conflict, with the same key and
// body, backing off exponentially (with jitter) up to retryFor after the first attempt.
type client struct {
	c        *cluster
	hc       *http.Client
	retryFor time.Duration
}

func newClient(c *cluster, retryFor time.Duration) *client {
	tr := &http.Transport{MaxIdleConnsPerHost: 64, IdleConnTimeout: 30 * time.Second}
	return &client{c: c, hc: &http.Client{Timeout: 10 * time.Second, Transport: tr}, retryFor: retryFor}
}

// attempt is where an attempt went, to tell whether it may still be running.
type attempt struct {
	role     string
	gen      int
	answered bool
	reached  bool // false when the connection could not even be made
}

// do runs r to its end (an answer that is not retried, or retryFor) and fills its outcome.
func (cl *client) do(ctx context.Context, r *request) {
	r.sent = time.Now()
	deadline := r.sent.Add(cl.retryFor)
	var tries []attempt
	backoff := 50 * time.Millisecond
	for {
		i := rand.IntN(len(cl.c.apiURLs))
		a := attempt{role: fmt.Sprintf("api%d", i)}
		a.gen = cl.c.generation(a.role)
		r.attempts++
		busy := cl.c.busy(a.role)
		busy.Add(1)
		status, code, body, replayed, err := cl.send(ctx, cl.c.apiURLs[i], r)
		busy.Add(-1)
		retryable := false
		switch {
		case err != nil:
			r.noAnswer++
			retryable = true
		case status >= 500:
			r.status5xx++
			retryable = true
		case status == http.StatusTooManyRequests:
			retryable = true
		case status == http.StatusConflict && code == "idempotency_conflict":
			r.conflicts++
			// A 409 is right only while an earlier attempt may still run: one that got no
			// answer from a process that has not been killed since.
			running := false
			for _, t := range tries {
				if !t.answered && t.reached && cl.c.generation(t.role) == t.gen {
					running = true
				}
			}
			if !running {
				r.deadRunning++
			}
			retryable = true
		}
		a.answered = err == nil
		// A refused connection reached no process. (Go's transport may have sent the
		// request on a kept-alive connection first and retried it on a new one when that
		// one broke: then the process it reached was killed, and gen tells.)
		var op *net.OpError
		a.reached = err == nil || !errors.As(err, &op) || op.Op != "dial"
		outcome := fmt.Sprint(status, " ", code)
		if err != nil {
			outcome = err.Error()
		}
		r.history = append(r.history, fmt.Sprintf("+%v %s#%d: %s", time.Since(r.sent).Round(time.Millisecond), a.role, a.gen, outcome))
		tries = append(tries, a)
		if err == nil {
			r.status, r.code, r.answer, r.replayed = status, code, body, replayed
		}
		if !retryable || ctx.Err() != nil || time.Now().Add(backoff).After(deadline) {
			r.done = time.Now()
			return
		}
		time.Sleep(backoff/2 + rand.N(backoff/2+1))
		backoff = min(2*backoff, 2*time.Second)
	}
}

func (cl *client) send(ctx context.Context, base string, r *request) (status int, code string, body []byte, replayed bool, err error) {
	var rd io.Reader
	if r.body != nil {
		rd = bytes.NewReader(r.body)
	}
	req, err := http.NewRequestWithContext(ctx, r.method, base+r.path, rd)
	if err != nil {
		return 0, "", nil, false, err
	}
	if r.body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if !r.anonymous {
		req.Header.Set("Authorization", "Bearer "+serviceKey)
	}
	if r.onBehalf != "" {
		req.Header.Set("On-Behalf-Of", r.onBehalf)
	}
	if r.key != "" {
		req.Header.Set("Idempotency-Key", r.key)
	}
	resp, err := cl.hc.Do(req)
	if err != nil {
		return 0, "", nil, false, err
	}
	defer resp.Body.Close()
	body, err = io.ReadAll(resp.Body)
	if err != nil {
		return 0, "", nil, false, err
	}
	var p struct {
		Code string `json:"code"`
	}
	if strings.Contains(resp.Header.Get("Content-Type"), "problem") {
		_ = json.Unmarshal(body, &p)
	}
	return resp.StatusCode, p.Code, body, resp.Header.Get("Idempotent-Replayed") == "true", nil
}

// post builds a POST request with a fresh key.
func post(kind, path, onBehalf string, body any) *request {
	b, err := json.Marshal(body)
	if err != nil {
		panic(err)
	}
	return &request{kind: kind, method: http.MethodPost, path: path, onBehalf: onBehalf, key: newKey(), body: b}
}

// log is every request the clients finished, safe for concurrent use.
type requestLog struct {
	mu   sync.Mutex
	reqs []*request
}

func (l *requestLog) add(r *request) {
	l.mu.Lock()
	l.reqs = append(l.reqs, r)
	l.mu.Unlock()
}

func (l *requestLog) all() []*request {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]*request(nil), l.reqs...)
}

func crandRead(b []byte) (int, error) { return crand.Read(b) }

func decodeInto(b []byte, v any) error { return json.Unmarshal(b, v) }

// decodeAnswer decodes r's answer into v or fails the test.
func decodeAnswer(t testing.TB, r *request, v any) {
	t.Helper()
	if err := json.Unmarshal(r.answer, v); err != nil {
		t.Fatalf("decode %s: %v", r, err)
	}
}
