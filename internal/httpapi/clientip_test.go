package httpapi

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"

	"github.com/rs/zerolog"
)

func TestResolveClientIP(t *testing.T) {
	t.Parallel()
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("2001:db8:ffff::/48")}
	for _, tt := range []struct {
		name   string
		peer   string
		header http.Header
		want   string
	}{
		{"direct client", "203.0.113.7:4711", nil, "203.0.113.7"},
		{"untrusted peer's header is ignored", "203.0.113.7:4711", http.Header{"X-Forwarded-For": {"198.51.100.1"}}, "203.0.113.7"},
		{"one proxy", "10.0.0.2:80", http.Header{"X-Forwarded-For": {"198.51.100.1"}}, "198.51.100.1"},
		{"forged entries left of the client", "10.0.0.2:80", http.Header{"X-Forwarded-For": {"1.1.1.1, 2.2.2.2, 198.51.100.1"}}, "198.51.100.1"},
		{"two proxies", "10.0.0.2:80", http.Header{"X-Forwarded-For": {"198.51.100.1, 10.1.2.3"}}, "198.51.100.1"},
		{"a forged trusted address left of the client", "10.0.0.2:80", http.Header{"X-Forwarded-For": {"10.9.9.9, 198.51.100.1, 10.1.2.3"}}, "198.51.100.1"},
		{"several header lines", "10.0.0.2:80", http.Header{"X-Forwarded-For": {"1.1.1.1", "198.51.100.1, 10.1.2.3"}}, "198.51.100.1"},
		{"with a port", "10.0.0.2:80", http.Header{"X-Forwarded-For": {"198.51.100.1:5555"}}, "198.51.100.1"},
		{"only proxies", "10.0.0.2:80", http.Header{"X-Forwarded-For": {"10.1.1.1, 10.2.2.2"}}, "10.1.1.1"},
		{"no header from a proxy", "10.0.0.2:80", nil, "10.0.0.2"},
		{"garbage ends at the last proxy", "10.0.0.2:80", http.Header{"X-Forwarded-For": {"198.51.100.1, unknown, 10.1.2.3"}}, "10.1.2.3"},
		{"empty header", "10.0.0.2:80", http.Header{"X-Forwarded-For": {""}}, "10.0.0.2"},
		{"IPv6 client", "[2001:db8:ffff::1]:443", http.Header{"X-Forwarded-For": {"2001:db8:1:2:3:4:5:6"}}, "2001:db8:1:2:3:4:5:6"},
		{"IPv4-mapped peer", "[::ffff:10.0.0.2]:80", http.Header{"X-Forwarded-For": {"198.51.100.1"}}, "198.51.100.1"},
		{"Forwarded", "10.0.0.2:80", http.Header{"Forwarded": {`for=1.1.1.1, for=198.51.100.1;proto=https;by=10.0.0.2`}}, "198.51.100.1"},
		{"Forwarded IPv6 with port", "10.0.0.2:80", http.Header{"Forwarded": {`For="[2001:db8:cafe::17]:4711"`}}, "2001:db8:cafe::17"},
		{"Forwarded obfuscated", "10.0.0.2:80", http.Header{"Forwarded": {`for=198.51.100.1, for=_hidden`}}, "10.0.0.2"},
		{"X-Forwarded-For wins over Forwarded", "10.0.0.2:80", http.Header{"Forwarded": {"for=1.1.1.1"}, "X-Forwarded-For": {"198.51.100.1"}}, "198.51.100.1"},
	} {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = tt.peer
		for k, vs := range tt.header {
			for _, v := range vs {
				r.Header.Add(k, v)
			}
		}
		if got := resolveClientIP(trusted, r); got.String() != tt.want {
			t.Errorf("%s: got %s, want %s", tt.name, got, tt.want)
		}
	}
}

func TestRateKey(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"198.51.100.1":          "198.51.100.1",
		"2001:db8:1:2:3:4:5:6":  "2001:db8:1:2::/64",
		"2001:db8:1:2:ffff::1":  "2001:db8:1:2::/64",
		"2001:db8:1:3::1":       "2001:db8:1:3::/64",
		"::ffff:198.51.100.1":   "198.51.100.1",
		"invalid, no address":   "unknown",
		"fe80::1%eth0":          "fe80::/64",
		"2001:db8:1:2:3:4:5:ff": "2001:db8:1:2::/64",
	} {
		ip, _ := netip.ParseAddr(in)
		if got := rateKey(normalizeAddr(ip)); got != want {
			t.Errorf("rateKey(%s) = %s, want %s", in, got, want)
		}
	}
}

// TestRateLimitPerForwardedClient: behind a trusted proxy each client has its own bucket
// (not the proxy's), an IPv6 client one per /64, and a client cannot escape its bucket by
// forging X-Forwarded-For.
func TestRateLimitPerForwardedClient(t *testing.T) {
	t.Parallel()
	l := newRateLimiter(0.001, 1)
	h := withClientIP([]netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")},
		l.limit(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusAccepted) })))
	call := func(peer, xff string) int {
		r := httptest.NewRequest("POST", "/v1/signup", nil)
		r.RemoteAddr = peer
		if xff != "" {
			r.Header.Set("X-Forwarded-For", xff)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		return rec.Code
	}
	for i, tt := range []struct {
		peer, xff string
		want      int
	}{
		{"192.0.2.1:1", "198.51.100.1", http.StatusAccepted},
		{"192.0.2.1:2", "198.51.100.2", http.StatusAccepted}, // another client of the same proxy
		{"192.0.2.9:3", "198.51.100.1", http.StatusTooManyRequests},
		{"192.0.2.1:4", "6.6.6.6, 198.51.100.1", http.StatusTooManyRequests}, // forged left entry
		{"192.0.2.1:5", "2001:db8:1:2::1", http.StatusAccepted},
		{"192.0.2.1:6", "2001:db8:1:2::ffff", http.StatusTooManyRequests}, // same /64
		{"192.0.2.1:7", "2001:db8:1:3::1", http.StatusAccepted},
		{"203.0.113.5:8", "198.51.100.3", http.StatusAccepted}, // untrusted peer: itself
		{"203.0.113.5:9", "198.51.100.4", http.StatusTooManyRequests},
	} {
		if got := call(tt.peer, tt.xff); got != tt.want {
			t.Errorf("request %d (%s, X-Forwarded-For %s): got %d, want %d", i+1, tt.peer, tt.xff, got, tt.want)
		}
	}
}

func TestAccessLogClientIP(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	h := withClientIP([]netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")},
		observe(zerolog.New(&buf), nil, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})))
	r := httptest.NewRequest("GET", "/v1/me", nil)
	r.RemoteAddr = "192.0.2.1:1234"
	r.Header.Set("X-Forwarded-For", "198.51.100.7")
	h.ServeHTTP(httptest.NewRecorder(), r)
	var line struct {
		Message  string `json:"message"`
		ClientIP string `json:"client_ip"`
	}
	if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
		t.Fatalf("access log %q: %v", buf.String(), err)
	}
	if line.Message != "request" || line.ClientIP != "198.51.100.7" {
		t.Errorf("access log: got %s, want client_ip 198.51.100.7", buf.String())
	}
}
