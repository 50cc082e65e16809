package ingest

import (
	"bytes"
	"fmt"
	"net/netip"
	"strings"
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
