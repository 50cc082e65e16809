package ingest_test

import (
	"bufio"
	"bytes"
	"context"
	"net"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/valyala/fasthttp"
	"go.uber.org/zap"

	"github.com/eventrelay/relay/config"
	"github.com/eventrelay/relay/delivery"
	"github.com/eventrelay/relay/providers"
	"github.com/eventrelay/relay/relay/ingest"
	"github.com/eventrelay/relay/relay/queue"
)

// countingQueue accepts every event in memory and counts them.
type countingQueue struct{ n atomic.Int64 }

func (q *countingQueue) Enqueue(context.Context, *delivery.Message, queue.IDSource) (bool, error) {
	q.n.Add(1)
	return false, nil
}

// FuzzOriginCheck: for any Origin header a client can put on the wire, a request with a
// valid site key is accepted only when the Origin, as the server reads it, is exactly one
// of the site's origins (or absent), and only then does the reply carry
// Access-Control-Allow-Origin (that same origin); anything else is a 403 with nothing
// queued. Its preflight follows the same rule. Run:
// go test -run '^$' -fuzz '^FuzzOriginCheck$' -fuzztime 30s ./relay/ingest/
func FuzzOriginCheck(f *testing.F) {
	cfg, err := config.Parse([]byte(testConfig("")), nil, providers.Specs())
	if err != nil {
		f.Fatal(err)
	}
	for i := range cfg.Sites { // the rate limiter is not what is fuzzed
		cfg.Sites[i].RateLimit.PerIP, cfg.Sites[i].RateLimit.Burst = 1e9, 1e9
	}
	q := &countingQueue{}
	srv, err := ingest.New(ingest.Options{Config: cfg, Ops: providers.Ops(cfg.Providers), Queue: q, Log: zap.NewNop()})
	if err != nil {
		f.Fatal(err)
	}
	handle := srv.Handler()
	peer := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}
	for _, seed := range []string{
		shopOrig, "", "null", shopOrig + ".evil.test", "https://SHOP.example.com", shopOrig + "/", " " + shopOrig,
		shopOrig + " ", "\t" + shopOrig, "https://shop.example.com:443", otherPort, idOrigin, "http://shop.example.com",
		shopOrig + "\x00", "https://shop.example.com\xff", shopOrig + "\r\nOrigin: https://evil.test", "*",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, origin []byte) {
		if bytes.ContainsAny(origin, "\r\n") {
			return // a new header line: not an Origin value (header parsing is fasthttp's)
		}
		for _, preflight := range []bool{false, true} {
			var raw bytes.Buffer
			if preflight {
				raw.WriteString("OPTIONS /v1/ens/click?key=" + shopKey + " HTTP/1.1\r\nHost: relay\r\n" +
					"Access-Control-Request-Method: POST\r\nOrigin: ")
				raw.Write(origin)
				raw.WriteString("\r\n\r\n")
			} else {
				raw.WriteString("POST /v1/ens/click HTTP/1.1\r\nHost: relay\r\nX-Relay-Key: " + shopKey +
					"\r\nContent-Type: application/json\r\nContent-Length: " + strconv.Itoa(len(ensBody)) + "\r\nOrigin: ")
				raw.Write(origin)
				raw.WriteString("\r\n\r\n" + ensBody)
			}
			var req fasthttp.Request
			if err := req.Read(bufio.NewReader(&raw)); err != nil {
				return // the server would refuse it before any handler runs
			}
			seen := req.Header.PeekAll(fasthttp.HeaderOrigin)
			if len(seen) != 1 {
				t.Fatalf("%d Origin headers parsed from one line %q", len(seen), origin)
			}
			got := string(seen[0])
			var ctx fasthttp.RequestCtx
			ctx.Init(&req, peer, nil)
			before := q.n.Load()
			handle(&ctx)
			status := ctx.Response.StatusCode()
			acao := ctx.Response.Header.PeekAll(fasthttp.HeaderAccessControlAllowOrigin)
			queued := q.n.Load() - before
			switch {
			case got == shopOrig:
				want := fasthttp.StatusAccepted
				if preflight {
					want = fasthttp.StatusNoContent
				}
				if status != want || len(acao) != 1 || string(acao[0]) != shopOrig {
					t.Fatalf("Origin %q (read as %q): %d, ACAO %q; want %d with ACAO %q", origin, got, status, acao, want, shopOrig)
				}
			case got == "" && !preflight:
				// Not a browser: no CORS, nothing to refuse.
				if status != fasthttp.StatusAccepted || len(acao) != 0 {
					t.Fatalf("empty Origin %q: %d, ACAO %q; want 202 without ACAO", origin, status, acao)
				}
			default:
				if status != fasthttp.StatusForbidden || len(acao) != 0 || queued != 0 {
					t.Fatalf("Origin %q (read as %q), preflight %v: %d, ACAO %q, %d queued; want 403 without ACAO, nothing queued",
						origin, got, preflight, status, acao, queued)
				}
			}
		}
	})
}
