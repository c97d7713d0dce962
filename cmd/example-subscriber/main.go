// Command example-subscriber prints every orgs domain event, one line each: a starting
// point for services that subscribe with package orgsevents.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/orgs-dev/orgs/orgsevents"
)

func main() {
	if err := run(context.Background(), os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintf(os.Stderr, "example-subscriber: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, getenv func(string) string, stdout, stderr io.Writer) error {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	url := getenv("ORGS_NATS_URL")
	if url == "" {
		url = nats.DefaultURL
	}
	nc, err := nats.Connect(url, nats.Name("example-subscriber"), nats.MaxReconnects(-1))
	if err != nil {
		return fmt.Errorf("connect to nats: %w", err)
	}
	// Drain after Subscribe has stopped its consumer.
	defer nc.Drain()
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	logger := zerolog.New(stderr).With().Timestamp().Logger()
	return orgsevents.Subscribe(ctx, js, orgsevents.Config{Durable: "example", Logger: logger},
		func(_ context.Context, ev orgsevents.Event) error {
			_, err := fmt.Fprintf(stdout, "%d %s %s subject=%s id=%s data=%s\n",
				ev.Seq, ev.Time.Format("2006-01-02T15:04:05.000Z07:00"), ev.Type, ev.Subject, ev.ID, ev.Data)
			return err
		})
}
