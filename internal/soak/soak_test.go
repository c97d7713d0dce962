package soak_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/orgs-dev/orgs/internal/mail/mailtest"
)

// envDuration reads a duration from the environment, or def.
func envDuration(t *testing.T, name string, def time.Duration) time.Duration {
	t.Helper()
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		t.Fatalf("%s=%q: want a positive duration such as 10m", name, s)
	}
	return d
}

func envInt(t *testing.T, name string, def int) int {
	t.Helper()
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil || n <= 0 {
		t.Fatalf("%s=%q: want a positive number", name, s)
	}
	return n
}

// TestSoak drives the whole system at a fixed rate over HTTP while a chaos loop kills its
// processes, then checks that nothing acknowledged was lost, nothing was made twice and
// every organization's events are in commit order. SOAK_DURATION (45s) is how long the
// load and the faults run, SOAK_RATE (20) the requests per second, SOAK_FAULT_EVERY (3s)
// the mean pause between faults, SOAK_SMTP_DELAY (15ms) how long each write to the SMTP
// server is held (so that a killed mailer has sends in flight), SOAK_FAULTS (all) which
// faults to make, of api, mailer, reminder, nats and pg, SOAK_LOG_DIR where to keep the
// processes' logs.
func TestSoak(t *testing.T) {
	if testing.Short() {
		t.Skip("the fault soak runs processes for a minute or more")
	}
	duration := envDuration(t, "SOAK_DURATION", 45*time.Second)
	rate := envInt(t, "SOAK_RATE", 20)
	every := envDuration(t, "SOAK_FAULT_EVERY", 3*time.Second)
	// Longer than the 60 s after which today's code lets a retry take over a key whose
	// first request died, so that such a retry's answer is checked too.
	retryFor := envDuration(t, "SOAK_RETRY_FOR", 75*time.Second)
	const workers = 8
	c := newCluster(t, clusterConfig{apiReplicas: 2, mailWorkers: workers, rescueAfter: 15 * time.Second,
		smtpDelay: envDuration(t, "SOAK_SMTP_DELAY", 15*time.Millisecond)})
	for _, role := range c.roles() {
		if err := c.start(role); err != nil {
			t.Fatal(err)
		}
	}
	ctx := context.Background()
	rp := &report{name: fmt.Sprintf("%d req/s, a fault every ~%v", rate, every), duration: duration,
		requests: map[string]int{}, byKind: map[string][]time.Duration{}, mailWorker: workers}
	log := &requestLog{}
	cl := newClient(c, retryFor)
	w := newWorld(c, cl, log)
	w.setup(t, ctx, 4, 2)

	// The load: rate ticks a second, each handed to the first free client.
	const clients = 32
	jobs := make(chan *request, clients)
	var wg sync.WaitGroup
	for range clients {
		wg.Go(func() {
			for r := range jobs {
				cl.do(ctx, r)
				w.finished(r)
				log.add(r)
			}
		})
	}
	loadCtx, stopLoad := context.WithTimeout(ctx, duration)
	defer stopLoad()
	chaosDone := make(chan []fault)
	var only []string
	if s := os.Getenv("SOAK_FAULTS"); s != "" {
		only = strings.Split(s, ",")
	}
	go func() { chaosDone <- chaos(loadCtx, c, every, only) }()
	start := time.Now()
	tick := time.NewTicker(time.Second / time.Duration(rate))
load:
	for {
		select {
		case <-loadCtx.Done():
			break load
		case <-tick.C:
			select {
			case jobs <- w.next():
			default:
				rp.skipped++
			}
		}
	}
	tick.Stop()
	close(jobs)
	faultsEnd := time.Now()
	rp.faults = <-chaosDone
	wg.Wait() // each request ends within retryFor
	t.Logf("load and faults stopped after %v; the last request ended %v later",
		faultsEnd.Sub(start).Round(time.Second), time.Since(faultsEnd).Round(time.Second))

	for _, r := range log.all() {
		if r.sent.Before(start) || !r.sent.Before(faultsEnd) {
			continue // set-up, or sent after the faults stopped
		}
		d := r.done.Sub(r.sent)
		rp.latencies = append(rp.latencies, d)
		rp.byKind[r.kind] = append(rp.byKind[r.kind], d)
	}
	finish(t, ctx, c, log.all(), rp)
}

// finish drains the backlog, runs the checks, prints the table and fails the test on any
// failure.
func finish(t *testing.T, ctx context.Context, c *cluster, reqs []*request, rp *report) {
	t.Helper()
	for _, ft := range rp.faults {
		switch ft.kind {
		case "mailer":
			rp.mailKills++
		case "pg":
			rp.pgKills++
		}
	}
	// A job of a crashed mailer is rescued after ORGS_JOB_RESCUE_AFTER by River's rescuer,
	// which runs every 30 s on the leader; a job that failed twice waits 16 s more.
	drain(ctx, c, rp, c.cfg.rescueAfter+90*time.Second)
	rp.mailBound = rp.mailWorker * (rp.mailKills + rp.pgKills)
	verify(ctx, c, reqs, rp)
	t.Log("\n" + rp.table())
	for _, f := range rp.failures() {
		t.Error(f)
	}
}

// chaos SIGKILLs a random process (once it has work in flight), restarts NATS or ends the processes' Postgres
// connections every ~every (uniformly between half and one and a half of it) until ctx
// ends, each process coming back after a pause of up to 500 ms, and returns what it did.
func chaos(ctx context.Context, c *cluster, every time.Duration, only []string) []fault {
	var (
		faults   []*fault
		watchers sync.WaitGroup
	)
	defer watchers.Wait()
	kinds := []string{"api", "api", "api", "mailer", "mailer", "mailer", "reminder", "nats", "pg", "pg"}
	if len(only) > 0 {
		kinds = slices.DeleteFunc(kinds, func(k string) bool { return !slices.Contains(only, k) })
	}
	for {
		pause := every/2 + rand.N(every)
		select {
		case <-ctx.Done():
			watchers.Wait()
			out := make([]fault, len(faults))
			for i, ft := range faults {
				out[i] = *ft
			}
			return out
		case <-time.After(pause):
		}
		ft := &fault{kind: kinds[rand.IntN(len(kinds))], at: time.Now()}
		switch ft.kind {
		case "pg":
			ft.ended, ft.err = c.terminateBackends(context.Background())
			ft.recovery = time.Since(ft.at)
		case "nats":
			c.nats.stop()
			time.Sleep(rand.N(2 * time.Second))
			ft.err = retry(3, time.Second, func() error {
				err := c.nats.start()
				if err != nil {
					c.nats.kill() // a server that did not get ready is not left running
				}
				return err
			})
			ft.recovery = time.Since(ft.at)
		default:
			role := ft.kind
			if role == "api" {
				role = fmt.Sprintf("api%d", rand.IntN(c.cfg.apiReplicas))
			}
			c.waitBusy(role, time.Second)
			var running []int64
			if role == "mailer" {
				running = c.runningMailJobs()
			}
			c.kill(role)
			if len(running) > 0 {
				ft.stuck = len(running)
				watchers.Go(func() { ft.jobsDone = c.waitJobsDone(running, ft.at, 3*time.Minute) })
			}
			time.Sleep(rand.N(500 * time.Millisecond))
			ft.err = retry(3, time.Second, func() error {
				err := c.start(role)
				if err != nil {
					c.mu.Lock()
					p := c.procs[role]
					c.mu.Unlock()
					if p != nil {
						p.kill() // a process that did not get ready is not left running
					}
				}
				return err
			})
			ft.recovery = time.Since(ft.at)
		}
		faults = append(faults, ft)
	}
}

// world is what the clients know: the active users who own organizations, the
// organizations acknowledged so far, and the activation links in the sink's emails.
type world struct {
	c   *cluster
	cl  *client
	log *requestLog
	run string
	n   atomic.Int64

	mu        sync.Mutex
	owners    []string
	orgs      []orgRef
	emailOrg  map[string]string // invited address → organization
	sinkSeen  int
	lastScan  time.Time
	links     []link
	linkTaken map[string]bool // user ids whose link a client took
}

type orgRef struct{ id, owner string }

type link struct{ userID, token, email string }

func newWorld(c *cluster, cl *client, log *requestLog) *world {
	var b [3]byte
	_, _ = crandRead(b[:])
	return &world{c: c, cl: cl, log: log, run: fmt.Sprintf("%x", b), emailOrg: map[string]string{}, linkTaken: map[string]bool{}}
}

// setup creates owners active users each with orgsEach organizations, before any fault.
func (w *world) setup(t *testing.T, ctx context.Context, owners, orgsEach int) {
	t.Helper()
	for i := range owners {
		r := post("setup_user", "/v1/users", "", map[string]any{
			"email": fmt.Sprintf("owner-%s-%d@example.com", w.run, i), "name": fmt.Sprintf("Owner %d", i), "is_active": true})
		w.cl.do(ctx, r)
		if !r.ok() {
			t.Fatalf("setup: %s", r)
		}
		var u struct{ ID string }
		decodeAnswer(t, r, &u)
		w.owners = append(w.owners, u.ID)
		for range orgsEach {
			o := w.createOrg(u.ID)
			o.kind = "setup_org"
			w.cl.do(ctx, o)
			if !o.ok() {
				t.Fatalf("setup: %s", o)
			}
			w.finished(o)
			w.log.add(o)
		}
	}
}

func (w *world) createOrg(owner string) *request {
	name := fmt.Sprintf("Soak Org %s-%d", w.run, w.n.Add(1))
	r := post("create_org", "/v1/organizations", owner, map[string]any{"name": name})
	r.orgName = name
	return r
}

func (w *world) addr(prefix string) string {
	return fmt.Sprintf("%s-%s-%d@example.com", prefix, w.run, w.n.Add(1))
}

// next returns the next request of the mix: sign-ups 10%, organizations 8%, invitations
// 30%, bulk adds of 5 8%, activations 14%, reads 30%.
func (w *world) next() *request {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.scanSink()
	org := w.orgs[rand.IntN(len(w.orgs))]
	switch p := rand.IntN(100); {
	case p < 10:
		email := w.addr("su")
		name := fmt.Sprintf("Soak Signup %s-%d", w.run, w.n.Add(1))
		r := post("signup", "/v1/signup", "", map[string]any{"email": email, "name": "Signer", "organization_name": name})
		r.anonymous, r.emails, r.orgName = true, []string{email}, name
		return r
	case p < 18:
		return w.createOrg(w.owners[rand.IntN(len(w.owners))])
	case p < 48:
		email := w.addr("inv")
		w.emailOrg[email] = org.id
		r := post("invite", "/v1/organizations/"+org.id+"/members", org.owner, map[string]any{"email": email, "message": "Welcome"})
		r.orgID, r.emails = org.id, []string{email}
		return r
	case p < 56:
		var items []map[string]any
		var emails []string
		for range 5 {
			email := w.addr("bulk")
			w.emailOrg[email] = org.id
			items = append(items, map[string]any{"email": email})
			emails = append(emails, email)
		}
		r := post("bulk", "/v1/organizations/"+org.id+"/members:bulk", org.owner, map[string]any{"members": items})
		r.orgID, r.emails = org.id, emails
		return r
	case p < 70 && len(w.links) > 0:
		l := w.links[0]
		w.links = w.links[1:]
		body := map[string]any{}
		anonymous := rand.IntN(3) == 0 // a person with a password (argon2); else the customer's backend
		if anonymous {
			body["password"] = "soak-" + l.token[:12]
		}
		r := post("activate", "/v1/activation/"+l.userID+"/"+l.token, "", body)
		r.anonymous, r.userID, r.orgID = anonymous, l.userID, w.emailOrg[l.email]
		return r
	}
	path := "/v1/organizations/" + org.id
	if rand.IntN(2) == 0 {
		path += "/members?limit=50"
	}
	return &request{kind: "read", method: http.MethodGet, path: path, onBehalf: org.owner, orgID: org.id}
}

// scanSink collects the activation links of the emails that arrived since the last scan.
func (w *world) scanSink() {
	if time.Since(w.lastScan) < 200*time.Millisecond {
		return
	}
	w.lastScan = time.Now()
	msgs := w.c.smtp.Messages()
	prefix := w.c.apiURLs[0] + "/activate/"
	for _, m := range msgs[w.sinkSeen:] {
		u := mailtest.FindLink(m.Text, prefix)
		parts := strings.Split(strings.TrimPrefix(u, prefix), "/")
		if u == "" || len(parts) != 2 || w.linkTaken[parts[0]] || len(m.To) != 1 {
			continue
		}
		w.linkTaken[parts[0]] = true
		w.links = append(w.links, link{userID: parts[0], token: parts[1], email: strings.ToLower(m.To[0])})
	}
	w.sinkSeen = len(msgs)
}

// finished records what an acknowledged request made known.
func (w *world) finished(r *request) {
	if !r.ok() || (r.kind != "create_org" && r.kind != "setup_org") {
		return
	}
	var o struct{ ID string }
	if decodeInto(r.answer, &o) != nil || o.ID == "" {
		return
	}
	w.mu.Lock()
	w.orgs = append(w.orgs, orgRef{id: o.ID, owner: r.onBehalf})
	w.mu.Unlock()
}
