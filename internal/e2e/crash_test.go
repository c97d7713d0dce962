package e2e_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/orgs-dev/orgs/internal/events/eventstest"
	"github.com/orgs-dev/orgs/orgsevents"
)

// TestCrashMailerMidBacklog: 300 invitations wait for a stopped mailer; a mailer with 20
// workers starts, is SIGKILLed once about 100 emails arrived, and a new one finishes. Every
// invitation gets its email; duplicates come only from the jobs that were running at the
// kill (sent, not yet recorded), so there are at most ORGS_MAIL_WORKERS of them.
func TestCrashMailerMidBacklog(t *testing.T) {
	t.Parallel()
	const (
		batches = 3
		perBulk = 100
		workers = 20
		total   = batches * perBulk
	)
	e := newEnv(t)
	e.start("api", nil)
	owner := e.newActiveUser("backlog.owner@example.com", "Backlog Owner")
	org := e.newOrg(owner.ID, "Backlog Org")
	for b := range batches {
		var items []map[string]any
		for i := range perBulk {
			items = append(items, map[string]any{"email": fmt.Sprintf("invitee-%03d@example.com", b*perBulk+i)})
		}
		var out struct {
			Results []struct {
				Email, Status string
				Error         json.RawMessage
			} `json:"results"`
		}
		e.do(as(owner.ID), "POST", "/v1/organizations/"+org.ID+"/members:bulk", map[string]any{"members": items}, http.StatusOK, "").decode(t, &out)
		for _, r := range out.Results {
			if r.Status != "invited" {
				t.Fatalf("bulk item %s: got %s %s, want invited", r.Email, r.Status, r.Error)
			}
		}
	}

	mailerEnv := map[string]string{"ORGS_MAIL_WORKERS": fmt.Sprint(workers), "ORGS_JOB_RESCUE_AFTER": "2s"}
	first := e.start("mailer", mailerEnv)
	deadline := time.Now().Add(30 * time.Second)
	for e.smtp.Count() < total/3 {
		if time.Now().After(deadline) {
			t.Fatalf("the first mailer sent %d emails in 30s, want %d; jobs: %s", e.smtp.Count(), total/3, jobStates(t, e))
		}
		time.Sleep(time.Millisecond)
	}
	first.kill()
	atKill := e.smtp.Count()
	killed := time.Now()
	if atKill >= total {
		t.Logf("the mailer sent all %d emails before the kill landed; the crash window was not exercised", atKill)
	}

	e.start("mailer", mailerEnv)
	recipients := func() map[string]int {
		m := map[string]int{}
		for _, msg := range e.smtp.Messages() {
			for _, to := range msg.To {
				m[strings.ToLower(to)]++
			}
		}
		return m
	}
	deadline = time.Now().Add(60 * time.Second) // River's rescuer runs about every 30 s, on the leader
	for len(recipients()) < total {
		if time.Now().After(deadline) {
			t.Fatalf("60s after the restart: %d of %d invitations got an email (%d emails at the kill)", len(recipients()), total, atKill)
		}
		time.Sleep(50 * time.Millisecond)
	}
	recovered := time.Since(killed)
	time.Sleep(time.Second) // let stragglers arrive before counting duplicates
	got := recipients()
	dups := 0
	for i := range total {
		addr := fmt.Sprintf("invitee-%03d@example.com", i)
		if got[addr] == 0 {
			t.Errorf("no invitation email to %s", addr)
		}
		dups += max(got[addr]-1, 0)
	}
	if len(got) != total {
		t.Errorf("emails went to %d addresses, want the %d invitees", len(got), total)
	}
	t.Logf("mailer SIGKILLed after %d of %d emails; all delivered %v after the kill; %d duplicates (limit %d = ORGS_MAIL_WORKERS)",
		atKill, total, recovered.Round(100*time.Millisecond), dups, workers)
	if dups > workers {
		t.Errorf("%d duplicate emails, want at most %d (the jobs running at the kill)", dups, workers)
	}
}

// writer PATCHes one organization's metadata {"n": 1, 2, ...} serially and records the
// n of every write that got a 2xx, so the test knows which changes committed.
type writer struct {
	e     *env
	orgID string
	next  int

	mu        sync.Mutex
	committed []int
	failed    int
}

// run writes until stop is closed (or, with stopOnError, until a request fails), pausing
// pause between writes.
func (w *writer) run(stop <-chan struct{}, pause time.Duration, stopOnError bool) {
	for {
		select {
		case <-stop:
			return
		default:
		}
		w.next++
		r := w.e.try(svc(), "PATCH", "/v1/organizations/"+w.orgID, map[string]any{"metadata": map[string]any{"n": w.next}})
		w.mu.Lock()
		if r.err == nil && r.status >= 200 && r.status < 300 {
			w.committed = append(w.committed, w.next)
		} else {
			w.failed++
		}
		w.mu.Unlock()
		if r.err != nil || r.status >= 300 {
			if stopOnError {
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
		time.Sleep(pause)
	}
}

func (w *writer) commits() []int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]int(nil), w.committed...)
}

func newWriters(e *env, n int) []*writer {
	e.t.Helper()
	owner := e.newActiveUser("writer.owner@example.com", "Writer Owner")
	ws := make([]*writer, n)
	for i := range ws {
		ws[i] = &writer{e: e, orgID: e.newOrg(owner.ID, fmt.Sprintf("Writer Org %d", i)).ID}
	}
	return ws
}

// runWriters runs every writer until stop is closed (or, with stopOnError, it fails).
func runWriters(ws []*writer, stop <-chan struct{}, pause time.Duration, stopOnError bool) *sync.WaitGroup {
	var wg sync.WaitGroup
	for _, w := range ws {
		wg.Go(func() { w.run(stop, pause, stopOnError) })
	}
	return &wg
}

// orgUpdates returns, per organization, the n of its org_updated events in stream order
// (duplicates by id dropped), and how many duplicates by id the stream held.
func orgUpdates(t testing.TB, evs []orgsevents.Event) (map[string][]int, int) {
	t.Helper()
	seen := map[string]bool{}
	dups := 0
	out := map[string][]int{}
	for _, ev := range evs {
		if seen[ev.ID] {
			dups++
			continue
		}
		seen[ev.ID] = true
		if ev.Type != "org_updated" {
			continue
		}
		var d struct {
			Organization struct {
				ID       string `json:"id"`
				Metadata struct {
					N int `json:"n"`
				} `json:"metadata"`
			} `json:"organization"`
		}
		if err := ev.Decode(&d); err != nil {
			t.Fatal(err)
		}
		out[ev.Subject] = append(out[ev.Subject], d.Organization.Metadata.N)
	}
	return out, dups
}

// waitCommitted waits until every committed write is on the stream, then checks order.
func waitCommitted(t *testing.T, e *env, ws []*writer, timeout time.Duration) {
	t.Helper()
	_, js := eventstest.Connect(t, e.nats.URL())
	missing := func(evs []orgsevents.Event) (int, int) {
		got, _ := orgUpdates(t, evs)
		miss, total := 0, 0
		for _, w := range ws {
			have := map[int]bool{}
			for _, n := range got[w.orgID] {
				have[n] = true
			}
			for _, n := range w.commits() {
				total++
				if !have[n] {
					miss++
				}
			}
		}
		return miss, total
	}
	start := time.Now()
	evs := waitStream(t, js, timeout, "every committed change's event", func(evs []orgsevents.Event) bool {
		m, _ := missing(evs)
		return m == 0
	})
	_, total := missing(evs)
	got, dups := orgUpdates(t, evs)
	checkSeqIncreasing(t, "stream", evs)
	for _, w := range ws {
		ns := got[w.orgID]
		for i := 1; i < len(ns); i++ {
			if ns[i] <= ns[i-1] {
				t.Errorf("organization %s: update n=%d after n=%d on the stream; want commit order", w.orgID, ns[i], ns[i-1])
				break
			}
		}
	}
	t.Logf("%d committed writes, all %d org_updated events on the stream (%d events in all) %v after the writes stopped, in per-organization order; %d duplicates by id",
		total, total, len(evs), time.Since(start).Round(10*time.Millisecond), dups)
}

// TestCrashAPIMidWrites: the api is SIGKILLed while writers are busy and then restarted;
// every write that got a 2xx has its event on the stream, in per-organization order.
func TestCrashAPIMidWrites(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	api := e.start("api", nil)
	ws := newWriters(e, 4)

	stop := make(chan struct{})
	wg := runWriters(ws, stop, 2*time.Millisecond, true)
	time.Sleep(1500 * time.Millisecond)
	api.kill()
	wg.Wait() // each writer stops at its first failed request
	close(stop)
	before := 0
	for _, w := range ws {
		before += len(w.commits())
	}

	e.start("api", nil)
	stop2 := make(chan struct{})
	wg = runWriters(ws, stop2, 2*time.Millisecond, false)
	time.Sleep(500 * time.Millisecond)
	close(stop2)
	wg.Wait()
	t.Logf("%d writes committed before the SIGKILL", before)
	waitCommitted(t, e, ws, 20*time.Second)
}

// TestCrashNATSOutage: NATS is stopped for 10 s while writers keep writing and then
// started again; the api reconnects and nothing is lost or reordered.
func TestCrashNATSOutage(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.start("api", nil)
	ws := newWriters(e, 4)

	stop := make(chan struct{})
	wg := runWriters(ws, stop, 20*time.Millisecond, false)
	time.Sleep(time.Second)
	e.nats.Shutdown()
	down := time.Now()
	time.Sleep(10 * time.Second)
	e.nats.Start()
	t.Logf("NATS was down for %v", time.Since(down).Round(100*time.Millisecond))
	time.Sleep(time.Second)
	close(stop)
	wg.Wait()
	failed := 0
	for _, w := range ws {
		failed += w.failed
	}
	if failed > 0 {
		t.Errorf("%d writes failed while NATS was down; the API should not need NATS to write", failed)
	}
	waitCommitted(t, e, ws, 30*time.Second)
}

// jobStates summarizes river_job by kind and state, for failure messages.
func jobStates(t *testing.T, e *env) string {
	rows, err := e.pool.Query(e.ctx, "SELECT kind, state, count(*) FROM river_job GROUP BY 1, 2 ORDER BY 1, 2")
	if err != nil {
		return err.Error()
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var kind, state string
		var n int
		if err := rows.Scan(&kind, &state, &n); err != nil {
			return err.Error()
		}
		out = append(out, fmt.Sprintf("%s/%s=%d", kind, state, n))
	}
	return strings.Join(out, " ")
}
