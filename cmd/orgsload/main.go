// Command orgsload is orgs' load tool: it drives a running orgs over HTTP, flow by flow, and
// measures it end to end. For each flow it reports the rate, the latency, and per request
// the round trips and statements of every process (their orgs_db_* metrics), the CPU of
// every process (from /proc, Postgres included), Postgres's execution time and WAL (from
// pg_stat_statements and the WAL position), and how long the organization's lock was waited
// for and held. After a write flow it waits for the emails and events to drain and checks
// the rows against the 2xx answers.
//
//	orgsload [flags] [flow ...]         flows: signup, invite-one, invite-64, list, create-org
//	orgsload sink -addr 127.0.0.1:2525  an SMTP server that accepts every message
//
// make bench-e2e starts the whole system and runs it (scripts/bench-e2e.sh).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

func main() {
	if err := run(context.Background(), os.Args, os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "orgsload: %v\n", err)
		os.Exit(1)
	}
}

// options are orgsload's flags.
type options struct {
	url         string
	key         string
	conns       int
	rate        float64
	duration    time.Duration
	warmup      time.Duration
	dbURL       string
	metrics     string
	procs       string
	drain       time.Duration
	statements  int
	markdown    bool
	idempotency bool
	wait        time.Duration
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	if len(args) > 1 && args[1] == "sink" {
		return runSink(ctx, args[2:], stdout)
	}
	var o options
	fs := flag.NewFlagSet("orgsload", flag.ContinueOnError)
	fs.StringVar(&o.url, "url", "http://127.0.0.1:8080", "the api's base URL")
	fs.StringVar(&o.key, "key", "dev-secret-key-change-me", "a service key (the secret of an ORGS_API_KEYS entry)")
	fs.IntVar(&o.conns, "c", 8, "concurrent connections (closed loop: each sends its next request when the last is answered)")
	fs.Float64Var(&o.rate, "rate", 0, "requests per second offered at a fixed rate (open loop, latency from the intended send time); 0: closed loop")
	fs.DurationVar(&o.duration, "d", 20*time.Second, "how long each flow runs")
	fs.DurationVar(&o.warmup, "warmup", 2*time.Second, "how long each flow runs before it is measured")
	fs.StringVar(&o.dbURL, "db", os.Getenv("ORGS_DATABASE_URL"), "the Postgres of the system, for pg_stat_statements, WAL, backlogs and the row checks (empty: none)")
	fs.StringVar(&o.metrics, "metrics", "api=http://127.0.0.1:9101/metrics,mailer=http://127.0.0.1:9102/metrics,reminder=http://127.0.0.1:9103/metrics", "process=metrics URL, comma-separated")
	fs.StringVar(&o.procs, "procs", "postgres,api,mailer,reminder,nats-server", "names of the local processes whose CPU is measured (from /proc)")
	fs.DurationVar(&o.drain, "drain", time.Minute, "how long to wait after a write flow for its emails and events")
	fs.IntVar(&o.statements, "statements", 8, "statements listed per flow, by Postgres execution time")
	fs.BoolVar(&o.markdown, "markdown", false, "print the summary as a Markdown table too")
	fs.BoolVar(&o.idempotency, "idempotency", false, "send an Idempotency-Key with every POST")
	fs.DurationVar(&o.wait, "wait", 0, "wait up to this long for the api's /readyz before starting")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: orgsload [flags] [flow ...]   (flows: %s; default all)\n       orgsload sink -addr 127.0.0.1:2525\n", strings.Join(flowNames(), ", "))
		fs.PrintDefaults()
	}
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	names := fs.Args()
	if len(names) == 0 {
		names = flowNames()
	}
	for _, n := range names {
		if _, ok := flows[n]; !ok {
			return fmt.Errorf("unknown flow %q (flows: %s)", n, strings.Join(flowNames(), ", "))
		}
	}
	if err := waitReady(ctx, o.url, o.wait); err != nil {
		return err
	}
	l, err := newLoad(ctx, o, stdout)
	if err != nil {
		return err
	}
	defer l.close()
	var results []result
	for _, n := range names {
		r, err := l.runFlow(ctx, n)
		if err != nil {
			return fmt.Errorf("%s: %w", n, err)
		}
		results = append(results, r)
		printResult(stdout, r, o.statements)
	}
	if o.markdown {
		printMarkdown(stdout, results)
	}
	for _, r := range results {
		if len(r.problems) > 0 {
			return fmt.Errorf("%s: %s", r.flow, strings.Join(r.problems, "; "))
		}
	}
	return nil
}

// waitReady waits up to d for url's /readyz to answer 200.
func waitReady(ctx context.Context, url string, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	deadline := time.Now().Add(d)
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url+"/readyz", nil)
		if err != nil {
			return err
		}
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s/readyz not ready within %s", url, d)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}
