package soak_test

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/orgs-dev/orgs/orgsevents"
)

// fault is one thing the chaos loop did.
type fault struct {
	kind     string // api, mailer, reminder, nats, pg
	at       time.Time
	recovery time.Duration // kill → ready again (pg: backends ended)
	ended    int           // pg: connections terminated
	stuck    int           // mailer: jobs it was running when killed
	jobsDone time.Duration // mailer: kill → those jobs done (-1: not within the bound)
	err      error
}

// report is what a run did and what the checks found.
type report struct {
	name       string
	duration   time.Duration
	requests   map[string]int // by kind
	acked      int
	skipped    int // ticks dropped because every client was busy
	faults     []fault
	latencies  []time.Duration // of the requests sent while faults ran
	byKind     map[string][]time.Duration
	drain      time.Duration
	drained    bool
	mailBound  int
	mailKills  int
	pgKills    int
	mailWorker int

	lostRows, lostEmails, lostEvents           int
	doubledOrgs, doubledInvitations            int
	dupEmails, unexpectedEmails                int
	orderViolations                            int
	deadConflicts, endedConflict, wrongAnswers int
	unanswered                                 int
	streamDups, discardedJobs, rescuerLines    int
	undrainedJobs, unpublished                 int
	problems                                   []string
	slowest                                    []*request
	deadAnswers                                int
	kinds                                      map[string]int // problems by format
	events                                     [3]int         // in the outbox, on the stream, in GET /v1/events
}

// problem notes a problem the checks found; the table shows the first 5 of each kind.
func (rp *report) problem(format string, args ...any) {
	if rp.kinds == nil {
		rp.kinds = map[string]int{}
	}
	if rp.kinds[format]++; rp.kinds[format] <= 5 {
		rp.problems = append(rp.problems, fmt.Sprintf(format, args...))
	}
}

// faultBefore names the last fault before at.
func (rp *report) faultBefore(at time.Time) string {
	for i := len(rp.faults) - 1; i >= 0; i-- {
		if ft := rp.faults[i]; !ft.at.After(at) {
			return fmt.Sprintf("%v after a %s fault at %s", at.Sub(ft.at).Round(time.Millisecond), ft.kind, ft.at.Format("15:04:05.000"))
		}
	}
	return "before any fault"
}

func (rp *report) lost() int    { return rp.lostRows + rp.lostEmails + rp.lostEvents }
func (rp *report) doubled() int { return rp.doubledOrgs + rp.doubledInvitations }

// failures lists why the run fails; empty when it passes.
func (rp *report) failures() []string {
	var f []string
	add := func(cond bool, format string, args ...any) {
		if cond {
			f = append(f, fmt.Sprintf(format, args...))
		}
	}
	add(rp.lost() > 0, "lost %d (rows %d, emails %d, events %d), want 0", rp.lost(), rp.lostRows, rp.lostEmails, rp.lostEvents)
	add(rp.doubled() > 0, "doubled %d (organizations %d, invitations %d), want 0", rp.doubled(), rp.doubledOrgs, rp.doubledInvitations)
	add(rp.dupEmails > rp.mailBound, "%d duplicate emails, want at most %d (mail workers %d × (mailer kills %d + Postgres kills %d))",
		rp.dupEmails, rp.mailBound, rp.mailWorker, rp.mailKills, rp.pgKills)
	add(rp.unexpectedEmails > 0, "%d emails to addresses nothing invited or signed up, want 0", rp.unexpectedEmails)
	add(rp.orderViolations > 0, "%d ordering violations, want 0", rp.orderViolations)
	add(rp.deadConflicts > 0, "%d requests answered 409 idempotency_conflict (%d times) while their first attempt was no longer running, want 0",
		rp.deadConflicts, rp.deadAnswers)
	add(rp.endedConflict > 0, "%d requests ended on 409 idempotency_conflict, want 0", rp.endedConflict)
	add(rp.wrongAnswers > 0, "%d requests (or bulk items) ended on an answer other than their first (see the problems), want 0", rp.wrongAnswers)
	add(rp.unanswered > 0, "%d requests got no answer but errors within the retry budget, want 0", rp.unanswered)
	add(!rp.drained, "the backlog did not drain within the bound (%d mail jobs unfinished, %d events unpublished)", rp.undrainedJobs, rp.unpublished)
	for _, ft := range rp.faults {
		add(ft.err != nil, "%s at %s: %v", ft.kind, ft.at.Format("15:04:05.000"), ft.err)
	}
	return f
}

func quantile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[min(len(s)-1, int(q*float64(len(s))))]
}

func round(d time.Duration) string {
	switch {
	case d == 0:
		return "-"
	case d < 10*time.Millisecond:
		return d.Round(100 * time.Microsecond).String()
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	}
	return d.Round(100 * time.Millisecond).String()
}

// table renders the report.
func (rp *report) table() string {
	var b strings.Builder
	w := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	total := 0
	var kinds []string
	for k, n := range rp.requests {
		total += n
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	var per []string
	for _, k := range kinds {
		per = append(per, fmt.Sprintf("%s %d", k, rp.requests[k]))
	}
	kills := map[string]int{}
	rec := map[string][]time.Duration{}
	pgEnded := 0
	for _, ft := range rp.faults {
		kills[ft.kind]++
		if ft.err == nil && ft.kind != "pg" {
			rec[ft.kind] = append(rec[ft.kind], ft.recovery)
		}
		pgEnded += ft.ended
	}
	restarts := 0
	for _, k := range []string{"api", "mailer", "reminder", "nats"} {
		restarts += len(rec[k])
	}
	fmt.Fprintf(&b, "fault soak: %s, %v of load\n", rp.name, rp.duration.Round(time.Second))
	fmt.Fprintf(w, "requests\t%d (%s); %d acknowledged; %d ticks skipped (clients busy)\n", total, strings.Join(per, ", "), rp.acked, rp.skipped)
	fmt.Fprintf(w, "kills\tapi %d, mailer %d, reminder %d (SIGKILL); nats %d (SIGTERM and start); postgres %d (%d connections terminated)\n",
		kills["api"], kills["mailer"], kills["reminder"], kills["nats"], kills["pg"], pgEnded)
	fmt.Fprintf(w, "restarts\t%d\n", restarts)
	fmt.Fprintf(w, "lost (must be 0)\t%d: rows %d, emails %d, events %d\n", rp.lost(), rp.lostRows, rp.lostEmails, rp.lostEvents)
	fmt.Fprintf(w, "doubled (must be 0)\t%d: organizations %d, invitations %d\n", rp.doubled(), rp.doubledOrgs, rp.doubledInvitations)
	fmt.Fprintf(w, "duplicate emails\t%d (bound %d = %d workers × (%d mailer kills + %d Postgres kills)); unexpected %d\n",
		rp.dupEmails, rp.mailBound, rp.mailWorker, rp.mailKills, rp.pgKills, rp.unexpectedEmails)
	fmt.Fprintf(w, "ordering violations\t%d\n", rp.orderViolations)
	fmt.Fprintf(w, "retries\t409 for a request no longer running %d (%d answers); ended on 409 %d; other answer than the first %d; unanswered %d\n",
		rp.deadConflicts, rp.deadAnswers, rp.endedConflict, rp.wrongAnswers, rp.unanswered)
	fmt.Fprintf(w, "latency while faults ran\tp50 %s, p99 %s, max %s (a request with its retries)\n",
		round(quantile(rp.latencies, 0.5)), round(quantile(rp.latencies, 0.99)), round(slices.Max(append([]time.Duration{0}, rp.latencies...))))
	for _, k := range kinds {
		if ds := rp.byKind[k]; len(ds) > 0 {
			fmt.Fprintf(w, "  %s\tp50 %s, p99 %s\n", k, round(quantile(ds, 0.5)), round(quantile(ds, 0.99)))
		}
	}
	for _, k := range []string{"api", "mailer", "reminder", "nats"} {
		if ds := rec[k]; len(ds) > 0 {
			fmt.Fprintf(w, "recovery %s\tkill → ready p50 %s, max %s (%d)\n", k, round(quantile(ds, 0.5)), round(slices.Max(ds)), len(ds))
		}
	}
	var jobsDone []time.Duration
	stuck, notDone := 0, 0
	for _, ft := range rp.faults {
		stuck += ft.stuck
		switch {
		case ft.jobsDone > 0:
			jobsDone = append(jobsDone, ft.jobsDone)
		case ft.jobsDone < 0:
			notDone++
		}
	}
	if stuck > 0 {
		fmt.Fprintf(w, "recovery mailer jobs\tkill → the jobs it was running done p50 %s, max %s (%d jobs at %d kills; %d kills' jobs not done in 3m)\n",
			round(quantile(jobsDone, 0.5)), round(slices.Max(append([]time.Duration{0}, jobsDone...))), stuck, len(jobsDone)+notDone, notDone)
	}
	fmt.Fprintf(w, "backlog drained\t%s after the load stopped (drained: %t)\n", round(rp.drain), rp.drained)
	fmt.Fprintf(w, "jobs discarded\t%d (log lines of River's rescuer discarding a job of an unhandled kind: %d)\n", rp.discardedJobs, rp.rescuerLines)
	fmt.Fprintf(w, "events\t%d in the outbox, %d on the stream (%d duplicates by id), %d in GET /v1/events\n",
		rp.events[0], rp.events[1], rp.streamDups, rp.events[2])
	w.Flush()
	if len(rp.problems) > 0 {
		more := 0
		for _, n := range rp.kinds {
			more += max(0, n-5)
		}
		fmt.Fprintf(&b, "problems (the first 5 of each kind; %d more):\n  %s\n", more, strings.Join(rp.problems, "\n  "))
	}
	for _, r := range rp.slowest {
		fmt.Fprintf(&b, "slow: %s took %v:\n    %s\n", r.kind, r.done.Sub(r.sent).Round(time.Millisecond), strings.Join(r.history, "\n    "))
	}
	return b.String()
}

// drain waits until every event is published, no mail job is unfinished and every address
// that should have an email has one, at most bound. Once nothing is left to publish or
// send for 5 s, the emails still missing are lost, not late: jobs are inserted with their
// change, so no job can appear later.
func drain(ctx context.Context, c *cluster, rp *report, bound time.Duration) {
	start := time.Now()
	var idleSince time.Time
	for {
		_ = c.pool.QueryRow(ctx, `SELECT count(*) FROM outbox WHERE published_at IS NULL`).Scan(&rp.unpublished)
		_ = c.pool.QueryRow(ctx, `SELECT count(*) FROM river_job WHERE queue = 'mail'
			AND state IN ('available', 'running', 'retryable', 'scheduled', 'pending')`).Scan(&rp.undrainedJobs)
		want := expectedAddrs(ctx, c)
		missing := len(want) - len(intersect(want, sinkCounts(c)))
		idle := rp.unpublished == 0 && rp.undrainedJobs == 0
		switch {
		case !idle:
			idleSince = time.Time{}
		case idleSince.IsZero():
			idleSince = time.Now()
		}
		if idle && (missing == 0 || time.Since(idleSince) > 5*time.Second) {
			rp.drain, rp.drained = time.Since(start), true
			time.Sleep(time.Second) // let stragglers arrive before counting duplicates
			return
		}
		if time.Since(start) > bound {
			rp.drain = time.Since(start)
			return
		}
		time.Sleep(250 * time.Millisecond)
	}
}

func intersect(want map[string]bool, got map[string]int) map[string]bool {
	out := map[string]bool{}
	for a := range want {
		if got[a] > 0 {
			out[a] = true
		}
	}
	return out
}

// expectedAddrs is every address that should have got exactly one email: each
// invitation's and each sign-up's (the soak's sign-ups use "su-" addresses).
func expectedAddrs(ctx context.Context, c *cluster) map[string]bool {
	out := map[string]bool{}
	rows, err := c.pool.Query(ctx, `SELECT lower(email) FROM invitations
		UNION ALL SELECT lower(email) FROM users WHERE email LIKE 'su-%'`)
	if err != nil {
		return out
	}
	defer rows.Close()
	for rows.Next() {
		var a string
		if rows.Scan(&a) == nil {
			out[a] = true
		}
	}
	return out
}

// sinkCounts counts the sink's messages per recipient.
func sinkCounts(c *cluster) map[string]int {
	m := map[string]int{}
	for _, msg := range c.smtp.Messages() {
		for _, to := range msg.To {
			m[strings.ToLower(to)]++
		}
	}
	return m
}

// streamEvent is an event read from the stream, with its position there.
type streamEvent struct {
	orgsevents.Event
	pos int
}

// readStream reads the whole ORGS_EVENTS stream with an ordered consumer.
func readStream(ctx context.Context, url string) ([]orgsevents.Event, error) {
	nc, err := nats.Connect(url)
	if err != nil {
		return nil, err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	st, err := js.Stream(ctx, orgsevents.StreamName)
	if err != nil {
		return nil, err
	}
	info, err := st.Info(ctx)
	if err != nil {
		return nil, err
	}
	if info.State.Msgs == 0 {
		return nil, nil
	}
	cons, err := st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverAllPolicy})
	if err != nil {
		return nil, err
	}
	var out []orgsevents.Event
	for ctx.Err() == nil {
		batch, err := cons.Fetch(1000, jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			return out, err
		}
		for msg := range batch.Messages() {
			md, err := msg.Metadata()
			if err != nil {
				return out, err
			}
			ev, err := orgsevents.Parse(msg.Data())
			if err != nil {
				return out, fmt.Errorf("stream message %d: %w", md.Sequence.Stream, err)
			}
			out = append(out, ev)
			if md.Sequence.Stream >= info.State.LastSeq {
				return out, nil
			}
		}
		if err := batch.Error(); err != nil && err != nats.ErrTimeout {
			return out, err
		}
	}
	return out, ctx.Err()
}

// replay reads GET /v1/events from after=0 to the end.
func replay(ctx context.Context, c *cluster) ([]orgsevents.Event, error) {
	hc := &http.Client{Timeout: 30 * time.Second}
	var out []orgsevents.Event
	after := int64(0)
	for range 100000 {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s/v1/events?after=%d&limit=200", c.apiURLs[0], after), nil)
		req.Header.Set("Authorization", "Bearer "+serviceKey)
		resp, err := hc.Do(req)
		if err != nil {
			return out, err
		}
		var page struct {
			Items     []orgsevents.Event `json:"items"`
			NextAfter int64              `json:"next_after"`
		}
		err = json.NewDecoder(resp.Body).Decode(&page)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			return out, fmt.Errorf("GET /v1/events?after=%d: %d %v", after, resp.StatusCode, err)
		}
		if len(page.Items) == 0 {
			return out, nil
		}
		out = append(out, page.Items...)
		after = page.NextAfter
	}
	return out, fmt.Errorf("GET /v1/events did not end")
}

// eventIndex finds the events a request should have caused.
type eventIndex struct {
	byKey map[string][]int // "<type>/<id>" → positions
}

// index dedupes evs by id (counting duplicates) and indexes them by what they are about.
func index(evs []orgsevents.Event) (eventIndex, []orgsevents.Event, int) {
	ix := eventIndex{byKey: map[string][]int{}}
	seen := map[string]bool{}
	var uniq []orgsevents.Event
	dups := 0
	for _, ev := range evs {
		if seen[ev.ID] {
			dups++
			continue
		}
		seen[ev.ID] = true
		pos := len(uniq)
		uniq = append(uniq, ev)
		var d struct {
			Organization struct {
				ID string `json:"id"`
			} `json:"organization"`
			OrganizationID string `json:"organization_id"`
			User           struct {
				ID string `json:"id"`
			} `json:"user"`
			UserID     string `json:"user_id"`
			Invitation struct {
				ID string `json:"id"`
			} `json:"invitation"`
		}
		_ = json.Unmarshal(ev.Data, &d)
		add := func(id string) { ix.byKey[ev.Type+"/"+id] = append(ix.byKey[ev.Type+"/"+id], pos) }
		switch ev.Type {
		case orgsevents.TypeOrgCreated:
			add(d.Organization.ID)
		case orgsevents.TypeUserRegistered, orgsevents.TypeUserActivated:
			add(d.User.ID)
		case orgsevents.TypeUserInvited:
			add(d.Invitation.ID)
		case orgsevents.TypeMemberAdded:
			add(d.OrganizationID + "/" + d.User.ID)
		case orgsevents.TypeInvitationAccepted:
			add(d.OrganizationID + "/" + d.UserID)
		}
	}
	return ix, uniq, dups
}

// expectedEvents returns the "<type>/<id>" keys of the events an acknowledged request
// caused, and the organization whose order they take part in.
func expectedEvents(r *request) []string {
	switch r.kind {
	case "signup":
		return []string{"org_created/" + r.orgID, "user_registered/" + r.userID}
	case "create_org", "setup_org":
		return []string{"org_created/" + r.orgID}
	case "invite", "bulk":
		var keys []string
		for i, inv := range r.invIDs {
			keys = append(keys, "user_invited/"+inv, "member_added/"+r.orgID+"/"+r.invUsers[i])
		}
		return keys
	case "activate":
		keys := []string{"user_activated/" + r.userID}
		if r.orgID != "" {
			keys = append(keys, "invitation_accepted/"+r.orgID+"/"+r.userID)
		}
		return keys
	}
	return nil
}

// parseAnswers fills the ids of the acknowledged requests from their answers and counts
// the answers that are not what the first attempt would have got.
func parseAnswers(reqs []*request, rp *report) {
	byTime := slices.Clone(reqs)
	slices.SortFunc(byTime, func(a, b *request) int { return cmp.Compare(b.done.Sub(b.sent), a.done.Sub(a.sent)) })
	for _, r := range byTime[:min(3, len(byTime))] {
		if r.done.Sub(r.sent) > 5*time.Second {
			rp.slowest = append(rp.slowest, r)
		}
	}
	for _, r := range reqs {
		rp.requests[r.kind]++
		if r.deadRunning > 0 {
			rp.deadConflicts++
			rp.deadAnswers += r.deadRunning
			rp.problem("%d answers 409 idempotency_conflict while no earlier attempt could run: %s", r.deadRunning, r)
		}
		if !r.ok() {
			switch {
			case r.code == "idempotency_conflict":
				rp.endedConflict++
				rp.problem("ended on 409: %s", r)
			case r.status == 0 || r.status >= 500:
				rp.unanswered++
				rp.problem("unanswered: %s", r)
			default:
				rp.wrongAnswers++
				rp.problem("not the first answer: %s", r)
			}
			continue
		}
		rp.acked++
		switch r.kind {
		case "signup":
			var a struct {
				User         struct{ ID string }
				Organization struct{ ID string }
			}
			_ = json.Unmarshal(r.answer, &a)
			r.userID, r.orgID = a.User.ID, a.Organization.ID
		case "create_org", "setup_org":
			var a struct{ ID string }
			_ = json.Unmarshal(r.answer, &a)
			r.orgID = a.ID
		case "invite":
			var m struct {
				User       struct{ ID string }
				Invitation *struct{ ID string }
			}
			_ = json.Unmarshal(r.answer, &m)
			if m.Invitation == nil {
				rp.wrongAnswers++
				rp.problem("invite answered without an invitation: %s", r)
				continue
			}
			r.invIDs, r.invUsers = []string{m.Invitation.ID}, []string{m.User.ID}
		case "bulk":
			var a struct {
				Results []struct {
					Email  string
					Status string
					Member *struct {
						User       struct{ ID string }
						Invitation *struct{ ID string }
					}
					Error json.RawMessage
				}
			}
			_ = json.Unmarshal(r.answer, &a)
			if len(a.Results) != len(r.emails) {
				rp.wrongAnswers++
				rp.problem("bulk answered %d results for %d items: %s", len(a.Results), len(r.emails), r)
			}
			for _, it := range a.Results {
				if it.Status != "invited" || it.Member == nil || it.Member.Invitation == nil {
					rp.wrongAnswers++
					rp.problem("bulk item %s: %s %s (key %s, %d attempts), want invited", it.Email, it.Status, it.Error, r.key, r.attempts)
					continue
				}
				r.invIDs = append(r.invIDs, it.Member.Invitation.ID)
				r.invUsers = append(r.invUsers, it.Member.User.ID)
			}
		}
	}
}

// verify checks the run's requests against Postgres, the sink, the stream and
// GET /v1/events, and fills rp.
func verify(ctx context.Context, c *cluster, reqs []*request, rp *report) {
	parseAnswers(reqs, rp)

	// Rows of every acknowledged request.
	users := map[string]bool{}     // id → is_active
	byEmail := map[string]string{} // lower(email) → id
	rows, err := c.pool.Query(ctx, `SELECT id::text, is_active, lower(email) FROM users`)
	if err != nil {
		rp.problem("read users: %v", err)
		return
	}
	for rows.Next() {
		var id, email string
		var active bool
		_ = rows.Scan(&id, &active, &email)
		users[id] = active
		byEmail[email] = id
	}
	rows.Close()
	// An anonymous sign-up's answer carries no user id (it may be an invited person's
	// account): the user is the one with the address it signed up.
	for _, r := range reqs {
		if r.ok() && r.kind == "signup" && r.userID == "" && len(r.emails) > 0 {
			r.userID = byEmail[strings.ToLower(r.emails[0])]
		}
	}
	orgs := map[string]string{} // id → owner
	byName := map[string]int{}
	rows, err = c.pool.Query(ctx, `SELECT id::text, owner_id::text, name FROM organizations`)
	if err != nil {
		rp.problem("read organizations: %v", err)
		return
	}
	for rows.Next() {
		var id, owner, name string
		_ = rows.Scan(&id, &owner, &name)
		orgs[id] = owner
		byName[name]++
	}
	rows.Close()
	invs := map[string]string{} // id → organization
	perAddr := map[string]int{}
	rows, err = c.pool.Query(ctx, `SELECT id::text, organization_id::text, lower(email) FROM invitations`)
	if err != nil {
		rp.problem("read invitations: %v", err)
		return
	}
	for rows.Next() {
		var id, org, email string
		_ = rows.Scan(&id, &org, &email)
		invs[id] = org
		perAddr[org+"/"+email]++
	}
	rows.Close()
	members := map[string]bool{}
	rows, err = c.pool.Query(ctx, `SELECT organization_id::text || '/' || user_id::text FROM memberships`)
	if err != nil {
		rp.problem("read memberships: %v", err)
		return
	}
	for rows.Next() {
		var k string
		_ = rows.Scan(&k)
		members[k] = true
	}
	rows.Close()

	for _, r := range reqs {
		if !r.ok() {
			continue
		}
		switch r.kind {
		case "signup":
			if _, ok := users[r.userID]; !ok || orgs[r.orgID] != r.userID {
				rp.lostRows++
				rp.problem("acknowledged sign-up without its user and organization: %s", r)
			}
		case "create_org", "setup_org":
			if _, ok := orgs[r.orgID]; !ok {
				rp.lostRows++
				rp.problem("acknowledged organization not in Postgres: %s", r)
			}
		case "invite", "bulk":
			for i, inv := range r.invIDs {
				if invs[inv] != r.orgID || !members[r.orgID+"/"+r.invUsers[i]] {
					rp.lostRows++
					rp.problem("acknowledged invitation %s without its rows: %s", inv, r)
				}
			}
		case "activate":
			if !users[r.userID] {
				rp.lostRows++
				rp.problem("acknowledged activation of %s, user not active: %s", r.userID, r)
			}
		}
	}
	for name, n := range byName {
		if n > 1 {
			rp.doubledOrgs += n - 1
			rp.problem("%d organizations named %q", n, name)
		}
	}
	for k, n := range perAddr {
		if n > 1 {
			rp.doubledInvitations += n - 1
			rp.problem("%d invitations of %s", n, k)
		}
	}

	// Emails: one per invitation and sign-up address.
	want := expectedAddrs(ctx, c)
	got := sinkCounts(c)
	for a := range want {
		switch n := got[a]; {
		case n == 0:
			rp.lostEmails++
			rp.problem("no email to %s", a)
		case n > 1:
			rp.dupEmails += n - 1
		}
	}
	for a, n := range got {
		if !want[a] {
			rp.unexpectedEmails += n
			rp.problem("%d emails to %s, which nothing invited or signed up", n, a)
		}
	}
	_ = c.pool.QueryRow(ctx, `SELECT count(*) FROM river_job WHERE state = 'discarded'`).Scan(&rp.discardedJobs)
	rp.rescuerLines = c.grepLogs("Attempted to rescue unhandled job kind")

	// Events: the outbox, the stream and GET /v1/events.
	type outboxRow struct {
		seq       int64
		published bool
		typ       string
		at        time.Time // published_at, else occurred_at
	}
	outbox := map[string]outboxRow{}
	var outboxOrder []string
	rows, err = c.pool.Query(ctx, `SELECT id::text, coalesce(seq, 0), published_at IS NOT NULL, type,
		coalesce(published_at, occurred_at) FROM outbox ORDER BY seq NULLS LAST`)
	if err != nil {
		rp.problem("read outbox: %v", err)
		return
	}
	for rows.Next() {
		var id string
		var o outboxRow
		_ = rows.Scan(&id, &o.seq, &o.published, &o.typ, &o.at)
		outbox[id] = o
		outboxOrder = append(outboxOrder, id)
	}
	rows.Close()
	sctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	stream, err := readStream(sctx, "nats://"+c.nats.addr)
	if err != nil {
		rp.problem("read the stream: %v", err)
		rp.lostEvents++
	}
	rpl, err := replay(sctx, c)
	if err != nil {
		rp.problem("read GET /v1/events: %v", err)
		rp.lostEvents++
	}
	six, suniq, sdups := index(stream)
	rix, runiq, _ := index(rpl)
	rp.streamDups = sdups
	rp.events = [3]int{len(outboxOrder), len(suniq), len(runiq)}
	onStream, inReplay := map[string]bool{}, map[string]bool{}
	for _, ev := range suniq {
		onStream[ev.ID] = true
	}
	for _, ev := range runiq {
		inReplay[ev.ID] = true
	}
	for _, id := range outboxOrder {
		o := outbox[id]
		if !o.published || !onStream[id] || !inReplay[id] {
			rp.lostEvents++
			rp.problem("outbox event %s %s (seq %d, published %t at %s, %s): on the stream %t, in GET /v1/events %t",
				o.typ, id, o.seq, o.published, o.at.Format("15:04:05.000"), rp.faultBefore(o.at), onStream[id], inReplay[id])
		}
	}
	for what, evs := range map[string][]orgsevents.Event{"stream": suniq, "GET /v1/events": runiq} {
		for i, ev := range evs {
			if o, ok := outbox[ev.ID]; !ok || o.seq != ev.Seq {
				rp.orderViolations++
				rp.problem("%s: event %s has seq %d, the outbox %d (found %t)", what, ev.ID, ev.Seq, o.seq, ok)
			}
			if i > 0 && ev.Seq <= evs[i-1].Seq {
				rp.orderViolations++
				rp.problem("%s: event %d (%s) has seq %d after seq %d; want strictly increasing", what, i, ev.Type, ev.Seq, evs[i-1].Seq)
			}
		}
	}

	// Every acknowledged request's own events, and commit order per organization: a
	// request acknowledged before another was sent committed first, so its events come
	// first on the stream.
	perOrg := map[string][]span{}
	for _, r := range reqs {
		if !r.ok() {
			continue
		}
		keys := expectedEvents(r)
		sp := span{sent: r.sent, done: r.done, lo: -1, hi: -1, r: r}
		for _, k := range keys {
			ps, rs := six.byKey[k], rix.byKey[k]
			if len(ps) == 0 || len(rs) == 0 {
				rp.lostEvents++
				rp.problem("acknowledged %s without its event %s (stream %t, GET /v1/events %t)", r, k, len(ps) > 0, len(rs) > 0)
				continue
			}
			if strings.HasPrefix(k, "user_activated/") || strings.HasPrefix(k, "user_registered/") {
				continue // their subject is not (only) the organization
			}
			for _, p := range ps {
				if sp.lo < 0 || p < sp.lo {
					sp.lo = p
				}
				sp.hi = max(sp.hi, p)
			}
		}
		if sp.lo >= 0 && r.orgID != "" {
			perOrg[r.orgID] = append(perOrg[r.orgID], sp)
		}
	}
	for _, v := range commitOrder(perOrg) {
		rp.orderViolations++
		rp.problem("%s", v)
	}
}

// span is an acknowledged request and the stream positions of its events on one
// organization.
type span struct {
	sent, done time.Time
	lo, hi     int
	r          *request
}

// commitOrder returns a violation for each request whose events come before those of a
// request acknowledged before it was sent, per organization.
func commitOrder(perOrg map[string][]span) []string {
	var out []string
	for org, spans := range perOrg {
		sort.Slice(spans, func(i, j int) bool { return spans[i].done.Before(spans[j].done) })
		prefix := make([]int, len(spans)) // index of the span with the latest event among spans[:i+1]
		for i := range spans {
			prefix[i] = i
			if i > 0 && spans[prefix[i-1]].hi > spans[i].hi {
				prefix[i] = prefix[i-1]
			}
		}
		for _, y := range spans {
			n := sort.Search(len(spans), func(i int) bool { return !spans[i].done.Before(y.sent) })
			if n == 0 {
				continue
			}
			if x := spans[prefix[n-1]]; x.hi > y.lo {
				out = append(out, fmt.Sprintf("organization %s: %s (key %s) was answered before %s (key %s) was sent, yet its event at stream position %d follows position %d",
					org, x.r.kind, x.r.key, y.r.kind, y.r.key, x.hi, y.lo))
			}
		}
	}
	return out
}
