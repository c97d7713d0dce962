package httpapi

import (
	"context"
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/danielgtaylor/huma/v2/adapters/humago"
	"golang.org/x/time/rate"

	"github.com/orgs-dev/orgs/internal/domain"
)

// Bounds of the rate limiter's memory: clients idle for limiterIdle are forgotten, and
// it never tracks more than limiterMaxClients at once.
const (
	limiterIdle       = 10 * time.Minute
	limiterMaxClients = 100_000
)

// rateLimiter is a token bucket per client, for the anonymous endpoints (sign-up,
// sessions, activation resend). Requests with a service key are never limited. The
// client is the request's client address (clientIP: behind a trusted proxy, the address
// the proxy names), an IPv6 client by its /64 (rateKey).
type rateLimiter struct {
	rps   rate.Limit
	burst int
	now   func() time.Time

	mu        sync.Mutex
	clients   map[string]*client
	lastSweep time.Time
}

type client struct {
	limiter  *rate.Limiter
	lastSeen time.Time
}

// newRateLimiter allows each client IP rps requests per second on average and bursts of
// burst.
func newRateLimiter(rps float64, burst int) *rateLimiter {
	return &rateLimiter{rps: rate.Limit(rps), burst: burst, now: time.Now, clients: map[string]*client{}}
}

// allow takes a token for the client key (rateKey); when none is left it reports how
// long until one is.
func (l *rateLimiter) allow(ip string) (bool, time.Duration) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.lastSweep) > limiterIdle/2 || len(l.clients) >= limiterMaxClients {
		l.sweep(now)
	}
	c, ok := l.clients[ip]
	if !ok {
		c = &client{limiter: rate.NewLimiter(l.rps, l.burst)}
		l.clients[ip] = c
	}
	c.lastSeen = now
	res := c.limiter.ReserveN(now, 1)
	if !res.OK() {
		return false, time.Second
	}
	if d := res.DelayFrom(now); d > 0 {
		res.CancelAt(now)
		return false, d
	}
	return true, 0
}

// sweep forgets idle clients; if that is not enough, it forgets arbitrary ones (map
// order), which at worst gives them a fresh burst.
func (l *rateLimiter) sweep(now time.Time) {
	l.lastSweep = now
	for ip, c := range l.clients {
		if now.Sub(c.lastSeen) > limiterIdle {
			delete(l.clients, ip)
		}
	}
	for ip := range l.clients {
		if len(l.clients) < limiterMaxClients*9/10 {
			break
		}
		delete(l.clients, ip)
	}
}

// check returns a 429 rate_limited problem with Retry-After when r's client is over its
// rate; service keys pass.
func (l *rateLimiter) check(ctx context.Context, r *http.Request) error {
	if actorFrom(ctx).IsService() {
		return nil
	}
	ok, wait := l.allow(rateKey(clientIP(r)))
	if ok {
		return nil
	}
	p := problemFor(ctx, domain.ErrRateLimited)
	p.GetHeaders().Set("Retry-After", strconv.Itoa(int(math.Ceil(wait.Seconds()))))
	return p
}

// limit wraps a plain net/http handler.
func (l *rateLimiter) limit(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := l.check(r.Context(), r); err != nil {
			writeProblem(w, r, err)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// operation is the limiter as a huma operation middleware:
//
//	op.Middlewares = huma.Middlewares{signupLimiter.operation}
func (l *rateLimiter) operation(ctx huma.Context, next func(huma.Context)) {
	r, w := humago.Unwrap(ctx)
	if err := l.check(ctx.Context(), r); err != nil {
		writeProblem(w, r, err)
		return
	}
	next(ctx)
}
