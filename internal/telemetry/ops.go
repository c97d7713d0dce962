package telemetry

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rs/zerolog"
)

// readyTimeout bounds one readiness check.
const readyTimeout = 2 * time.Second

// OpsHandler serves GET /metrics from reg (when reg is not nil), GET /healthz (always 200
// "ok": the process is alive) and GET /readyz (200 "ok" when ready returns nil within 2 s,
// else 503 with the error's text). The api also mounts it on its API mux.
func OpsHandler(reg *prometheus.Registry, ready func(context.Context) error) http.Handler {
	mux := http.NewServeMux()
	if reg != nil {
		mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeText(w, http.StatusOK, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if ready != nil {
			ctx, cancel := context.WithTimeout(r.Context(), readyTimeout)
			defer cancel()
			if err := ready(ctx); err != nil {
				writeText(w, http.StatusServiceUnavailable, err.Error())
				return
			}
		}
		writeText(w, http.StatusOK, "ok")
	})
	return mux
}

// DependencyError is a readiness failure of one dependency.
type DependencyError struct {
	Dependency string // postgres, nats
	Err        error
}

func (e *DependencyError) Error() string {
	if msg := e.Err.Error(); strings.HasPrefix(msg, e.Dependency+":") {
		return msg
	}
	return e.Dependency + ": " + e.Err.Error()
}

func (e *DependencyError) Unwrap() error { return e.Err }

// Unready returns nil if err is nil, else err as a readiness failure of dependency.
func Unready(dependency string, err error) error {
	if err == nil {
		return nil
	}
	return &DependencyError{Dependency: dependency, Err: err}
}

// PublicReady wraps ready for a /readyz that anyone may call (the API's own port): its
// error says only which dependency is down ("postgres", from a DependencyError), never
// the driver's text (addresses, user names), which goes to logger instead.
func PublicReady(ready func(context.Context) error, logger zerolog.Logger) func(context.Context) error {
	if ready == nil {
		return nil
	}
	return func(ctx context.Context) error {
		err := ready(ctx)
		if err == nil {
			return nil
		}
		var de *DependencyError
		if !errors.As(err, &de) {
			logger.Warn().Err(err).Msg("not ready")
			return errors.New("not ready")
		}
		logger.Warn().Err(de.Err).Str("dependency", de.Dependency).Msg("not ready")
		return errors.New("not ready: " + de.Dependency)
	}
}

func writeText(w http.ResponseWriter, status int, text string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(text + "\n"))
}

// ServeOps serves OpsHandler(reg, ready) on addr until ctx is done, then shuts the server
// down gracefully (5 s at most). It returns an error only when the server fails.
func ServeOps(ctx context.Context, addr string, reg *prometheus.Registry, ready func(context.Context) error, logger zerolog.Logger) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	return serveOps(ctx, ln, reg, ready, logger)
}

func serveOps(ctx context.Context, ln net.Listener, reg *prometheus.Registry, ready func(context.Context) error, logger zerolog.Logger) error {
	srv := &http.Server{
		Handler:           OpsHandler(reg, ready),
		ReadHeaderTimeout: 5 * time.Second,
	}
	logger.Info().Str("addr", ln.Addr().String()).Msg("ops server listening")
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	err := srv.Shutdown(sctx)
	if serr := <-errc; serr != nil && !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	return err
}
