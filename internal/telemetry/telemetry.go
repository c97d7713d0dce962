// Package telemetry builds what every orgs process uses to be observed: the zerolog
// logger, the Prometheus registry with the build and runtime metrics, the HTTP metrics,
// the slog bridge River needs, and the ops server for /metrics, /healthz and /readyz.
// Nothing here is global: run builds the values and passes them down.
package telemetry

import (
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/rs/zerolog"

	"github.com/orgs-dev/orgs/internal/config"
)

// NewLogger returns a logger writing to w at cfg.Level, as JSON lines or, with format
// console, in zerolog's human-readable form. Every event carries a timestamp.
func NewLogger(w io.Writer, cfg config.Log) (zerolog.Logger, error) {
	level := zerolog.InfoLevel
	if cfg.Level != "" {
		l, err := zerolog.ParseLevel(cfg.Level)
		if err != nil {
			return zerolog.Nop(), fmt.Errorf("log level %q: %w", cfg.Level, err)
		}
		level = l
	}
	switch cfg.Format {
	case "", "json":
	case "console":
		w = zerolog.ConsoleWriter{Out: w, TimeFormat: time.RFC3339}
	default:
		return zerolog.Nop(), fmt.Errorf("log format %q is neither json nor console", cfg.Format)
	}
	return zerolog.New(w).Level(level).With().Timestamp().Logger(), nil
}

// SlogHandler returns a slog.Handler that writes through logger, for libraries that want
// a *slog.Logger (River): slog.New(telemetry.SlogHandler(logger)). Levels map onto
// zerolog's, and the logger's level applies.
func SlogHandler(logger zerolog.Logger) slog.Handler {
	return zerolog.NewSlogHandler(logger)
}
