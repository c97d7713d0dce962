package telemetry

import (
	"context"
	"errors"
	"net"
	"net/http"
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
