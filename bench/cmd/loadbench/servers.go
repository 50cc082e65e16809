package main

import (
	"flag"
	"log"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"
)

// upstreamReplies are each provider path's documented success reply (as cmd/devupstream
// answers), served by the fast fake.
var upstreamReplies = map[string]struct {
	status int
	body   string
}{
	"/api/v1/capture-event":        {201, `{"msg":"Event capture request received!","status":200,"data":null}`},
	"/api/v1/capture-payment":      {201, `{"msg":"Payment capture request received!","status":200,"data":null}`},
	"/api/v1/campaigns/impression": {200, `{"status":"success","message":"Impression tracked successfully"}`},
	"/api/v1/campaigns/click":      {200, `{"status":"success","message":"Click tracked successfully"}`},
	"/v3/events":                   {204, ``},
	"/v3/events/batch":             {202, `{"message":"Events queued","count":1}`},
	"/api/v2/trackEvent":           {204, ``},
	"/api/public/banner-events":    {200, `{"ok":true}`},
}

// serveMain runs one of the helper servers as its own process (so that it is measured,
// and stopped by PID, like the relay): "noop" answers 202 without work (the ceiling of a
// fasthttp server on this machine), "fake" answers every provider path like the
// provider does on success, after --delay.
func serveMain(kind string, args []string) {
	fs := flag.NewFlagSet(kind, flag.ExitOnError)
	listen := fs.String("listen", "127.0.0.1:0", "loopback address")
	delay := fs.Duration("delay", 0, "fake: answer after this long")
	_ = fs.Parse(args)
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatal(err)
	}
	var h fasthttp.RequestHandler
	switch kind {
	case "noop":
		h = func(ctx *fasthttp.RequestCtx) {
			ctx.SetStatusCode(fasthttp.StatusAccepted)
			ctx.SetContentType("application/json")
			ctx.SetBodyString(`{"ok":true,"ids":["00000000-0000-0000-0000-000000000000"]}`)
		}
	case "fake":
		d := *delay
		h = func(ctx *fasthttp.RequestCtx) {
			if d > 0 {
				time.Sleep(d)
			}
			r, ok := upstreamReplies[string(ctx.Path())]
			if !ok {
				r.status, r.body = 404, `{"error":"not a provider path"}`
			}
			ctx.SetStatusCode(r.status)
			ctx.SetContentType("application/json")
			ctx.SetBodyString(r.body)
		}
	default:
		log.Fatalf("unknown server %q", kind)
	}
	srv := &fasthttp.Server{Handler: h, Name: kind, Concurrency: 1 << 16, ReadTimeout: time.Minute,
		IdleTimeout: time.Minute}
	go func() {
		c := make(chan os.Signal, 1)
		signal.Notify(c, syscall.SIGTERM, os.Interrupt)
		<-c
		_ = srv.Shutdown()
	}()
	if err := srv.Serve(ln); err != nil {
		log.Fatal(err)
	}
}
