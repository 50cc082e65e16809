package loopback

import (
	"fmt"
	"net"
)

// FreeAddrs returns n distinct free 127.0.0.1:port addresses. All n listeners are open
// at once before any is closed: the kernel may hand a port out again right after it was
// closed, so two addresses asked for one at a time (a relay's ingest and admin ports)
// can be the same. Another process may still take one before it is used; a server
// that cannot bind must fail loudly.
func FreeAddrs(n int) ([]string, error) {
	out := make([]string, 0, n)
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("free loopback port: %w", err)
		}
		defer ln.Close()
		out = append(out, ln.Addr().String())
	}
	return out, nil
}
