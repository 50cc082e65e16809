// Command devupstream is a stand-in for the five providers on a developer's machine: it
// answers every provider path the way that provider does on success (or with the status
// given by --status, to produce retries and dead letters) and prints one line per request.
// relay.example.yaml points every provider's base_url at it (127.0.0.1:8099).
//
//	go run ./cmd/devupstream                 # accept everything
//	go run ./cmd/devupstream --status 400    # refuse everything: events are dead-lettered
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:8099", "address to listen on (keep it on loopback)")
	status := flag.Int("status", 0, "answer every request with this status instead of the provider's success")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	srv := &http.Server{Addr: *listen, Handler: handler(*status, os.Stdout), ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		_ = srv.Shutdown(context.WithoutCancel(ctx))
	}()
	log.Printf("devupstream listening on %s", *listen)
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Fatal(err)
	}
}

// success is each provider path's documented success reply.
var success = map[string]struct {
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

func handler(status int, out io.Writer) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		s, ok := success[r.URL.Path]
		switch {
		case !ok:
			s.status, s.body = http.StatusNotFound, `{"error":"not a provider path"}`
		case status != 0:
			s.status, s.body = status, `{"error":"refused by devupstream --status"}`
		}
		fmt.Fprintf(out, "%s %s %s -> %d %s\n", time.Now().Format(time.TimeOnly), r.Method, r.URL.Path, s.status,
			strings.TrimSpace(string(body)))
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(s.status)
		_, _ = io.WriteString(w, s.body)
	})
}
