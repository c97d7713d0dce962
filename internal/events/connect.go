package events

import (
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
)

// Connect connects to the NATS servers in url (comma separated) as name, and returns the
// connection and a JetStream context set up for the relay. It does not wait for a server:
// the connection keeps retrying in the background (forever, also after later
// disconnects), so a process starts while NATS is down and Ready tells when it is up.
func Connect(url, name string, logger zerolog.Logger) (*nats.Conn, jetstream.JetStream, error) {
	log := logger.With().Str("component", "nats").Logger()
	nc, err := nats.Connect(url,
		nats.Name(name),
		nats.RetryOnFailedConnect(true),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(500*time.Millisecond),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn().Err(err).Msg("nats disconnected")
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Info().Str("url", nc.ConnectedUrlRedacted()).Msg("nats reconnected")
		}),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			log.Warn().Err(err).Msg("nats")
		}),
	)
	if err != nil {
		return nil, nil, fmt.Errorf("connect to nats: %w", err)
	}
	js, err := jetstream.New(nc,
		// The relay publishes at most one batch (RelayConfig.BatchSize) at a time.
		jetstream.WithPublishAsyncMaxPending(4000),
		jetstream.WithPublishAsyncTimeout(10*time.Second),
	)
	if err != nil {
		nc.Close()
		return nil, nil, fmt.Errorf("jetstream: %w", err)
	}
	return nc, js, nil
}

// Ready returns an error unless nc is connected to a server: a readiness check.
func Ready(nc *nats.Conn) error {
	if s := nc.Status(); s != nats.CONNECTED {
		return fmt.Errorf("nats: %w (%s)", errNotConnected, s)
	}
	return nil
}

var errNotConnected = errors.New("not connected")
