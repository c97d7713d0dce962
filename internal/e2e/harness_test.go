package e2e_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	neturl "net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/orgs-dev/orgs/internal/events/eventstest"
	"github.com/orgs-dev/orgs/internal/mail/mailtest"
	"github.com/orgs-dev/orgs/internal/postgres/postgrestest"
	"github.com/orgs-dev/orgs/orgsevents"
)

// binDir holds the api, mailer and reminder binaries that TestMain builds.
var binDir string

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	flag.Parse()
	dir, err := os.MkdirTemp("", "orgs-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	start := time.Now()
	// The module root is two levels up from internal/e2e.
	cmd := exec.Command("go", "build", "-o", dir+string(os.PathSeparator), "./cmd/api", "./cmd/mailer", "./cmd/reminder")
	cmd.Dir = filepath.Join("..", "..")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: build binaries:", err)
		return 1
	}
	if testing.Verbose() {
		fmt.Fprintf(os.Stderr, "e2e: built binaries in %v\n", time.Since(start).Round(time.Millisecond))
	}
	binDir = dir
	return m.Run()
}

// The service key every environment's api accepts.
const serviceKey = "e2e-service-key-0123456789"

// keyA is the default ORGS_SECRET_KEY; keyB the one rotated in.
const (
	keyA = "e2e-secret-key-A-0123456789-0123456789"
	keyB = "e2e-secret-key-B-0123456789-0123456789"
)

// env is one deployment: a schema, a JetStream server, an SMTP sink and the processes.
type env struct {
	t       *testing.T
	ctx     context.Context
	pool    *pgxpool.Pool
	dbURL   string
	nats    *eventstest.RestartableServer
	smtp    *mailtest.Server
	apiAddr string // fixed across api restarts, so that links in emails keep working
	apiURL  string
	client  *http.Client

	mu    sync.Mutex
	procs []*proc
}

func newEnv(t *testing.T) *env {
	t.Helper()
	pool, dbURL := postgrestest.NewWithURL(t)
	e := &env{
		t: t, ctx: context.Background(), pool: pool, dbURL: dbURL,
		nats:    eventstest.NewRestartableServer(t),
		smtp:    mailtest.NewServer(t),
		apiAddr: freeAddr(t),
		client:  &http.Client{Timeout: 15 * time.Second},
	}
	e.apiURL = "http://" + e.apiAddr
	t.Cleanup(func() {
		e.mu.Lock()
		procs := append([]*proc(nil), e.procs...)
		e.mu.Unlock()
		for _, p := range procs {
			p.stop()
		}
		if t.Failed() {
			for _, p := range procs {
				p.dumpLog()
			}
		}
	})
	return e
}

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

// proc is a running orgs process.
type proc struct {
	t           *testing.T
	name        string
	cmd         *exec.Cmd
	logPath     string
	metricsAddr string
	done        chan struct{}
	err         error
}

// baseEnv is the configuration every process gets; extra overrides it.
func (e *env) baseEnv(name string, extra map[string]string) map[string]string {
	m := map[string]string{
		"ORGS_DATABASE_URL":       e.dbURL,
		"ORGS_DATABASE_MAX_CONNS": "10",
		"ORGS_NATS_URL":           e.nats.URL(),
		"ORGS_HTTP_ADDR":          e.apiAddr,
		"ORGS_METRICS_ADDR":       freeAddr(e.t),
		"ORGS_PUBLIC_URL":         e.apiURL,
		"ORGS_SECRET_KEY":         keyA,
		"ORGS_API_KEYS":           "e2e:" + serviceKey,
		"ORGS_MAIL_URL":           e.smtp.URL(),
		"ORGS_MAIL_FROM":          "orgs <no-reply@orgs.test>",
		"ORGS_SITE_NAME":          "Orgs E2E",
		"ORGS_LOG_FORMAT":         "json",
		"ORGS_LOG_LEVEL":          "info",
		"ORGS_SHUTDOWN_TIMEOUT":   "5s",
		"ORGS_JOB_RESCUE_AFTER":   "2s",
		"ORGS_SWEEP_INTERVAL":     "1s",
	}
	for k, v := range extra {
		m[k] = v
	}
	return m
}

// start starts binary name ("api", "mailer", "reminder") with the base configuration and
// extra, and waits until its /readyz answers 200.
func (e *env) start(name string, extra map[string]string) *proc {
	e.t.Helper()
	vars := e.baseEnv(name, extra)
	logPath := filepath.Join(e.t.TempDir(), fmt.Sprintf("%s-%d.log", name, time.Now().UnixNano()))
	logf, err := os.Create(logPath)
	if err != nil {
		e.t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(binDir, name))
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	for k, v := range vars {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		e.t.Fatalf("start %s: %v", name, err)
	}
	p := &proc{t: e.t, name: name, cmd: cmd, logPath: logPath, metricsAddr: vars["ORGS_METRICS_ADDR"], done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	e.mu.Lock()
	e.procs = append(e.procs, p)
	e.mu.Unlock()
	p.waitReady()
	return p
}

func (p *proc) waitReady() {
	p.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	url := "http://" + p.metricsAddr + "/readyz"
	c := &http.Client{Timeout: time.Second}
	for {
		resp, err := c.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case <-p.done:
			p.dumpLog()
			p.t.Fatalf("%s exited before it was ready: %v", p.name, p.err)
		default:
		}
		if time.Now().After(deadline) {
			p.dumpLog()
			p.t.Fatalf("%s not ready within 20s", p.name)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// stop sends SIGTERM and waits (SIGKILL after 10 s).
func (p *proc) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		p.t.Errorf("%s did not stop within 10s of SIGTERM", p.name)
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// kill sends SIGKILL and waits for the process to go.
func (p *proc) kill() {
	_ = p.cmd.Process.Kill()
	<-p.done
}

// dumpLog prints the last lines of the process's log.
func (p *proc) dumpLog() {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		p.t.Logf("%s log: %v", p.name, err)
		return
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > 80 {
		lines = lines[len(lines)-80:]
	}
	p.t.Logf("--- %s log (%s), last %d lines ---\n%s", p.name, filepath.Base(p.logPath), len(lines), strings.Join(lines, "\n"))
}

// logContains reports whether the process's log has a line containing s.
func (p *proc) logContains(s string) bool {
	f, err := os.Open(p.logPath)
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if strings.Contains(sc.Text(), s) {
			return true
		}
	}
	return false
}

// caller is who sends a request.
type caller struct {
	bearer   string
	onBehalf string
}

var anon = caller{}

func svc() caller               { return caller{bearer: serviceKey} }
func as(userID string) caller   { return caller{bearer: serviceKey, onBehalf: userID} }
func session(tok string) caller { return caller{bearer: tok} }
func (c caller) String() string {
	return fmt.Sprintf("bearer=%t on-behalf-of=%q", c.bearer != "", c.onBehalf)
}

// res is a response with its body read.
type res struct {
	method, path string
	status       int
	body         []byte
	err          error
}

func (r res) String() string {
	if r.err != nil {
		return fmt.Sprintf("%s %s: %v", r.method, r.path, r.err)
	}
	return fmt.Sprintf("%s %s: %d %s", r.method, r.path, r.status, bytes.TrimSpace(r.body))
}

// code returns a problem's code.
func (r res) code() string {
	var p struct {
		Code string `json:"code"`
	}
	_ = json.Unmarshal(r.body, &p)
	return p.Code
}

func (r res) decode(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decode %s: %v", r, err)
	}
}

// try sends a request and returns the response or the transport error.
func (e *env) try(c caller, method, path string, body any) res {
	var rd io.Reader
	if body != nil {
		j, err := json.Marshal(body)
		if err != nil {
			e.t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	url := path
	if strings.HasPrefix(path, "/") {
		url = e.apiURL + path
	}
	r := res{method: method, path: path}
	req, err := http.NewRequestWithContext(e.ctx, method, url, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.bearer != "" {
		req.Header.Set("Authorization", "Bearer "+c.bearer)
	}
	if c.onBehalf != "" {
		req.Header.Set("On-Behalf-Of", c.onBehalf)
	}
	resp, err := e.client.Do(req)
	if err != nil {
		r.err = err
		return r
	}
	defer resp.Body.Close()
	r.status = resp.StatusCode
	r.body, r.err = io.ReadAll(resp.Body)
	return r
}

// do is try that fails the test unless the answer has status (and, for a problem, code).
func (e *env) do(c caller, method, path string, body any, status int, code string) res {
	e.t.Helper()
	r := e.try(c, method, path, body)
	if r.err != nil || r.status != status || (code != "" && r.code() != code) {
		e.t.Fatalf("%s as %s: want %d %s", r, c, status, code)
	}
	return r
}

type user struct {
	ID       string  `json:"id"`
	Email    string  `json:"email"`
	Name     string  `json:"name"`
	IsActive bool    `json:"is_active"`
	External *string `json:"external_id"`
}

type organization struct {
	ID       string          `json:"id"`
	Name     string          `json:"name"`
	Slug     string          `json:"slug"`
	IsActive bool            `json:"is_active"`
	OwnerID  string          `json:"owner_id"`
	Metadata json.RawMessage `json:"metadata"`
}

type invitation struct {
	ID             string `json:"id"`
	OrganizationID string `json:"organization_id"`
	Email          string `json:"email"`
	UserID         string `json:"user_id"`
	Status         string `json:"status"`
}

type member struct {
	OrganizationID string      `json:"organization_id"`
	User           user        `json:"user"`
	IsAdmin        bool        `json:"is_admin"`
	Role           string      `json:"role"`
	Status         string      `json:"status"`
	Invitation     *invitation `json:"invitation"`
}

// newActiveUser creates an active user (the customer's own user model) via the service key.
func (e *env) newActiveUser(email, name string) user {
	e.t.Helper()
	r := e.try(svc(), "POST", "/v1/users", map[string]any{"email": email, "name": name, "is_active": true})
	if r.err != nil || (r.status != http.StatusCreated && r.status != http.StatusOK) {
		e.t.Fatalf("create user: %s", r)
	}
	var u user
	r.decode(e.t, &u)
	return u
}

// newOrg creates an organization owned by owner (On-Behalf-Of).
func (e *env) newOrg(ownerID, name string) organization {
	e.t.Helper()
	var o organization
	e.do(as(ownerID), "POST", "/v1/organizations", map[string]any{"name": name}, http.StatusCreated, "").decode(e.t, &o)
	return o
}

// invite adds email to org as actor and returns the pending member.
func (e *env) invite(actor caller, orgID, email string) member {
	e.t.Helper()
	var m member
	e.do(actor, "POST", "/v1/organizations/"+orgID+"/members", map[string]any{"email": email}, http.StatusCreated, "").decode(e.t, &m)
	return m
}

// mailTo waits until the sink has a message to addr (exactly, case-insensitively) with a
// subject containing subj (any if ""), and returns the newest such.
func (e *env) mailTo(addr string, n int, timeout time.Duration) []mailtest.Message {
	e.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		var got []mailtest.Message
		for _, m := range e.smtp.Messages() {
			for _, to := range m.To {
				if strings.EqualFold(to, addr) {
					got = append(got, m)
				}
			}
		}
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("waited %v for %d emails to %s: got %d (sink holds %d)", timeout, n, addr, len(got), e.smtp.Count())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// countMailTo returns how many messages to addr the sink holds.
func (e *env) countMailTo(addr string) int {
	n := 0
	for _, m := range e.smtp.Messages() {
		for _, to := range m.To {
			if strings.EqualFold(to, addr) {
				n++
			}
		}
	}
	return n
}

// link returns the activation link in a message (text part), split into user id and token.
func (e *env) link(m mailtest.Message) (url, userID, tok string) {
	e.t.Helper()
	prefix := e.apiURL + "/activate/"
	url = mailtest.FindLink(m.Text, prefix)
	if url == "" {
		e.t.Fatalf("no link starting with %s in email %q:\n%s", prefix, m.Subject, m.Text)
	}
	parts := strings.Split(strings.TrimPrefix(url, prefix), "/")
	if len(parts) != 2 {
		e.t.Fatalf("link %s: want %s{user_id}/{token}", url, prefix)
	}
	return url, parts[0], parts[1]
}

// streamEvents reads every message now in the ORGS_EVENTS stream, in stream order.
func streamEvents(t testing.TB, js jetstream.JetStream) []orgsevents.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := js.Stream(ctx, orgsevents.StreamName)
	if err != nil {
		t.Fatalf("stream: %v", err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatalf("stream info: %v", err)
	}
	var out []orgsevents.Event
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		msg, err := st.GetMsg(ctx, seq)
		if err != nil {
			t.Fatalf("get message %d: %v", seq, err)
		}
		if err := eventstest.ValidateEvent(msg.Data); err != nil {
			t.Errorf("stream message %d: %v\n%s", seq, err, msg.Data)
		}
		ev, err := orgsevents.Parse(msg.Data)
		if err != nil {
			t.Fatalf("stream message %d: %v", seq, err)
		}
		if id := msg.Header.Get("Nats-Msg-Id"); id != ev.ID {
			t.Errorf("stream message %d: Nats-Msg-Id %q, want the event id %q", seq, id, ev.ID)
		}
		if want := orgsevents.Subject(ev.Type); msg.Subject != want {
			t.Errorf("stream message %d: subject %q, want %q", seq, msg.Subject, want)
		}
		out = append(out, ev)
	}
	return out
}

// waitStream waits until cond holds for the stream's events and returns them.
func waitStream(t testing.TB, js jetstream.JetStream, timeout time.Duration, what string, cond func([]orgsevents.Event) bool) []orgsevents.Event {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		evs := streamEvents(t, js)
		if cond(evs) {
			return evs
		}
		if time.Now().After(deadline) {
			t.Fatalf("waited %v for %s; the stream holds %d events", timeout, what, len(evs))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// replay reads GET /v1/events from after=0 to the end.
func (e *env) replay() []json.RawMessage {
	e.t.Helper()
	var all []json.RawMessage
	after := int64(0)
	for {
		var page struct {
			Items     []json.RawMessage `json:"items"`
			NextAfter int64             `json:"next_after"`
		}
		e.do(svc(), "GET", fmt.Sprintf("/v1/events?after=%d&limit=200", after), nil, http.StatusOK, "").decode(e.t, &page)
		all = append(all, page.Items...)
		if len(page.Items) == 0 {
			return all
		}
		after = page.NextAfter
	}
}

// activation is the answer of POST /v1/activation/{user_id}/{token}.
type activation struct {
	User    user `json:"user"`
	Session struct {
		Token     string    `json:"token"`
		ExpiresAt time.Time `json:"expires_at"`
	} `json:"session"`
}

// bugActivationJSON is set once POST /v1/activation/{user_id}/{token} answered 404
// token_invalid for a link that GET accepts (see TestFlows/json_activation).
var bugActivationJSON atomic.Bool

const bugActivationJSONText = "BUG: POST /v1/activation/{user_id}/{token} answers 404 token_invalid for a valid link: " +
	"internal/httpapi/activation.go:104-105 activateInput embeds the unexported activationPath, which huma skips, so " +
	"UserID and Token are empty. Fix: export the embedded type (ActivationPath) or declare the path fields in activateInput"

// activate activates userID with tok and password (and name, if not "") through the
// JSON API. While bugActivationJSON stands it falls back to the built-in page and a
// POST /v1/sessions, so the rest of a flow is still tested.
func (e *env) activate(uid, email, tok, pw, name string) activation {
	e.t.Helper()
	body := map[string]any{"password": pw}
	if name != "" {
		body["name"] = name
	}
	path := "/v1/activation/" + uid + "/" + tok
	r := e.try(anon, "POST", path, body)
	if r.err == nil && r.status == http.StatusOK {
		var a activation
		r.decode(e.t, &a)
		return a
	}
	if r.status == http.StatusNotFound && r.code() == "token_invalid" && e.try(anon, "GET", path, nil).status == http.StatusOK {
		bugActivationJSON.Store(true)
		e.t.Logf("%s; activating through the built-in page instead", bugActivationJSONText)
		e.activateViaPage(uid, tok, pw, name)
		var s struct {
			Token     string    `json:"token"`
			ExpiresAt time.Time `json:"expires_at"`
			User      user      `json:"user"`
		}
		e.do(anon, "POST", "/v1/sessions", map[string]any{"email": email, "password": pw}, http.StatusCreated, "").decode(e.t, &s)
		a := activation{User: s.User}
		a.Session.Token, a.Session.ExpiresAt = s.Token, s.ExpiresAt
		return a
	}
	e.t.Fatalf("%s: want 200", r)
	return activation{}
}

var csrfRE = regexp.MustCompile(`name="csrf_token" value="([^"]+)"`)

// activateViaPage fills in the built-in activation page as a browser without JavaScript
// would: GET the form (CSRF cookie and field), POST it.
func (e *env) activateViaPage(uid, tok, pw, name string) {
	e.t.Helper()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: 15 * time.Second}
	url := e.apiURL + "/activate/" + uid + "/" + tok
	resp, err := c.Get(url)
	if err != nil {
		e.t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := csrfRE.FindSubmatch(page)
	if resp.StatusCode != http.StatusOK || m == nil {
		e.t.Fatalf("GET %s: %d without a CSRF field:\n%s", url, resp.StatusCode, page)
	}
	form := neturl.Values{"csrf_token": {string(m[1])}, "name": {name}, "password": {pw}, "password_confirmation": {pw}}
	resp, err = c.PostForm(url, form)
	if err != nil {
		e.t.Fatal(err)
	}
	page, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(page), "Your account is ready") {
		e.t.Fatalf("POST %s: %d, want 200 with the success page:\n%s", url, resp.StatusCode, page)
	}
}

// bugUserStatus is set once GET /v1/me or GET /v1/users/{id} answered 500.
var bugUserStatus atomic.Bool

const bugUserStatusText = "BUG: GET /v1/me and GET /v1/users/{user_id} answer 500 (handler panics: \"invalid WriteHeader code 0\"): " +
	"userOutput (internal/httpapi/session.go:76) has a Status field that getMe (session.go:90) and getUser (user.go:81) leave 0. " +
	"Fix: set Status: http.StatusOK there (or drop the field and have upsertUser use a separate output type)"

// me returns GET /v1/me for a session. While bugUserStatus stands it proves the session
// with GET /v1/organizations instead and returns ok false.
func (e *env) me(tok string) (u user, ok bool) {
	e.t.Helper()
	r := e.try(session(tok), "GET", "/v1/me", nil)
	if r.err == nil && r.status == http.StatusInternalServerError {
		bugUserStatus.Store(true)
		e.t.Log(bugUserStatusText)
		e.do(session(tok), "GET", "/v1/organizations", nil, http.StatusOK, "")
		return user{}, false
	}
	if r.err != nil || r.status != http.StatusOK {
		e.t.Fatalf("%s: want 200", r)
	}
	r.decode(e.t, &u)
	return u, true
}
