package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// snapshot is the state of the counters the tool reads, at one moment.
type snapshot struct {
	at    time.Time
	dbNow time.Time // Postgres's clock, for rows made since
	// metrics holds, per process, the sum over its series of each metric (histograms as
	// name_sum and name_count).
	metrics map[string]map[string]float64
	cpu     map[string]float64 // CPU seconds by process name
	stmts   map[string]stmt    // pg_stat_statements by queryid
	wal     float64            // bytes of WAL written since the cluster began
	outbox  int64              // events not yet published
	jobs    int64              // email jobs waiting or running
}

// stmt is one pg_stat_statements entry.
type stmt struct {
	query   string
	calls   float64
	execMS  float64
	walByte float64
}

func (l *load) snapshot(ctx context.Context) (snapshot, error) {
	s := snapshot{at: time.Now(), dbNow: time.Now(), metrics: map[string]map[string]float64{}, cpu: map[string]float64{}, stmts: map[string]stmt{}}
	for _, pm := range strings.Split(l.o.metrics, ",") {
		name, url, ok := strings.Cut(strings.TrimSpace(pm), "=")
		if !ok {
			continue
		}
		m, err := scrape(ctx, l.client, url)
		if err != nil {
			fmt.Fprintf(l.out, "orgsload: metrics of %s: %v\n", name, err)
			continue
		}
		s.metrics[name] = m
	}
	s.cpu = processCPU(strings.Split(l.o.procs, ","))
	if l.db == nil {
		return s, nil
	}
	err := l.db.QueryRow(ctx, `SELECT now(), pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::float8,
		(SELECT count(*) FROM outbox WHERE published_at IS NULL),
		(SELECT count(*) FROM river_job WHERE state IN ('available', 'running', 'retryable') AND kind LIKE 'send_%')`).
		Scan(&s.dbNow, &s.wal, &s.outbox, &s.jobs)
	if err != nil {
		return s, fmt.Errorf("snapshot: %w", err)
	}
	rows, err := l.db.Query(ctx, `SELECT queryid::text, query, calls::float8, total_exec_time, wal_bytes::float8
		FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) AND queryid IS NOT NULL`)
	if err != nil {
		fmt.Fprintf(l.out, "orgsload: pg_stat_statements (is the extension created?): %v\n", err)
		return s, nil
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		var st stmt
		if err := rows.Scan(&id, &st.query, &st.calls, &st.execMS, &st.walByte); err != nil {
			return s, err
		}
		prev := s.stmts[id]
		st.calls += prev.calls
		st.execMS += prev.execMS
		st.walByte += prev.walByte
		s.stmts[id] = st
	}
	return s, rows.Err()
}

// scrape reads a Prometheus text exposition and sums each metric over its series.
func scrape(ctx context.Context, client *http.Client, url string) (map[string]float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s", url, resp.Status)
	}
	return parseMetrics(resp.Body)
}

func parseMetrics(r io.Reader) (map[string]float64, error) {
	m := map[string]float64{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		name := line
		if i := strings.IndexAny(line, "{ "); i >= 0 {
			name = line[:i]
		}
		f := strings.Fields(line[strings.LastIndexAny(line, "} ")+1:])
		if len(f) == 0 {
			f = strings.Fields(line)
			f = f[len(f)-1:]
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			continue
		}
		m[name] += v
	}
	return m, sc.Err()
}

// processCPU sums the CPU time of the local processes with each name. A Postgres server's
// ended backends count through its postmaster's children times.
func processCPU(names []string) map[string]float64 {
	want := map[string]bool{}
	for _, n := range names {
		if n = strings.TrimSpace(n); n != "" {
			want[n] = true
		}
	}
	out := map[string]float64{}
	const hz = 100 // USER_HZ on Linux
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		b, err := os.ReadFile(d + "/stat")
		if err != nil {
			continue
		}
		st := string(b)
		open, end := strings.IndexByte(st, '('), strings.LastIndexByte(st, ')')
		if open < 0 || end < open {
			continue
		}
		comm := st[open+1 : end]
		if !want[comm] {
			continue
		}
		f := strings.Fields(st[end+1:])
		// After the name: state ppid ... utime(12) stime(13) cutime(14) cstime(15), counting from 0.
		if len(f) < 14 {
			continue
		}
		ticks := 0.0
		for _, i := range []int{11, 12} {
			v, _ := strconv.ParseFloat(f[i], 64)
			ticks += v
		}
		if comm == "postgres" && isPostmaster(f[1]) {
			for _, i := range []int{13, 14} {
				v, _ := strconv.ParseFloat(f[i], 64)
				ticks += v
			}
		}
		out[comm] += ticks / hz
	}
	return out
}

// isPostmaster reports whether the process with parent ppid is a postmaster (its parent
// is not itself a postgres process).
func isPostmaster(ppid string) bool {
	b, err := os.ReadFile("/proc/" + ppid + "/comm")
	return err != nil || strings.TrimSpace(string(b)) != "postgres"
}

// delta is after minus before of metric name of process p.
func (r result) delta(p, name string) float64 {
	return r.after.metrics[p][name] - r.before.metrics[p][name]
}

// processes lists the processes with metrics, in a fixed order.
func (r result) processes() []string {
	var ps []string
	for p := range r.after.metrics {
		ps = append(ps, p)
	}
	sort.Strings(ps)
	return ps
}

// stmtDeltas are the statements that ran during the flow, most Postgres time first.
func (r result) stmtDeltas() []stmt {
	var out []stmt
	for id, a := range r.after.stmts {
		b := r.before.stmts[id]
		d := stmt{query: a.query, calls: a.calls - b.calls, execMS: a.execMS - b.execMS, walByte: a.walByte - b.walByte}
		if d.calls > 0 {
			out = append(out, d)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].execMS > out[j].execMS })
	return out
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1fms", float64(d.Microseconds())/1000) }

// printResult prints one flow's figures, per request where that is what they mean.
func printResult(w io.Writer, r result, nStatements int) {
	n := float64(max(r.n, 1))
	mode := fmt.Sprintf("%d connections", r.conns)
	if r.rate > 0 {
		mode = fmt.Sprintf("%.0f req/s offered", r.rate)
	}
	fmt.Fprintf(w, "\n%s (%s, %s): %d requests, %.0f req/s, p50 %s, p90 %s, p99 %s, max %s; answers: %s\n",
		r.flow, mode, r.elapsed.Round(time.Millisecond), r.n, r.perSecond(),
		ms(r.percentile(.50)), ms(r.percentile(.90)), ms(r.percentile(.99)), ms(r.percentile(1)), statusList(r.statuses))
	fmt.Fprintf(w, "  %-12s %12s %12s %10s\n", "per request", "round trips", "statements", "CPU ms")
	for _, p := range r.processes() {
		fmt.Fprintf(w, "  %-12s %12.2f %12.2f %10.2f\n", p,
			r.delta(p, "orgs_db_round_trips_total")/n, r.delta(p, "orgs_db_statements_total")/n,
			1000*r.delta(p, "process_cpu_seconds_total")/n)
	}
	var names []string
	for name := range r.after.cpu {
		names = append(names, name)
	}
	sort.Strings(names)
	var cpu []string
	for _, name := range names {
		cpu = append(cpu, fmt.Sprintf("%s %.2f", name, 1000*(r.after.cpu[name]-r.before.cpu[name])/n))
	}
	fmt.Fprintf(w, "  CPU ms per request (from /proc): %s\n", strings.Join(cpu, ", "))
	stmts := r.stmtDeltas()
	var exec, calls float64
	for _, s := range stmts {
		exec += s.execMS
		calls += s.calls
	}
	if len(r.after.stmts) > 0 {
		fmt.Fprintf(w, "  Postgres: %.2f statements, %.3f ms executing, %.0f B of WAL per request (%.0f B by pg_stat_statements)\n",
			calls/n, exec/n, (r.after.wal-r.before.wal)/n, sumWAL(stmts)/n)
	}
	if api := r.after.metrics["api"]; api != nil {
		holds := r.delta("api", "orgs_db_org_lock_held_seconds_count")
		if holds > 0 {
			fmt.Fprintf(w, "  organization lock (api): %.2f per request, waited %.3f ms, held %.3f ms on average\n",
				holds/n, 1000*r.delta("api", "orgs_db_org_lock_wait_seconds_sum")/r.delta("api", "orgs_db_org_lock_wait_seconds_count"),
				1000*r.delta("api", "orgs_db_org_lock_held_seconds_sum")/holds)
		}
	}
	secs := r.elapsed.Seconds()
	fmt.Fprintf(w, "  backlog: outbox %+.0f/s (%d at the end), email jobs %+.0f/s (%d at the end)",
		float64(r.after.outbox-r.before.outbox)/secs, r.after.outbox, float64(r.after.jobs-r.before.jobs)/secs, r.after.jobs)
	switch {
	case r.drained > 0:
		fmt.Fprintf(w, "; drained %s after the load\n", r.drained.Round(time.Millisecond))
	case r.drained < 0:
		fmt.Fprintf(w, "; NOT drained\n")
	default:
		fmt.Fprintln(w)
	}
	for _, c := range r.checks {
		fmt.Fprintf(w, "  check: %s\n", c)
	}
	for _, p := range r.problems {
		fmt.Fprintf(w, "  PROBLEM: %s\n", p)
	}
	if nStatements > 0 && len(stmts) > 0 {
		fmt.Fprintf(w, "  statements by Postgres time per request (ms, calls, WAL B):\n")
		for _, s := range stmts[:min(nStatements, len(stmts))] {
			fmt.Fprintf(w, "    %7.3f %6.2f %7.0f  %s\n", s.execMS/n, s.calls/n, s.walByte/n, oneLine(s.query, 110))
		}
	}
}

func sumWAL(stmts []stmt) float64 {
	var t float64
	for _, s := range stmts {
		t += s.walByte
	}
	return t
}

func oneLine(q string, width int) string {
	q = strings.Join(strings.Fields(q), " ")
	if len(q) > width {
		q = q[:width-1] + "…"
	}
	return q
}

// printMarkdown prints the summary table of docs/performance.md.
func printMarkdown(w io.Writer, rs []result) {
	fmt.Fprintln(w, "\n| flow | req/s | p50 | p99 | api round trips | Postgres CPU ms | Postgres exec ms | WAL B | lock wait ms | lock held ms | api CPU ms | mailer CPU ms | reminder CPU ms | NATS CPU ms |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
	for _, r := range rs {
		n := float64(max(r.n, 1))
		var exec float64
		for _, s := range r.stmtDeltas() {
			exec += s.execMS
		}
		cpu := func(name string) string { return fmt.Sprintf("%.2f", 1000*(r.after.cpu[name]-r.before.cpu[name])/n) }
		wait, held := "–", "–"
		if c := r.delta("api", "orgs_db_org_lock_held_seconds_count"); c > 0 {
			wait = fmt.Sprintf("%.2f", 1000*r.delta("api", "orgs_db_org_lock_wait_seconds_sum")/r.delta("api", "orgs_db_org_lock_wait_seconds_count"))
			held = fmt.Sprintf("%.2f", 1000*r.delta("api", "orgs_db_org_lock_held_seconds_sum")/c)
		}
		fmt.Fprintf(w, "| %s | %.0f | %s | %s | %.1f | %s | %.2f | %.0f | %s | %s | %s | %s | %s | %s |\n",
			r.flow, r.perSecond(), ms(r.percentile(.5)), ms(r.percentile(.99)),
			r.delta("api", "orgs_db_round_trips_total")/n, cpu("postgres"), exec/n, (r.after.wal-r.before.wal)/n,
			wait, held, cpu("api"), cpu("mailer"), cpu("reminder"), cpu("nats-server"))
	}
}
