package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"sync/atomic"
	"time"

	"github.com/emersion/go-smtp"
)

// runSink serves SMTP on -addr, accepting and dropping every message, until ctx ends; it
// prints how many it took. It stands in for the mail provider when orgs is measured.
func runSink(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("orgsload sink", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:2525", "the address to serve SMTP on")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	var messages atomic.Int64
	srv := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) {
		return &sinkSession{messages: &messages}, nil
	}))
	srv.Domain = "localhost"
	srv.ReadTimeout, srv.WriteTimeout = time.Minute, time.Minute
	srv.MaxMessageBytes = 10 << 20
	fmt.Fprintf(stdout, "orgsload sink: SMTP on %s\n", ln.Addr())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case <-ctx.Done():
		_ = srv.Close()
		<-errc
		fmt.Fprintf(stdout, "orgsload sink: %d messages\n", messages.Load())
		return nil
	case err := <-errc:
		return err
	}
}

type sinkSession struct{ messages *atomic.Int64 }

func (s *sinkSession) Mail(string, *smtp.MailOptions) error { return nil }
func (s *sinkSession) Rcpt(string, *smtp.RcptOptions) error { return nil }
func (s *sinkSession) Reset()                               {}
func (s *sinkSession) Logout() error                        { return nil }

func (s *sinkSession) Data(r io.Reader) error {
	if _, err := io.Copy(io.Discard, r); err != nil {
		return err
	}
	s.messages.Add(1)
	return nil
}
