// Package eventstest runs an in-process NATS server with JetStream for tests.
package eventstest

import (
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// RunServer starts a NATS server with JetStream on a free port, storing in t.TempDir(),
// and shuts it down in t.Cleanup.
func RunServer(t testing.TB) *server.Server {
	t.Helper()
	return NewRestartableServer(t).Server()
}

// RestartableServer is an in-process NATS server that a test can stop and start again on
// the same port and store directory, to simulate a NATS outage.
type RestartableServer struct {
	t    testing.TB
	opts server.Options
	mu   sync.Mutex
	srv  *server.Server
}

// NewRestartableServer starts a server as RunServer does; t.Cleanup shuts it down.
func NewRestartableServer(t testing.TB) *RestartableServer {
	t.Helper()
	rs := &RestartableServer{t: t, opts: server.Options{
		Host:      "127.0.0.1",
		Port:      -1,
		JetStream: true,
		StoreDir:  t.TempDir(),
		NoSigs:    true,
		NoLog:     true,
	}}
	rs.Start()
	// Later starts reuse the port the first one got, so that clients reconnect.
	rs.opts.Port = rs.srv.Addr().(*net.TCPAddr).Port
	t.Cleanup(rs.Shutdown)
	return rs
}

// Start starts the server (again).
func (rs *RestartableServer) Start() {
	rs.t.Helper()
	rs.mu.Lock()
	defer rs.mu.Unlock()
	opts := rs.opts
	s, err := server.NewServer(&opts)
	if err != nil {
		rs.t.Fatalf("eventstest: new server: %v", err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		s.Shutdown()
		rs.t.Fatalf("eventstest: server not ready")
	}
	rs.srv = s
}

// Shutdown stops the server and waits until it has.
func (rs *RestartableServer) Shutdown() {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if rs.srv == nil {
		return
	}
	rs.srv.Shutdown()
	rs.srv.WaitForShutdown()
	rs.srv = nil
}

// Server returns the running server, nil while stopped.
func (rs *RestartableServer) Server() *server.Server {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	return rs.srv
}

// URL returns the client URL, also valid across restarts.
func (rs *RestartableServer) URL() string {
	return "nats://" + net.JoinHostPort(rs.opts.Host, strconv.Itoa(rs.opts.Port))
}

// Connect opens a client connection to url that reconnects forever, and a JetStream
// context on it; t.Cleanup drains the connection.
func Connect(t testing.TB, url string, opts ...jetstream.JetStreamOpt) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, err := nats.Connect(url, nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	if err != nil {
		t.Fatalf("eventstest: connect: %v", err)
	}
	t.Cleanup(func() {
		if err := nc.Drain(); err != nil {
			nc.Close()
			return
		}
		for deadline := time.Now().Add(5 * time.Second); !nc.IsClosed(); {
			if time.Now().After(deadline) {
				nc.Close()
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
	js, err := jetstream.New(nc, opts...)
	if err != nil {
		t.Fatalf("eventstest: jetstream: %v", err)
	}
	return nc, js
}
