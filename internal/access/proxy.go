package access

import (
	"context"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// Proxies are the reverse proxies berth trusts ([server] trusted_proxies).
// A request whose TCP peer is one of them has its client address taken from
// X-Forwarded-For and its scheme from X-Forwarded-Proto; from any other peer
// those headers are ignored, so nobody can spoof an address past a trusted-IP
// bound or a rate limit by sending the header himself.
type Proxies []netip.Prefix

type clientKey struct{}

type client struct{ ip, scheme string }

// Handler records the forwarded client of requests from trusted proxies for
// ClientIP and Scheme.
func (p Proxies) Handler(next http.Handler) http.Handler {
	if len(p) == 0 {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		peer, ok := addrOf(peerHost(r))
		if ok && p.trusts(peer) {
			c := client{ip: p.forwardedFor(peer, r.Header.Values("X-Forwarded-For"))}
			switch proto := strings.ToLower(strings.TrimSpace(firstValue(r.Header.Get("X-Forwarded-Proto")))); proto {
			case "http", "https":
				c.scheme = proto
			}
			r = r.WithContext(context.WithValue(r.Context(), clientKey{}, c))
		}
		next.ServeHTTP(w, r)
	})
}

func (p Proxies) trusts(a netip.Addr) bool {
	for _, pfx := range p {
		if pfx.Contains(a) {
			return true
		}
	}
	return false
}

// forwardedFor walks X-Forwarded-For from the right (the entries the trusted
// proxies appended) and returns the first address that is not a trusted
// proxy: entries further left were written by the client and prove nothing.
// A malformed entry stops the walk at the last address known good.
func (p Proxies) forwardedFor(peer netip.Addr, values []string) string {
	client := peer
	var hops []string
	for _, v := range values {
		hops = append(hops, strings.Split(v, ",")...)
	}
	for i := len(hops) - 1; i >= 0; i-- {
		a, ok := addrOf(strings.TrimSpace(hops[i]))
		if !ok {
			break
		}
		client = a
		if !p.trusts(a) {
			break
		}
	}
	return client.String()
}

func firstValue(h string) string {
	v, _, _ := strings.Cut(h, ",")
	return v
}

func peerHost(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// addrOf parses an address, with or without brackets or a port.
func addrOf(s string) (netip.Addr, bool) {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap(), true
	}
	a, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(s, "["), "]"))
	if err != nil {
		return netip.Addr{}, false
	}
	return a.Unmap(), true
}

// ClientIP is the request's client address without the port: the TCP peer,
// or, behind a trusted proxy, the forwarded client.
func ClientIP(r *http.Request) string {
	if c, ok := r.Context().Value(clientKey{}).(client); ok {
		return c.ip
	}
	return peerHost(r)
}

// Scheme is "https" when the client reached berth over TLS (directly, or
// through a trusted proxy that says so), else "http".
func Scheme(r *http.Request) string {
	if c, ok := r.Context().Value(clientKey{}).(client); ok && c.scheme != "" {
		return c.scheme
	}
	if r.TLS != nil {
		return "https"
	}
	return "http"
}
