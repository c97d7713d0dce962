// Package mailtest runs a real SMTP server in tests: it accepts mail on 127.0.0.1, keeps
// every accepted message, and can be told to refuse messages or to drop connections, so
// that tests exercise the real SMTP client code, its retries and its error handling.
package mailtest

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"math/big"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net"
	netmail "net/mail"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// Message is a message the server accepted.
type Message struct {
	// From and To are the envelope sender and recipients (MAIL FROM, RCPT TO).
	From string
	To   []string
	// AuthUser is the user name the client authenticated as, if it did.
	AuthUser string
	// Raw is the message as received.
	Raw []byte
	// Header is the parsed header. Subject is decoded (RFC 2047); Text and HTML are
	// the decoded text/plain and text/html parts (or the whole body of a
	// single-part message).
	Header      netmail.Header
	Subject     string
	Text, HTML  string
	ContentType string // the top-level media type, such as "multipart/alternative"
	ParseError  error  // set if Raw could not be parsed; the other views are partial
}

// Server is an SMTP server for tests. Its methods are safe for concurrent use.
type Server struct {
	smtp   *smtp.Server
	addr   string
	scheme string

	mu       sync.Mutex
	changed  chan struct{} // closed and replaced whenever messages change
	messages []Message
	conns    map[net.Conn]struct{}
	accepted int // connections ever accepted
	failN    int
	failCode int
	user     string // when set, AUTH must use user and pass
	pass     string
}

// Option configures a Server.
type Option func(*options)

type options struct {
	startTLS, implicitTLS bool
}

// WithSTARTTLS makes the server offer STARTTLS with a self-signed certificate, so
// clients must skip verification (insecure_skip_verify=true).
func WithSTARTTLS() Option { return func(o *options) { o.startTLS = true } }

// WithImplicitTLS makes the server speak TLS from the first byte (smtps://) with a
// self-signed certificate.
func WithImplicitTLS() Option { return func(o *options) { o.implicitTLS = true } }

// NewServer starts a server on 127.0.0.1 with a random port and closes it when the test
// ends. It offers AUTH PLAIN, also without TLS, and accepts any credentials unless
// [Server.RequireAuth] is called; clients that do not authenticate are accepted too.
func NewServer(t testing.TB, opts ...Option) *Server {
	t.Helper()
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	var ln net.Listener
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("mailtest: listen: %v", err)
	}
	s := &Server{
		addr:    ln.Addr().String(),
		scheme:  "smtp",
		changed: make(chan struct{}),
		conns:   make(map[net.Conn]struct{}),
	}
	s.smtp = smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		return &session{srv: s}, nil
	}))
	s.smtp.Domain = "localhost"
	s.smtp.AllowInsecureAuth = true
	s.smtp.ReadTimeout = 30 * time.Second
	s.smtp.WriteTimeout = 30 * time.Second
	s.smtp.MaxMessageBytes = 10 << 20

	// Track connections below TLS, so that DropConnections cuts the socket.
	ln = &listener{Listener: ln, srv: s}
	if o.startTLS || o.implicitTLS {
		cfg := selfSignedTLS(t)
		if o.startTLS {
			s.smtp.TLSConfig = cfg
		}
		if o.implicitTLS {
			ln = tls.NewListener(ln, cfg)
			s.scheme = "smtps"
		}
	}

	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := s.smtp.Serve(ln); err != nil && !errors.Is(err, smtp.ErrServerClosed) {
			t.Errorf("mailtest: serve: %v", err)
		}
	}()
	t.Cleanup(func() {
		s.smtp.Close()
		<-done
	})
	return s
}

// selfSignedTLS returns a server configuration with a fresh certificate for 127.0.0.1.
func selfSignedTLS(t testing.TB) *tls.Config {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("mailtest: generate key: %v", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "mailtest"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:     []string{"localhost"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatalf("mailtest: create certificate: %v", err)
	}
	return &tls.Config{
		Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}},
		MinVersion:   tls.VersionTLS12,
	}
}

// URL returns the server's address as a mail URL: smtp://127.0.0.1:port, or smtps://
// with [WithImplicitTLS].
func (s *Server) URL() string { return s.scheme + "://" + s.addr }

// Addr returns the server's host:port.
func (s *Server) Addr() string { return s.addr }

// RequireAuth makes the server accept only user and pass in AUTH. Clients that do not
// authenticate are then refused at MAIL FROM.
func (s *Server) RequireAuth(user, pass string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.user, s.pass = user, pass
}

// FailNext makes the next n messages fail at the end of DATA with the given SMTP reply
// code: 4xx for a temporary failure (451), 5xx for a permanent one (550).
func (s *Server) FailNext(n, code int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failN, s.failCode = n, code
}

// Messages returns the messages accepted so far, in order.
func (s *Server) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Message(nil), s.messages...)
}

// Count returns how many messages the server has accepted.
func (s *Server) Count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.messages)
}

// Connections returns how many connections the server has accepted since it started.
func (s *Server) Connections() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.accepted
}

// DropConnections closes every open client connection without a reply, as a restarted
// server or an idle timeout would. The server keeps listening.
func (s *Server) DropConnections() {
	s.mu.Lock()
	conns := make([]net.Conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
}

// WaitFor waits until the server has accepted at least n messages and returns them all.
// It fails the test if that takes longer than timeout.
func (s *Server) WaitFor(t testing.TB, n int, timeout time.Duration) []Message {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		s.mu.Lock()
		got, changed := len(s.messages), s.changed
		if got >= n {
			msgs := append([]Message(nil), s.messages...)
			s.mu.Unlock()
			return msgs
		}
		s.mu.Unlock()
		select {
		case <-changed:
		case <-deadline.C:
			t.Fatalf("mailtest: waited %v for messages: got %d, want at least %d", timeout, got, n)
			return nil
		}
	}
}

// FindLink returns the first URL in body that begins with prefix, or "". The URL ends
// at white space, a quote or an angle bracket; trailing sentence punctuation is dropped.
// It is meant for text bodies: in HTML, "&" appears as "&amp;".
func FindLink(body, prefix string) string {
	i := strings.Index(body, prefix)
	if i < 0 {
		return ""
	}
	link := body[i:]
	if end := strings.IndexAny(link, " \t\r\n\"'<>"); end >= 0 {
		link = link[:end]
	}
	return strings.TrimRight(link, ".,;:!?)")
}

func (s *Server) accept(m Message) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failN > 0 {
		s.failN--
		return &smtp.SMTPError{
			Code:         s.failCode,
			EnhancedCode: smtp.EnhancedCodeNotSet,
			Message:      "mailtest: simulated failure",
		}
	}
	s.messages = append(s.messages, m)
	close(s.changed)
	s.changed = make(chan struct{})
	return nil
}

// listener tracks connections so that tests can count and drop them.
type listener struct {
	net.Listener
	srv *Server
}

func (l *listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	tc := &trackedConn{Conn: c, srv: l.srv}
	l.srv.mu.Lock()
	l.srv.accepted++
	l.srv.conns[tc] = struct{}{}
	l.srv.mu.Unlock()
	return tc, nil
}

type trackedConn struct {
	net.Conn
	srv *Server
}

func (c *trackedConn) Close() error {
	c.srv.mu.Lock()
	delete(c.srv.conns, c)
	c.srv.mu.Unlock()
	return c.Conn.Close()
}

// session is one SMTP connection's state.
type session struct {
	srv      *Server
	authUser string
	from     string
	to       []string
}

var _ smtp.AuthSession = (*session)(nil)

func (s *session) AuthMechanisms() []string { return []string{sasl.Plain} }

func (s *session) Auth(mech string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, user, pass string) error {
		s.srv.mu.Lock()
		wantUser, wantPass := s.srv.user, s.srv.pass
		s.srv.mu.Unlock()
		if wantUser != "" && (user != wantUser || pass != wantPass) {
			return &smtp.SMTPError{Code: 535, EnhancedCode: smtp.EnhancedCode{5, 7, 8}, Message: "invalid credentials"}
		}
		s.authUser = user
		return nil
	}), nil
}

func (s *session) Mail(from string, _ *smtp.MailOptions) error {
	s.srv.mu.Lock()
	required := s.srv.user != ""
	s.srv.mu.Unlock()
	if required && s.authUser == "" {
		return smtp.ErrAuthRequired
	}
	s.from = from
	return nil
}

func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.to = append(s.to, to)
	return nil
}

func (s *session) Data(r io.Reader) error {
	raw, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	m := Parse(raw)
	m.From, m.To, m.AuthUser = s.from, append([]string(nil), s.to...), s.authUser
	return s.srv.accept(m)
}

func (s *session) Reset() {
	s.from, s.to = "", nil
}

func (s *session) Logout() error { return nil }

// Parse parses a raw RFC 5322 message into a Message's header, subject and bodies. It
// understands single-part text and multipart/alternative or multipart/mixed (one level
// deep, nested alternatives included) with quoted-printable or base64 parts. Tests can
// use it on .eml files too.
func Parse(raw []byte) Message {
	m := Message{Raw: raw}
	msg, err := netmail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		m.ParseError = fmt.Errorf("read message: %w", err)
		return m
	}
	m.Header = msg.Header
	var dec mime.WordDecoder
	if m.Subject, err = dec.DecodeHeader(msg.Header.Get("Subject")); err != nil {
		m.ParseError = fmt.Errorf("decode subject: %w", err)
	}
	mediaType, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil {
		mediaType = "text/plain" // RFC 2045 default
	}
	m.ContentType = mediaType
	if err := m.readPart(mediaType, params, msg.Header.Get("Content-Transfer-Encoding"), msg.Body); err != nil && m.ParseError == nil {
		m.ParseError = err
	}
	return m
}

func (m *Message) readPart(mediaType string, params map[string]string, encoding string, body io.Reader) error {
	if strings.HasPrefix(mediaType, "multipart/") {
		mr := multipart.NewReader(body, params["boundary"])
		for {
			// NextRawPart leaves decoding to us, so base64 and quoted-printable
			// take the same path.
			p, err := mr.NextRawPart()
			if errors.Is(err, io.EOF) {
				return nil
			}
			if err != nil {
				return fmt.Errorf("read part: %w", err)
			}
			pt, pparams, err := mime.ParseMediaType(p.Header.Get("Content-Type"))
			if err != nil {
				pt = "text/plain"
			}
			if err := m.readPart(pt, pparams, p.Header.Get("Content-Transfer-Encoding"), p); err != nil {
				return err
			}
		}
	}

	var r io.Reader = body
	switch strings.ToLower(strings.TrimSpace(encoding)) {
	case "quoted-printable":
		r = quotedprintable.NewReader(body)
	case "base64":
		// The decoder skips the CRLFs that wrap base64 lines.
		r = base64.NewDecoder(base64.StdEncoding, body)
	}
	b, err := io.ReadAll(r)
	if err != nil {
		return fmt.Errorf("decode %s part: %w", mediaType, err)
	}
	switch mediaType {
	case "text/plain":
		if m.Text == "" {
			m.Text = string(b)
		}
	case "text/html":
		if m.HTML == "" {
			m.HTML = string(b)
		}
	}
	return nil
}
