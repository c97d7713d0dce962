package httpapi

import (
	"context"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// Client addresses, for the rate limits and the access log. A request's peer is the
// client itself unless it is one of the trusted reverse proxies (ORGS_TRUSTED_PROXIES);
// then the client is named by the forwarding chain the proxies append to:
// X-Forwarded-For (what nginx, HAProxy, Envoy and the cloud load balancers write), or,
// when a request has none, Forwarded (RFC 7239). The chain is read from the right: each
// trusted proxy appended the address of whoever connected to it, so the right-most
// address that is not a trusted proxy is the client; everything to its left was sent by
// the client and may be forged. A proxy that writes only Forwarded must therefore drop an
// incoming X-Forwarded-For.

type clientIPKey struct{}

// withClientIP resolves each request's client address once (see resolveClientIP) and
// keeps it in the request's context for clientIP.
func withClientIP(trusted []netip.Prefix, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ip := resolveClientIP(trusted, r)
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), clientIPKey{}, ip)))
	})
}

// clientIP returns the request's client address as withClientIP resolved it, else its
// peer's (the zero Addr if RemoteAddr is not an address, as in some tests).
func clientIP(r *http.Request) netip.Addr {
	if ip, ok := r.Context().Value(clientIPKey{}).(netip.Addr); ok {
		return ip
	}
	return peerAddr(r.RemoteAddr)
}

// clientIPField is clientIP for the access log: "" when unknown.
func clientIPField(r *http.Request) string {
	if ip := clientIP(r); ip.IsValid() {
		return ip.String()
	}
	return ""
}

// resolveClientIP returns r's client address: the peer, or when the peer is a trusted
// proxy, the right-most untrusted address of the forwarding chain. A chain made only of
// trusted proxies gives its left-most address; an entry that is not an address
// ("unknown", an obfuscated Forwarded identifier) ends the walk at the last proxy known.
func resolveClientIP(trusted []netip.Prefix, r *http.Request) netip.Addr {
	peer := peerAddr(r.RemoteAddr)
	if !isTrusted(trusted, peer) {
		return peer
	}
	chain := forwardedChain(r.Header)
	client := peer
	for i := len(chain) - 1; i >= 0; i-- {
		ip, ok := parseHop(chain[i])
		if !ok {
			return client
		}
		client = ip
		if !isTrusted(trusted, ip) {
			return ip
		}
	}
	return client
}

// forwardedChain returns the addresses of X-Forwarded-For (every line, in order), or if
// there is none, the for= parameters of Forwarded, left (client side) to right.
func forwardedChain(h http.Header) []string {
	var chain []string
	if xff := h.Values("X-Forwarded-For"); len(xff) > 0 {
		for _, line := range xff {
			for _, hop := range strings.Split(line, ",") {
				chain = append(chain, strings.TrimSpace(hop))
			}
		}
		return chain
	}
	for _, line := range h.Values("Forwarded") {
		for _, elem := range strings.Split(line, ",") {
			hop := ""
			for _, pair := range strings.Split(elem, ";") {
				k, v, ok := strings.Cut(strings.TrimSpace(pair), "=")
				if ok && strings.EqualFold(strings.TrimSpace(k), "for") {
					hop = strings.Trim(strings.TrimSpace(v), `"`)
				}
			}
			// An element without for= names nobody: keep its place, so that it ends the
			// walk like "unknown" would.
			chain = append(chain, hop)
		}
	}
	return chain
}

// parseHop reads one entry of a forwarding chain: an IPv4 or IPv6 address, optionally with
// a port ("192.0.2.1:4711", "[2001:db8::1]:4711") or in brackets.
func parseHop(s string) (netip.Addr, bool) {
	if ip, err := netip.ParseAddr(s); err == nil {
		return normalizeAddr(ip), true
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return normalizeAddr(ap.Addr()), true
	}
	if strings.HasPrefix(s, "[") && strings.HasSuffix(s, "]") {
		if ip, err := netip.ParseAddr(s[1 : len(s)-1]); err == nil {
			return normalizeAddr(ip), true
		}
	}
	return netip.Addr{}, false
}

// peerAddr parses a connection's RemoteAddr ("ip:port", or a bare address).
func peerAddr(remoteAddr string) netip.Addr {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		host = remoteAddr
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}
	}
	return normalizeAddr(ip)
}

// normalizeAddr drops an IPv6 zone and unmaps an IPv4-mapped IPv6 address (::ffff:1.2.3.4),
// so that one client has one spelling.
func normalizeAddr(ip netip.Addr) netip.Addr {
	return ip.WithZone("").Unmap()
}

func isTrusted(trusted []netip.Prefix, ip netip.Addr) bool {
	if !ip.IsValid() {
		return false
	}
	for _, p := range trusted {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// rateKey is the rate limiters' bucket of a client address: an IPv4 address on its own,
// an IPv6 address by its /64 (one subscriber's network; a client can pick any address in
// it); a request whose address is unknown shares the "unknown" bucket.
func rateKey(ip netip.Addr) string {
	switch {
	case !ip.IsValid():
		return "unknown"
	case ip.Is4():
		return ip.String()
	}
	p, _ := ip.Prefix(64)
	return p.String()
}
