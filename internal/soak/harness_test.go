package soak_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/orgs-dev/orgs/internal/mail/mailtest"
	"github.com/orgs-dev/orgs/internal/postgres/postgrestest"
)

// binDir holds the api, mailer, reminder and nats-server binaries that TestMain builds.
var binDir string

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	flag.Parse()
	if testing.Short() {
		return m.Run() // the tests skip themselves
	}
	dir, err := os.MkdirTemp("", "orgs-soak-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	// The module root is two levels up; nats-server is a dependency of the module.
	cmd := exec.Command("go", "build", "-o", dir+string(os.PathSeparator),
		"./cmd/api", "./cmd/mailer", "./cmd/reminder", "github.com/nats-io/nats-server/v2")
	cmd.Dir = filepath.Join("..", "..")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "soak: build binaries:", err)
		return 1
	}
	binDir = dir
	return m.Run()
}

// The service key of every api, and the token key.
const (
	serviceKey = "soak-service-key-0123456789"
	secretKey  = "soak-secret-key-0123456789-0123456789"
)

// freeAddr returns a 127.0.0.1 address whose port was free a moment ago.
func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// clusterConfig shapes a cluster.
type clusterConfig struct {
	apiReplicas int
	mailWorkers int
	// rescueAfter is ORGS_JOB_RESCUE_AFTER.
	rescueAfter time.Duration
	// smtpDelay holds each write of the mailer to the SMTP server (0: direct).
	smtpDelay time.Duration
}

// cluster is one deployment of orgs run as OS processes: a Postgres schema, a NATS
// server process, an SMTP sink, api replicas, a mailer and a reminder. Its methods are
// safe for concurrent use and report errors instead of failing the test, so that the
// chaos loop can call them from its goroutine.
type cluster struct {
	t       *testing.T
	cfg     clusterConfig
	pool    *pgxpool.Pool // the checker's own connections (not terminated by chaos)
	dbURL   string        // the processes' URL, with their application_name
	appName string
	smtp    *mailtest.Server
	mailURL string // the sink, or the slow proxy in front of it
	nats    *natsServer
	apiURLs []string // fixed across restarts: links and clients keep working
	logDir  string

	inflight sync.Map // role → *atomic.Int64: requests sent to it and not yet answered

	mu    sync.Mutex
	procs map[string]*proc // by role: api0, api1, mailer, reminder
	gen   map[string]int   // by role: incremented at every kill
	logs  []string         // every log file, for diagnostics
}

func newCluster(t *testing.T, cfg clusterConfig) *cluster {
	t.Helper()
	pool, schemaURL := postgrestest.NewWithURL(t)
	var b [4]byte
	_, _ = rand.Read(b[:])
	c := &cluster{
		t: t, cfg: cfg, pool: pool,
		appName: "orgs-soak-" + hex.EncodeToString(b[:]),
		smtp:    mailtest.NewServer(t),
		logDir:  t.TempDir(),
		procs:   map[string]*proc{},
		gen:     map[string]int{},
	}
	c.dbURL = schemaURL + "&application_name=" + c.appName
	if dir := os.Getenv("SOAK_LOG_DIR"); dir != "" {
		// Keep the processes' logs after the test, for a look at a failure.
		c.logDir = filepath.Join(dir, t.Name()+"-"+c.appName)
		if err := os.MkdirAll(c.logDir, 0o755); err != nil {
			t.Fatal(err)
		}
		t.Logf("process logs in %s", c.logDir)
	}
	c.mailURL = c.smtp.URL()
	if cfg.smtpDelay > 0 {
		c.mailURL = "smtp://" + slowProxy(t, c.smtp.Addr(), cfg.smtpDelay)
	}
	for range cfg.apiReplicas {
		c.apiURLs = append(c.apiURLs, "http://"+freeAddr(t))
	}
	c.nats = &natsServer{
		bin: filepath.Join(binDir, "nats-server"), addr: freeAddr(t), monitor: freeAddr(t),
		storeDir: t.TempDir(), logDir: c.logDir,
	}
	if err := c.nats.start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.mu.Lock()
		procs := make([]*proc, 0, len(c.procs))
		for _, p := range c.procs {
			procs = append(procs, p)
		}
		c.mu.Unlock()
		for _, p := range procs {
			p.stop(t)
		}
		c.nats.kill()
		if t.Failed() {
			c.dumpLogs()
		}
	})
	return c
}

// roles returns the process roles of the cluster.
func (c *cluster) roles() []string {
	var rs []string
	for i := range c.cfg.apiReplicas {
		rs = append(rs, fmt.Sprintf("api%d", i))
	}
	return append(rs, "mailer", "reminder")
}

// env is the configuration of a process of role.
func (c *cluster) env(role string) map[string]string {
	m := map[string]string{
		"ORGS_DATABASE_URL":        c.dbURL,
		"ORGS_DATABASE_MAX_CONNS":  "10",
		"ORGS_NATS_URL":            "nats://" + c.nats.addr,
		"ORGS_HTTP_ADDR":           strings.TrimPrefix(c.apiURLs[0], "http://"),
		"ORGS_PUBLIC_URL":          c.apiURLs[0],
		"ORGS_SECRET_KEY":          secretKey,
		"ORGS_API_KEYS":            "soak:" + serviceKey,
		"ORGS_MAIL_URL":            c.mailURL,
		"ORGS_MAIL_FROM":           "orgs <no-reply@orgs.test>",
		"ORGS_MAIL_WORKERS":        strconv.Itoa(c.cfg.mailWorkers),
		"ORGS_SITE_NAME":           "Orgs Soak",
		"ORGS_LOG_FORMAT":          "json",
		"ORGS_LOG_LEVEL":           "info",
		"ORGS_SHUTDOWN_TIMEOUT":    "5s",
		"ORGS_JOB_RESCUE_AFTER":    c.cfg.rescueAfter.String(),
		"ORGS_RELAY_POLL_INTERVAL": "10ms",
		"ORGS_ANONYMOUS_RATE":      "0", // every client is 127.0.0.1
	}
	if strings.HasPrefix(role, "api") {
		i, _ := strconv.Atoi(strings.TrimPrefix(role, "api"))
		m["ORGS_HTTP_ADDR"] = strings.TrimPrefix(c.apiURLs[i], "http://")
	}
	return m
}

func binary(role string) string {
	if strings.HasPrefix(role, "api") {
		return "api"
	}
	return role
}

// start starts the process of role and waits until its /readyz answers 200 (30 s).
func (c *cluster) start(role string) error {
	vars := c.env(role)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	vars["ORGS_METRICS_ADDR"] = ln.Addr().String()
	ln.Close()
	logPath := filepath.Join(c.logDir, fmt.Sprintf("%s-%d.log", role, time.Now().UnixNano()))
	logf, err := os.Create(logPath)
	if err != nil {
		return err
	}
	cmd := exec.Command(filepath.Join(binDir, binary(role)))
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	for k, v := range vars {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start %s: %w", role, err)
	}
	p := &proc{role: role, cmd: cmd, logPath: logPath, metricsAddr: vars["ORGS_METRICS_ADDR"], done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	c.mu.Lock()
	c.procs[role] = p
	c.logs = append(c.logs, logPath)
	c.mu.Unlock()
	return p.waitReady(30 * time.Second)
}

// kill SIGKILLs the process of role and waits until it is gone.
func (c *cluster) kill(role string) {
	c.mu.Lock()
	p := c.procs[role]
	c.gen[role]++
	c.mu.Unlock()
	if p != nil {
		p.kill()
	}
}

// generation returns how many times role was killed: a request sent to a process of an
// older generation is no longer running.
func (c *cluster) generation(role string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gen[role]
}

// busy returns the counter of role's requests in flight.
func (c *cluster) busy(role string) *atomic.Int64 {
	v, _ := c.inflight.LoadOrStore(role, new(atomic.Int64))
	return v.(*atomic.Int64)
}

// waitBusy waits up to max until role has work in flight (requests for an api, running
// jobs for the mailer), so that a kill lands on work rather than on an idle process.
func (c *cluster) waitBusy(role string, max time.Duration) {
	for deadline := time.Now().Add(max); time.Now().Before(deadline); time.Sleep(2 * time.Millisecond) {
		switch {
		case strings.HasPrefix(role, "api"):
			if c.busy(role).Load() > 0 {
				return
			}
		case role == "mailer":
			var n int
			if c.pool.QueryRow(context.Background(), `SELECT count(*) FROM river_job WHERE state = 'running' AND queue = 'mail'`).Scan(&n) == nil && n > 0 {
				return
			}
		default:
			return
		}
	}
}

// runningMailJobs returns the ids of the mail jobs now running.
func (c *cluster) runningMailJobs() []int64 {
	var ids []int64
	rows, err := c.pool.Query(context.Background(), `SELECT id FROM river_job WHERE state = 'running' AND queue = 'mail'`)
	if err != nil {
		return nil
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		if rows.Scan(&id) == nil {
			ids = append(ids, id)
		}
	}
	return ids
}

// waitJobsDone waits up to bound until none of the jobs ids is left to work (completed,
// discarded or cancelled) and returns the time since since, or -1 after bound.
func (c *cluster) waitJobsDone(ids []int64, since time.Time, bound time.Duration) time.Duration {
	for deadline := time.Now().Add(bound); time.Now().Before(deadline); time.Sleep(250 * time.Millisecond) {
		var n int
		err := c.pool.QueryRow(context.Background(), `SELECT count(*) FROM river_job WHERE id = ANY($1)
			AND state NOT IN ('completed', 'discarded', 'cancelled')`, ids).Scan(&n)
		if err == nil && n == 0 {
			return time.Since(since)
		}
	}
	return -1
}

// terminateBackends ends every Postgres connection of the cluster's processes (not the
// checker's) and returns how many it ended.
func (c *cluster) terminateBackends(ctx context.Context) (int, error) {
	var n int
	err := c.pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE pg_terminate_backend(pid))
		FROM pg_stat_activity WHERE datname = current_database() AND application_name = $1`, c.appName).Scan(&n)
	return n, err
}

// dumpLogs logs, for the last 20 log files, their last 10 warnings and errors and their
// last 3 lines. The files stay in the test's temporary directory until it ends.
func (c *cluster) dumpLogs() {
	c.mu.Lock()
	logs := append([]string(nil), c.logs...)
	c.mu.Unlock()
	logs = append(logs, c.nats.logs...)
	for _, path := range logs[max(0, len(logs)-20):] {
		b, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
		var bad []string
		for _, l := range lines {
			if strings.Contains(l, `"level":"warn"`) || strings.Contains(l, `"level":"error"`) || strings.Contains(l, "[ERR]") || strings.Contains(l, "[WRN]") {
				bad = append(bad, l)
			}
		}
		n := len(bad)
		bad = bad[max(0, len(bad)-10):]
		lines = lines[max(0, len(lines)-3):]
		c.t.Logf("--- %s: %d warnings and errors (the last %d), then its last %d lines ---\n%s\n...\n%s", filepath.Base(path), n, len(bad), len(lines),
			strings.Join(bad, "\n"), strings.Join(lines, "\n"))
	}
}

// grepLogs counts the lines of every process log that contain s.
func (c *cluster) grepLogs(s string) int {
	c.mu.Lock()
	logs := append([]string(nil), c.logs...)
	c.mu.Unlock()
	n := 0
	for _, path := range logs {
		f, err := os.Open(path)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			if strings.Contains(sc.Text(), s) {
				n++
			}
		}
		f.Close()
	}
	return n
}

// proc is a running orgs process.
type proc struct {
	role        string
	cmd         *exec.Cmd
	logPath     string
	metricsAddr string
	done        chan struct{}
	err         error
}

func (p *proc) waitReady(timeout time.Duration) error {
	return waitHTTP(p.role, "http://"+p.metricsAddr+"/readyz", timeout, p.done, p.logPath)
}

// waitHTTP polls url until it answers 200, done is closed or timeout passes.
func waitHTTP(what, url string, timeout time.Duration, done <-chan struct{}, logPath string) error {
	deadline := time.Now().Add(timeout)
	hc := &http.Client{Timeout: time.Second}
	for {
		resp, err := hc.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-done:
			return fmt.Errorf("%s exited before it was ready (log %s)", what, logPath)
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready within %v (log %s)", what, timeout, logPath)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

func (p *proc) kill() {
	_ = p.cmd.Process.Kill()
	<-p.done
}

// stop sends SIGTERM and waits (SIGKILL after 10 s).
func (p *proc) stop(t *testing.T) {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		t.Errorf("%s did not stop within 10s of SIGTERM", p.role)
		p.kill()
	}
}

// natsServer is a nats-server process with JetStream; it restarts on the same port and
// store directory, so clients reconnect and the stream survives.
type natsServer struct {
	bin, addr, monitor, storeDir, logDir string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
	logs []string
}

func (n *natsServer) start() error {
	host, port, _ := net.SplitHostPort(n.addr)
	_, mport, _ := net.SplitHostPort(n.monitor)
	logPath := filepath.Join(n.logDir, fmt.Sprintf("nats-%d.log", time.Now().UnixNano()))
	logf, err := os.Create(logPath)
	if err != nil {
		return err
	}
	cmd := exec.Command(n.bin, "-a", host, "-p", port, "-m", mport, "-js", "-sd", n.storeDir)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start nats-server: %w", err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		logf.Close()
		close(done)
	}()
	n.mu.Lock()
	n.cmd, n.done = cmd, done
	n.logs = append(n.logs, logPath)
	n.mu.Unlock()
	// /healthz answers 200 once JetStream is up.
	return waitHTTP("nats-server", "http://"+n.monitor+"/healthz", 30*time.Second, done, logPath)
}

// stop stops the server with SIGTERM (SIGKILL after 10 s). The chaos loop does not
// SIGKILL it: a single nats-server acknowledges a message up to 8 ms before writing it
// (its file store coalesces writes), so a SIGKILL may lose acknowledged messages, which
// replicas (ORGS_NATS_REPLICAS=3) cover in production and no orgs process can.
func (n *natsServer) stop() {
	n.mu.Lock()
	cmd, done := n.cmd, n.done
	n.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

func (n *natsServer) kill() {
	n.mu.Lock()
	cmd, done := n.cmd, n.done
	n.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Kill()
	<-done
}

// retry calls f up to attempts times, pausing between failures, and returns the last error.
func retry(attempts int, pause time.Duration, f func() error) error {
	var err error
	for range attempts {
		if err = f(); err == nil {
			return nil
		}
		time.Sleep(pause)
	}
	return errors.Join(fmt.Errorf("%d attempts", attempts), err)
}

// slowProxy forwards TCP connections on 127.0.0.1 to target, holding each chunk the
// client writes for delay: an SMTP server some milliseconds away, so that a killed
// mailer has sends in flight. It closes when the test ends.
func slowProxy(t testing.TB, target string, delay time.Duration) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	conns := map[net.Conn]bool{}
	track := func(c net.Conn, add bool) {
		mu.Lock()
		defer mu.Unlock()
		if add {
			conns[c] = true
		} else {
			delete(conns, c)
		}
	}
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", target)
			if err != nil {
				in.Close()
				continue
			}
			track(in, true)
			track(out, true)
			closeBoth := func() {
				in.Close()
				out.Close()
				track(in, false)
				track(out, false)
			}
			wg.Go(func() {
				defer closeBoth()
				buf := make([]byte, 32<<10)
				for {
					n, err := in.Read(buf)
					if n > 0 {
						time.Sleep(delay)
						if _, werr := out.Write(buf[:n]); werr != nil {
							return
						}
					}
					if err != nil {
						return
					}
				}
			})
			wg.Go(func() {
				defer closeBoth()
				_, _ = io.Copy(in, out)
			})
		}
	})
	return ln.Addr().String()
}
