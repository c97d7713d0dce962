package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// flow is one kind of request the tool sends.
type flow struct {
	// want is the status of a successful answer.
	want int
	// write flows are followed by the drain and the checks.
	write bool
	// request returns the n-th request of the flow (n counts from 0 across connections).
	request func(l *load, n int64) (*http.Request, error)
	// jobKind is the email job each answer enqueues ("": none).
	jobKind string
	// rows counts, in Postgres, what the flow's successful requests made.
	rows string
}

var flows = map[string]flow{
	"signup": {
		want: http.StatusAccepted, write: true, jobKind: "send_activation",
		request: func(l *load, n int64) (*http.Request, error) {
			return l.post("/v1/signup", "", map[string]any{
				"email": l.email("signup", n), "name": "Load Tester", "organization_name": l.name("signup", n),
			})
		},
		rows: `SELECT count(*) FROM users WHERE email LIKE $1`,
	},
	"invite-one": {
		want: http.StatusCreated, write: true, jobKind: "send_invitation",
		request: func(l *load, n int64) (*http.Request, error) {
			return l.post("/v1/organizations/"+l.orgs[0]+"/members", l.o.key, map[string]any{"email": l.email("invite-one", n)})
		},
		rows: `SELECT count(*) FROM memberships m JOIN users u ON u.id = m.user_id WHERE u.email LIKE $1`,
	},
	"invite-64": {
		want: http.StatusCreated, write: true, jobKind: "send_invitation",
		request: func(l *load, n int64) (*http.Request, error) {
			return l.post("/v1/organizations/"+l.orgs[n%int64(len(l.orgs))]+"/members", l.o.key, map[string]any{"email": l.email("invite-64", n)})
		},
		rows: `SELECT count(*) FROM memberships m JOIN users u ON u.id = m.user_id WHERE u.email LIKE $1`,
	},
	"create-org": {
		want: http.StatusCreated, write: true,
		request: func(l *load, n int64) (*http.Request, error) {
			r, err := l.post("/v1/organizations", l.o.key, map[string]any{"name": l.name("create-org", n)})
			if err == nil {
				r.Header.Set("On-Behalf-Of", l.owner)
			}
			return r, err
		},
		rows: `SELECT count(*) FROM organizations WHERE name LIKE $1`,
	},
	"list": {
		want: http.StatusOK,
		request: func(l *load, _ int64) (*http.Request, error) {
			r, err := http.NewRequest(http.MethodGet, l.o.url+"/v1/organizations/"+l.listOrg+"/members?limit=10", nil)
			if err == nil {
				r.Header.Set("Authorization", "Bearer "+l.o.key)
				r.Header.Set("On-Behalf-Of", l.owner)
			}
			return r, err
		},
	},
}

// flowNames lists the flows in the order they run by default.
func flowNames() []string {
	return []string{"signup", "invite-one", "invite-64", "list", "create-org"}
}

// load is one run of the tool against one orgs: its seed and its connections.
type load struct {
	o       options
	out     io.Writer
	client  *http.Client
	db      *pgxpool.Pool // nil without -db
	run     string        // this run's mark, in every email and name it makes
	owner   string        // the user who owns the seeded organizations
	orgs    []string      // 64 organizations to invite into
	listOrg string        // an organization of 10 members
}

func newLoad(ctx context.Context, o options, out io.Writer) (*load, error) {
	var b [4]byte
	_, _ = rand.Read(b[:])
	tr := &http.Transport{MaxIdleConns: 1024, MaxIdleConnsPerHost: 1024, IdleConnTimeout: time.Minute}
	l := &load{o: o, out: out, run: "load" + hex.EncodeToString(b[:]), client: &http.Client{Transport: tr, Timeout: 30 * time.Second}}
	if o.dbURL != "" {
		pool, err := pgxpool.New(ctx, o.dbURL)
		if err != nil {
			return nil, fmt.Errorf("database: %w", err)
		}
		l.db = pool
	}
	if err := l.seed(ctx); err != nil {
		l.close()
		return nil, fmt.Errorf("seed: %w", err)
	}
	return l, nil
}

func (l *load) close() {
	if l.db != nil {
		l.db.Close()
	}
}

// email and name are the n-th request's address and organization name: the rows query
// of the flow finds them by the prefix run-flow-.
func (l *load) email(flow string, n int64) string { return l.name(flow, n) + "@load.test" }
func (l *load) name(flow string, n int64) string  { return fmt.Sprintf("%s-%s-%d", l.run, flow, n) }

// post builds a JSON POST, with key as its bearer when not empty.
func (l *load) post(path, key string, body any) (*http.Request, error) {
	b, err := json.Marshal(body)
	if err != nil {
		return nil, err
	}
	r, err := http.NewRequest(http.MethodPost, l.o.url+path, bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	r.Header.Set("Content-Type", "application/json")
	if key != "" {
		r.Header.Set("Authorization", "Bearer "+key)
	}
	if l.o.idempotency {
		var k [16]byte
		_, _ = rand.Read(k[:])
		r.Header.Set("Idempotency-Key", hex.EncodeToString(k[:]))
	}
	return r, nil
}

// call sends r and decodes a JSON answer of status want into v.
func (l *load) call(r *http.Request, want int, v any) error {
	resp, err := l.client.Do(r)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		return fmt.Errorf("%s %s: %d %s", r.Method, r.URL.Path, resp.StatusCode, body)
	}
	if v != nil {
		return json.Unmarshal(body, v)
	}
	return nil
}

// seed makes an active owner, 64 organizations of theirs, and one of 10 members.
func (l *load) seed(ctx context.Context) error {
	user := func(email string) (string, error) {
		r, err := l.post("/v1/users", l.o.key, map[string]any{"email": email, "name": "Load Seed", "is_active": true})
		if err != nil {
			return "", err
		}
		var u struct{ ID string }
		return u.ID, l.call(r.WithContext(ctx), http.StatusCreated, &u)
	}
	org := func(name string) (string, error) {
		r, err := l.post("/v1/organizations", l.o.key, map[string]any{"name": name})
		if err != nil {
			return "", err
		}
		r.Header.Set("On-Behalf-Of", l.owner)
		var o struct{ ID string }
		return o.ID, l.call(r.WithContext(ctx), http.StatusCreated, &o)
	}
	var err error
	if l.owner, err = user(l.run + "-owner@load.test"); err != nil {
		return err
	}
	for i := range 64 {
		id, err := org(fmt.Sprintf("%s seed %d", l.run, i))
		if err != nil {
			return err
		}
		l.orgs = append(l.orgs, id)
	}
	if l.listOrg, err = org(l.run + " list"); err != nil {
		return err
	}
	for i := range 9 {
		email := fmt.Sprintf("%s-member-%d@load.test", l.run, i)
		if _, err := user(email); err != nil {
			return err
		}
		r, err := l.post("/v1/organizations/"+l.listOrg+"/members", l.o.key, map[string]any{"email": email})
		if err != nil {
			return err
		}
		if err := l.call(r.WithContext(ctx), http.StatusCreated, nil); err != nil {
			return err
		}
	}
	return nil
}

// result is what one flow measured.
type result struct {
	flow     string
	conns    int
	rate     float64 // offered, 0 for a closed loop
	elapsed  time.Duration
	n        int            // requests measured
	ok       int            // answered with the flow's status
	statuses map[string]int // answers by status ("error" for no answer)
	lat      []time.Duration

	before, after snapshot
	drained       time.Duration // -1: not drained within -drain
	checks        []string
	problems      []string
}

func (r result) perSecond() float64 { return float64(r.n) / r.elapsed.Seconds() }

func (r result) percentile(p float64) time.Duration {
	if len(r.lat) == 0 {
		return 0
	}
	return r.lat[min(len(r.lat)-1, int(float64(len(r.lat))*p))]
}

// runFlow runs flow name for the warm-up and then for -d, measured.
func (l *load) runFlow(ctx context.Context, name string) (result, error) {
	f := flows[name]
	res := result{flow: name, conns: l.o.conns, rate: l.o.rate, statuses: map[string]int{}}
	var next atomic.Int64
	if l.o.warmup > 0 {
		wctx, cancel := context.WithTimeout(ctx, l.o.warmup)
		l.drive(wctx, f, &next, nil)
		cancel()
		if err := ctx.Err(); err != nil {
			return res, err
		}
		if f.write {
			// Let the warm-up's emails and events go before the measured part begins.
			l.waitDrained(ctx, time.Time{}, f)
		}
	}
	first := next.Load()
	var err error
	if res.before, err = l.snapshot(ctx); err != nil {
		return res, err
	}
	mctx, cancel := context.WithTimeout(ctx, l.o.duration)
	start := time.Now()
	samples := l.drive(mctx, f, &next, &res)
	res.elapsed = time.Since(start)
	cancel()
	if res.after, err = l.snapshot(ctx); err != nil {
		return res, err
	}
	if err := ctx.Err(); err != nil {
		return res, err
	}
	for _, s := range samples {
		res.lat = append(res.lat, s...)
	}
	slices.Sort(res.lat)
	res.n = len(res.lat)
	res.ok = res.statuses[strconv.Itoa(f.want)]
	if f.write && l.db != nil {
		res.drained = l.waitDrained(ctx, res.before.dbNow, f)
		l.check(ctx, f, &res, first)
	}
	return res, nil
}

// drive sends f's requests until ctx ends: from -c connections, or at -rate. With res, it
// records each answer's status and latency.
func (l *load) drive(ctx context.Context, f flow, next *atomic.Int64, res *result) [][]time.Duration {
	var mu sync.Mutex
	record := func(status string) {
		if res != nil {
			mu.Lock()
			res.statuses[status]++
			mu.Unlock()
		}
	}
	send := func(n int64) string {
		r, err := f.request(l, n)
		if err != nil {
			return "error"
		}
		// A request in flight when the flow's time is up is still answered.
		resp, err := l.client.Do(r.WithContext(context.WithoutCancel(ctx)))
		if err != nil {
			return "error"
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return strconv.Itoa(resp.StatusCode)
	}
	workers := l.o.conns
	var due chan time.Time
	if l.o.rate > 0 {
		workers = max(workers, 512)
		due = make(chan time.Time, 4096)
		go func() {
			defer close(due)
			interval := time.Duration(float64(time.Second) / l.o.rate)
			t := time.Now()
			for {
				t = t.Add(interval)
				select {
				case <-ctx.Done():
					return
				case <-time.After(time.Until(t)):
				}
				select {
				case due <- t:
				case <-ctx.Done():
					return
				}
			}
		}()
	}
	samples := make([][]time.Duration, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				var at time.Time
				if due != nil {
					var ok bool
					if at, ok = <-due; !ok {
						return
					}
				} else {
					if ctx.Err() != nil {
						return
					}
					at = time.Now()
				}
				status := send(next.Add(1) - 1)
				if res != nil {
					samples[w] = append(samples[w], time.Since(at))
				}
				record(status)
			}
		}()
	}
	wg.Wait()
	return samples
}

// waitDrained waits (up to -drain) until no email job of f's kind made since since waits
// and no event is unpublished; it returns how long that took, -1 when it did not happen.
func (l *load) waitDrained(ctx context.Context, since time.Time, f flow) time.Duration {
	if l.db == nil {
		return 0
	}
	if since.IsZero() {
		since = time.Now().Add(-24 * time.Hour)
	}
	start := time.Now()
	for time.Since(start) < l.o.drain && ctx.Err() == nil {
		var outbox, jobs int64
		err := l.db.QueryRow(ctx, `SELECT
			(SELECT count(*) FROM outbox WHERE published_at IS NULL),
			(SELECT count(*) FROM river_job WHERE kind = $1 AND created_at >= $2 AND state NOT IN ('completed', 'discarded', 'cancelled'))`,
			f.jobKind, since).Scan(&outbox, &jobs)
		if err == nil && outbox == 0 && jobs == 0 {
			return time.Since(start)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return -1
}

// check counts in Postgres what the measured requests made against their answers.
func (l *load) check(ctx context.Context, f flow, res *result, first int64) {
	if res.drained < 0 {
		res.problems = append(res.problems, fmt.Sprintf("emails and events not drained within %s", l.o.drain))
	}
	if f.rows != "" {
		// Rows of the measured part only would need the numbers; count the flow's all and
		// compare with every success, the warm-up's included.
		var rows int64
		if err := l.db.QueryRow(ctx, f.rows, l.run+"-"+res.flow+"-%").Scan(&rows); err != nil {
			res.problems = append(res.problems, "count rows: "+err.Error())
		} else {
			res.checks = append(res.checks, fmt.Sprintf("%d rows for %d requests sent in all (%d measured, %d answered %d)", rows, res.n+int(first), res.n, res.ok, f.want))
			if rows < int64(res.ok) || rows > int64(res.n)+first {
				res.problems = append(res.problems, fmt.Sprintf("%d rows for %d successes", rows, res.ok))
			}
		}
	}
	if f.jobKind != "" {
		var done, discarded int64
		err := l.db.QueryRow(ctx, `SELECT count(*) FILTER (WHERE state = 'completed'), count(*) FILTER (WHERE state = 'discarded')
			FROM river_job WHERE kind = $1 AND created_at >= $2`, f.jobKind, res.before.dbNow).Scan(&done, &discarded)
		if err != nil {
			res.problems = append(res.problems, "count emails: "+err.Error())
		} else {
			res.checks = append(res.checks, fmt.Sprintf("%d %s emails sent, %d discarded", done, f.jobKind, discarded))
			if discarded > 0 || done < int64(res.ok) {
				res.problems = append(res.problems, fmt.Sprintf("%d emails sent and %d discarded for %d successes", done, discarded, res.ok))
			}
		}
	}
}

// statusList renders the answers by status.
func statusList(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b bytes.Buffer
	for i, k := range keys {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s %d", k, m[k])
	}
	return b.String()
}
