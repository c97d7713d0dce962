package httpapi

import (
	"context"
	"crypto/rand"
	"fmt"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/orgs-dev/orgs/internal/domain"
	"github.com/orgs-dev/orgs/internal/telemetry"
)

// maxBodyBytes is the largest request body accepted (1 MiB), as huma's default
// Operation.MaxBodyBytes; the body-limit middleware enforces it for every handler.
const maxBodyBytes = 1 << 20

// requestInfo is what the middleware knows about a request, shared through its context
// between the outer middleware and the code nearer the mux.
type requestInfo struct {
	id    string // X-Request-Id
	path  string // the request path, the problem's instance
	route string // the matched ServeMux pattern, set once the mux has dispatched
}

type infoKey struct{}

func infoFrom(ctx context.Context) *requestInfo {
	info, _ := ctx.Value(infoKey{}).(*requestInfo)
	return info
}

// middleware wraps the API mux in the shared layers, outermost first:
//
//   - observe: request id, request logger in the context, access log, metrics, panic
//     recovery, body limit;
//   - auth: the bearer token becomes a domain.Actor (a present but invalid one is 401);
//   - idempotency (when store is not nil): Idempotency-Key on POST;
//   - routes: records the matched pattern and answers unmatched requests (404, 405) with
//     problems.
//
// metrics may be nil.
func middleware(mux *http.ServeMux, logger zerolog.Logger, metrics *telemetry.HTTPMetrics, auth *Authenticator, store idempotencyStore, sealer *Sealer) http.Handler {
	var h http.Handler = routes(mux)
	if store != nil {
		h = idempotency(store, sealer, h)
	}
	if auth != nil {
		h = auth.middleware(h)
	}
	return observe(logger, metrics, h)
}

// validRequestID reports whether an incoming X-Request-Id is safe to adopt: 1 to 128
// characters of letters, digits and -_.:
func validRequestID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_', c == '.', c == ':':
		default:
			return false
		}
	}
	return true
}

// quietPaths are logged at debug: probes and scrapes would drown the access log.
var quietPaths = map[string]bool{"/healthz": true, "/readyz": true, "/metrics": true}

// observe gives each request an id (a sane incoming X-Request-Id, else a new one, echoed
// back), a logger with request_id, method and client_ip (route is added once known) in its
// context, one access log line, the HTTP metrics, a 1 MiB body limit and panic recovery
// into a 500 problem.
func observe(logger zerolog.Logger, metrics *telemetry.HTTPMetrics, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		id := r.Header.Get("X-Request-Id")
		if !validRequestID(id) {
			id = rand.Text()
		}
		w.Header().Set("X-Request-Id", id)
		info := &requestInfo{id: id, path: r.URL.Path}
		l := logger.With().Str("request_id", id).Str("method", r.Method).
			Str("client_ip", clientIPField(r)). // the client as the trusted proxies name it
			Logger()
		ctx := context.WithValue(l.WithContext(r.Context()), infoKey{}, info)
		r = r.WithContext(ctx)
		if r.Body != nil && r.Body != http.NoBody {
			r.Body = http.MaxBytesReader(w, r.Body, maxBodyBytes)
		}
		sw := &statusWriter{ResponseWriter: w}

		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				l.Error().Str("panic", fmt.Sprint(p)).Bytes("stack", debug.Stack()).Msg("handler panicked")
				if !sw.wroteHeader {
					writeProblemValue(sw, r, newProblem(http.StatusInternalServerError, "internal_error", "internal error"))
				} else {
					// The response is under way: all we can do is cut it short.
					sw.status = http.StatusInternalServerError
				}
			}
			status := sw.status
			if status == 0 {
				status = http.StatusOK
			}
			route := info.route
			if route == "" {
				route = "unmatched"
			}
			elapsed := time.Since(start)
			if metrics != nil {
				method := metricMethod(r.Method)
				metrics.Requests.WithLabelValues(method, route, strconv.Itoa(status)).Inc()
				metrics.Duration.WithLabelValues(method, route).Observe(elapsed.Seconds())
			}
			level := zerolog.InfoLevel
			if quietPaths[r.URL.Path] {
				level = zerolog.DebugLevel
			}
			l.WithLevel(level).
				Str("route", route).
				Str("path", loggablePath(r.URL.Path)).
				Int("status", status).
				Int64("bytes", sw.bytes).
				Dur("duration", elapsed).
				Msg("request")
		}()
		next.ServeHTTP(sw, r)
	})
}

// metricMethod bounds the method label: clients may send any token as a method.
func metricMethod(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions:
		return m
	}
	return "OTHER"
}

// routes serves mux, records the pattern it matched (r.Pattern, which ServeMux sets on
// the very request it dispatches) for the outer middleware, and turns the mux's plain
// text 404 and 405 for unmatched requests into problems.
func routes(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		uw := &unmatchedWriter{ResponseWriter: w, r: r}
		mux.ServeHTTP(uw, r)
		if info := infoFrom(r.Context()); info != nil && r.Pattern != "" {
			info.route = r.Pattern
		}
	})
}

// unmatchedWriter replaces the body of ServeMux's own 404 and 405 answers (those sent
// while no pattern matched) with a problem; the Allow header of a 405 stays.
type unmatchedWriter struct {
	http.ResponseWriter
	r           *http.Request
	intercepted bool
}

func (w *unmatchedWriter) WriteHeader(code int) {
	if w.r.Pattern == "" && (code == http.StatusNotFound || code == http.StatusMethodNotAllowed) {
		w.intercepted = true
		detail := domain.ErrNotFound.Error()
		if code == http.StatusMethodNotAllowed {
			detail = "the method is not allowed for this path"
		}
		writeProblemValue(w.ResponseWriter, w.r, newProblem(code, "", detail))
		return
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *unmatchedWriter) Write(b []byte) (int, error) {
	if w.intercepted {
		return len(b), nil
	}
	return w.ResponseWriter.Write(b)
}

func (w *unmatchedWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// statusWriter records the status and the number of body bytes written.
type statusWriter struct {
	http.ResponseWriter
	status      int
	bytes       int64
	wroteHeader bool
}

func (w *statusWriter) WriteHeader(code int) {
	if code == 0 { // huma writes 0 for some errors it builds itself (405)
		code = http.StatusOK
	}
	if !w.wroteHeader && code >= 200 {
		w.status, w.wroteHeader = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if !w.wroteHeader {
		w.status, w.wroteHeader = http.StatusOK, true
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += int64(n)
	return n, err
}

// Flush lets streaming handlers flush through the wrapper.
func (w *statusWriter) Flush() {
	if !w.wroteHeader {
		w.status, w.wroteHeader = http.StatusOK, true
	}
	_ = http.NewResponseController(w.ResponseWriter).Flush()
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// loggablePath is the request path for the access log, with the activation token of an
// activation path replaced: tokens never go to a log. It goes by the path's shape, not by
// the route that answered, since many answers come before routing or without it (a 401
// from auth, an idempotency replay, a 404 or 405, a panic): after a segment "activate" or
// "activation" (in any case) and the user id that follows it, every segment is replaced
// but a final "decline". Empty segments are skipped, as the mux's path cleaning would.
func loggablePath(path string) string {
	parts := strings.Split(path, "/")
	at := -1  // the index of the activate/activation segment
	seen := 0 // non-empty segments after it
	redacted := false
	for i, p := range parts {
		if p == "" {
			continue
		}
		if at < 0 {
			if strings.EqualFold(p, "activate") || strings.EqualFold(p, "activation") {
				at = i
			}
			continue
		}
		seen++
		if seen == 1 || (i == len(parts)-1 && seen > 2 && p == "decline") {
			continue // the user id; the decline action
		}
		parts[i], redacted = "REDACTED", true
	}
	if !redacted {
		return path
	}
	return strings.Join(parts, "/")
}
