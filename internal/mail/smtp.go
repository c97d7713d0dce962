package mail

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"time"

	gomail "github.com/wneessen/go-mail"
	"github.com/wneessen/go-mail/smtp"
)

// defaultSMTPTimeout bounds dialing and each SMTP exchange when the URL sets no timeout.
const defaultSMTPTimeout = 15 * time.Second

// smtpTransport keeps up to poolSize SMTP connections open across sends (default 4, the
// URL's pool parameter). Opening a connection costs a TCP and often a TLS handshake plus
// EHLO and AUTH, several round trips per email; reusing them also keeps us under
// providers' connection-rate limits, and a few in parallel let one mailer keep up with
// a backlog (each connection carries one SMTP transaction at a time).
type smtpTransport struct {
	client  *gomail.Client // configuration only; connections are held in the pool
	timeout time.Duration

	slots chan struct{}     // one per connection that may be in use
	idle  chan *smtp.Client // open connections not in use
}

// defaultPoolSize is the number of SMTP connections a mailer may hold open.
const defaultPoolSize = 4

func newSMTPTransport(u *url.URL) (*smtpTransport, error) {
	host := u.Hostname()
	if host == "" {
		return nil, fmt.Errorf("parse mail URL: %s:// needs a host", u.Scheme)
	}
	if u.Path != "" && u.Path != "/" {
		return nil, fmt.Errorf("parse mail URL: %s:// takes no path", u.Scheme)
	}

	implicitTLS := u.Scheme == "smtps"
	port := gomail.DefaultPort
	if implicitTLS {
		port = gomail.DefaultPortSSL
	}
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return nil, fmt.Errorf("parse mail URL: invalid port %q", p)
		}
		port = n
	}

	timeout := defaultSMTPTimeout
	poolSize := defaultPoolSize
	policy := gomail.TLSOpportunistic
	tlsConfig := &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
	authType := gomail.SMTPAuthAutoDiscover
	for key, values := range u.Query() {
		v := values[len(values)-1]
		var err error
		switch key {
		case "starttls":
			var on bool
			if on, err = strconv.ParseBool(v); err == nil {
				policy = gomail.NoTLS
				if on {
					policy = gomail.TLSMandatory
				}
			}
		case "insecure_skip_verify":
			tlsConfig.InsecureSkipVerify, err = strconv.ParseBool(v)
		case "timeout":
			timeout, err = time.ParseDuration(v)
			if err == nil && timeout <= 0 {
				err = errors.New("must be positive")
			}
		case "auth":
			err = authType.UnmarshalString(v)
		case "pool":
			poolSize, err = strconv.Atoi(v)
			if err == nil && (poolSize < 1 || poolSize > 100) {
				err = errors.New("must be 1 to 100")
			}
		default:
			// Reject unknown parameters: a misspelt "startls=true" would otherwise
			// silently send in the clear.
			return nil, fmt.Errorf("parse mail URL: unknown parameter %q", key)
		}
		if err != nil {
			return nil, fmt.Errorf("parse mail URL: parameter %s=%q: %w", key, v, err)
		}
	}

	opts := []gomail.Option{
		gomail.WithPort(port),
		gomail.WithTimeout(timeout),
		gomail.WithTLSConfig(tlsConfig),
		gomail.WithTLSPolicy(policy),
	}
	if implicitTLS {
		opts = append(opts, gomail.WithSSL())
	}
	if u.User != nil {
		pass, _ := u.User.Password()
		opts = append(opts,
			gomail.WithSMTPAuth(authType),
			gomail.WithUsername(u.User.Username()),
			gomail.WithPassword(pass),
		)
	}
	client, err := gomail.NewClient(host, opts...)
	if err != nil {
		return nil, fmt.Errorf("configure smtp client: %w", err)
	}
	return &smtpTransport{
		client: client, timeout: timeout,
		slots: make(chan struct{}, poolSize), idle: make(chan *smtp.Client, poolSize),
	}, nil
}

// send delivers msg over an open connection of the pool, dialing one first if none is
// idle. If a reused connection turns out to be dead (the server closed it while idle),
// it redials once: that failure happens before MAIL FROM, so nothing can have been
// accepted and the message cannot be sent twice.
func (t *smtpTransport) send(ctx context.Context, msg *gomail.Msg, _ Email) error {
	select {
	case t.slots <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("wait for an smtp connection: %w", ctx.Err())
	}
	defer func() { <-t.slots }()

	var conn *smtp.Client
	select {
	case conn = <-t.idle:
	default:
	}
	for attempt := 0; ; attempt++ {
		reused := conn != nil
		if !reused {
			c, err := t.client.DialToSMTPClientWithContext(ctx)
			if err != nil {
				return fmt.Errorf("connect to smtp server: %w", err)
			}
			conn = c
		}
		// go-mail sets the connection deadline when dialing and after NOOP; an idle
		// connection would meet an expired deadline at its first command, so
		// start each transaction with a fresh one, shortened to ctx's deadline.
		if err := conn.UpdateDeadline(t.deadline(ctx)); err != nil {
			t.drop(conn)
			return fmt.Errorf("smtp connection deadline: %w", err)
		}

		err := t.client.SendWithSMTPClient(conn, msg)
		if err == nil {
			t.idle <- conn // never blocks: at most one connection per slot
			return nil
		}
		// After an error the session's state is uncertain (a half-written DATA, a
		// dropped socket); a new connection is cheap compared with debugging that.
		t.drop(conn)
		conn = nil
		if msg.IsDelivered() {
			// The server accepted the message and only the RSET after it failed.
			// Reporting that as an error would make the job send it again.
			return nil
		}
		if reused && attempt == 0 && beforeTransaction(err) && ctx.Err() == nil {
			continue
		}
		return err
	}
}

// deadline returns the timeout for the next exchange: the configured one, or less if
// ctx ends sooner. go-mail offers no way to interrupt a command in flight, so ctx
// bounds the exchange through the connection deadline instead.
func (t *smtpTransport) deadline(ctx context.Context) time.Duration {
	d := t.timeout
	if dl, ok := ctx.Deadline(); ok {
		if left := time.Until(dl); left < d {
			d = max(left, time.Millisecond)
		}
	}
	return d
}

// beforeTransaction reports whether err happened before the server could have accepted
// anything: the connection check (NOOP) or MAIL FROM failed without an SMTP reply, which
// means the connection was gone.
func beforeTransaction(err error) bool {
	var se *gomail.SendError
	if !errors.As(err, &se) || se.ErrorCode() != 0 {
		return false
	}
	return se.Reason == gomail.ErrConnCheck || se.Reason == gomail.ErrSMTPMailFrom
}

// drop closes a connection, politely if it still works.
func (t *smtpTransport) drop(conn *smtp.Client) {
	// QUIT may fail on a broken connection and then leaves the socket open, so
	// also close it; closing twice only returns an error we have no use for.
	_ = conn.UpdateDeadline(time.Second)
	_ = t.client.CloseWithSMTPClient(conn)
	_ = conn.Close()
}

// close closes the idle connections; call it after the last send.
func (t *smtpTransport) close() error {
	var errs []error
	for {
		select {
		case conn := <-t.idle:
			_ = conn.UpdateDeadline(t.timeout)
			if err := t.client.CloseWithSMTPClient(conn); err != nil {
				errs = append(errs, fmt.Errorf("close smtp connection: %w", err))
			}
			_ = conn.Close()
		default:
			return errors.Join(errs...)
		}
	}
}
