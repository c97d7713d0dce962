package jobs_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/orgs-dev/orgs/internal/jobs"
	"github.com/orgs-dev/orgs/internal/telemetry"
)

// scrape returns the /metrics page of reg, served over HTTP as the processes serve it.
func scrape(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: got %d, want 200", resp.StatusCode)
	}
	return string(body)
}

func waitMetric(t *testing.T, url, line string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		body := scrape(t, url)
		if strings.Contains(body, line+"\n") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("/metrics has no %q; got orgs_jobs lines:\n%s", line, grepLines(body, "orgs_jobs_"))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func grepLines(s, prefix string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// A discarded job shows in /metrics whichever path discarded it: its worker's last
// attempt failed, its worker cancelled it (a permanent SMTP error), or the leader's
// rescuer gave up a stuck job with no attempt left.
func TestDiscardedJobsShowInMetrics(t *testing.T) {
	t.Parallel()
	b, start := newMailer(t, 1)
	srv := httptest.NewServer(telemetry.OpsHandler(b.reg, nil))
	t.Cleanup(srv.Close)

	body := scrape(t, srv.URL)
	for _, k := range jobs.Kinds() {
		for _, want := range []string{`orgs_jobs_discarded_total{kind="` + k + `"} 0`, `orgs_jobs_discarded{kind="` + k + `"} 0`} {
			if !strings.Contains(body, want+"\n") {
				t.Errorf("before any job: /metrics has no %q", want)
			}
		}
	}

	// The rescuer: an activation job stuck running at its last attempt.
	inserter, err := river.NewClient(riverpgxv5.New(b.pool), &river.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := inserter.Insert(b.ctx, jobs.SendActivationArgs{UserID: b.owner.ID, ExpiresAt: time.Now().Add(time.Hour)}, nil); err != nil {
		t.Fatal(err)
	}
	crash(t, b.pool, jobs.SendActivationArgs{}.Kind())
	if _, err := b.pool.Exec(b.ctx, `UPDATE river_job SET attempt = max_attempts WHERE kind = 'send_activation'`); err != nil {
		t.Fatal(err)
	}
	// The last attempt: an invitation job with one attempt, which the server defers.
	b.invite(t, "deferred@example.com", "")
	if _, err := b.pool.Exec(b.ctx, `UPDATE river_job SET max_attempts = 1 WHERE kind = 'send_invitation'`); err != nil {
		t.Fatal(err)
	}
	b.sink.FailNext(1, 451)
	start()
	waitMetric(t, srv.URL, `orgs_jobs_discarded{kind="send_activation"} 1`)
	waitMetric(t, srv.URL, `orgs_jobs_discarded{kind="send_invitation"} 1`)
	waitMetric(t, srv.URL, `orgs_jobs_discarded_total{kind="send_invitation"} 1`)

	// The worker's cancel: the server rejects the address for good.
	b.sink.FailNext(1, 550)
	b.invite(t, "rejected@example.com", "")
	waitMetric(t, srv.URL, `orgs_jobs_discarded_total{kind="send_invitation"} 2`)

	body = scrape(t, srv.URL)
	for _, want := range []string{
		`orgs_jobs_discarded_total{kind="send_activation"} 0`, // the rescuer's discard passes no worker
		`orgs_jobs_discarded{kind="send_invitation"} 1`,       // a cancelled job is not discarded
	} {
		if !strings.Contains(body, want+"\n") {
			t.Errorf("/metrics has no %q; got:\n%s", want, grepLines(body, "orgs_jobs_"))
		}
	}
}
