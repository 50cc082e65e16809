package ingest

import (
	"bytes"
	"fmt"
	"net/netip"
	"strings"

	"github.com/valyala/fasthttp"
)

// proxies is the set of trusted proxy prefixes (server.trusted_proxies).
type proxies []netip.Prefix

func parseProxies(list []string) (proxies, error) {
	var out proxies
	for _, s := range list {
		if strings.Contains(s, "/") {
			p, err := netip.ParsePrefix(s)
			if err != nil {
				return nil, fmt.Errorf("trusted proxy %q: %w", s, err)
			}
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("trusted proxy %q: %w", s, err)
		}
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

func (ps proxies) trusted(a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// clientIP returns the caller's address: the peer, unless the peer is a trusted proxy, in
// which case X-Forwarded-For is walked from the right (the entries proxies appended) to the
// first address that is not itself a trusted proxy. Entries a client wrote on the left are
// never believed.
func (ps proxies) clientIP(peer netip.Addr, xff []byte) netip.Addr {
	peer = peer.Unmap()
	if len(ps) == 0 || !ps.trusted(peer) || len(xff) == 0 {
		return peer
	}
	client := peer
	for len(xff) > 0 {
		i := bytes.LastIndexByte(xff, ',')
		part := bytes.TrimSpace(xff[i+1:])
		xff = xff[:max(i, 0)]
		a, err := netip.ParseAddr(string(part))
		if err != nil {
			return client // malformed: stop at the last address we could trust
		}
		client = a.Unmap()
		if !ps.trusted(client) {
			return client
		}
		if i < 0 {
			break
		}
	}
	return client
}

// clientAddr is the caller's address: the peer, or what trusted proxies say in
// X-Forwarded-For.
func (s *Server) clientAddr(ctx *fasthttp.RequestCtx) netip.Addr {
	peer, _ := netip.AddrFromSlice(ctx.RemoteIP())
	if !s.proxies.trusted(peer) {
		return peer.Unmap()
	}
	return s.proxies.clientIP(peer, forwardedFor(&ctx.Request.Header))
}

// forwardedFor returns the whole X-Forwarded-For list: its one field line, or all of its
// lines joined in order. Several lines are one list (RFC 9110, section 5.3), and a proxy
// may append a line of its own instead of extending the client's: reading only the first
// line would believe what the client wrote.
func forwardedFor(h *fasthttp.RequestHeader) []byte {
	lines := h.PeekAll("X-Forwarded-For")
	switch len(lines) {
	case 0:
		return nil
	case 1:
		return lines[0]
	}
	return bytes.Join(lines, []byte(", "))
}
