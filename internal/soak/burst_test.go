package soak_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestSIGKILLBurst is issue 8's burst: 200 invitations into one organization from 16
// clients, each retrying with the same Idempotency-Key after losing its connection, with
// the api and the mailer SIGKILLed mid-burst (ORGS_JOB_RESCUE_AFTER=15s). Every
// acknowledged invitation has its email and its events, and every retry gets its first
// answer: a 201 with the one invitation of that address, never a 409.
func TestSIGKILLBurst(t *testing.T) {
	if testing.Short() {
		t.Skip("the burst runs processes for a minute or more")
	}
	const (
		total     = 200
		clients   = 16
		killAfter = 60 // acknowledged invitations before the kill
		workers   = 20
	)
	c := newCluster(t, clusterConfig{apiReplicas: 1, mailWorkers: workers, rescueAfter: 15 * time.Second,
		smtpDelay: envDuration(t, "SOAK_SMTP_DELAY", 15*time.Millisecond)})
	for _, role := range c.roles() {
		if err := c.start(role); err != nil {
			t.Fatal(err)
		}
	}
	ctx := context.Background()
	cl := newClient(c, envDuration(t, "SOAK_RETRY_FOR", 75*time.Second))
	log := &requestLog{}
	w := newWorld(c, cl, log)
	w.setup(t, ctx, 1, 1)
	org := w.orgs[0]

	rp := &report{name: fmt.Sprintf("SIGKILL burst: %d invitations, %d clients, api and mailer killed after %d answers", total, clients, killAfter),
		requests: map[string]int{}, byKind: map[string][]time.Duration{}, mailWorker: workers}
	jobs := make(chan *request, total)
	for i := range total {
		email := fmt.Sprintf("burst-%s-%03d@example.com", w.run, i)
		r := post("invite", "/v1/organizations/"+org.id+"/members", org.owner, map[string]any{"email": email})
		r.orgID, r.emails = org.id, []string{email}
		jobs <- r
	}
	close(jobs)

	var acked atomic.Int64
	kill := make(chan struct{})
	var killOnce sync.Once
	var faults []fault
	chaosDone := make(chan struct{})
	go func() {
		defer close(chaosDone)
		select {
		case <-kill:
		case <-time.After(30 * time.Second):
		}
		running := c.runningMailJobs()
		at := time.Now()
		c.kill("api0")
		c.kill("mailer")
		t.Logf("SIGKILLed api and mailer after %d acknowledged invitations, %d emails", acked.Load(), c.smtp.Count())
		time.Sleep(500 * time.Millisecond)
		for _, role := range []string{"api0", "mailer"} {
			ft := fault{kind: binary(role), at: at}
			ft.err = retry(3, time.Second, func() error { return c.start(role) })
			ft.recovery = time.Since(at)
			faults = append(faults, ft)
		}
		if len(running) > 0 {
			faults[1].stuck = len(running)
			faults[1].jobsDone = c.waitJobsDone(running, at, 3*time.Minute)
		}
	}()

	start := time.Now()
	var wg sync.WaitGroup
	for range clients {
		wg.Go(func() {
			for r := range jobs {
				cl.do(ctx, r)
				if r.ok() && acked.Add(1) == killAfter {
					killOnce.Do(func() { close(kill) })
				}
				log.add(r)
			}
		})
	}
	wg.Wait()
	<-chaosDone
	rp.duration = time.Since(start)
	rp.faults = faults
	for _, r := range log.all() {
		if r.kind == "invite" {
			rp.latencies = append(rp.latencies, r.done.Sub(r.sent))
			rp.byKind[r.kind] = append(rp.byKind[r.kind], r.done.Sub(r.sent))
		}
	}
	finish(t, ctx, c, log.all(), rp)
	if got := rp.requests["invite"]; got != total {
		t.Errorf("%d invitations sent, want %d", got, total)
	}
}
