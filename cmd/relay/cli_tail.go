package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/eventrelay/relay/relay/admin"
)

// tailCmd is `relay tail --config FILE [--provider P] [--route R] [--status S] [--count N]`:
// the running relay's live events, one line each, until interrupted (or N printed).
func tailCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	f := newCLIFlags("tail", stderr)
	var provider, route, status string
	var count int
	f.fs.StringVar(&provider, "provider", "", "only this provider's events")
	f.fs.StringVar(&route, "route", "", "only this route's events (e.g. ens/click)")
	f.fs.StringVar(&status, "status", "", "only events of this kind (ingested, delivered, retry, dead, ...), error class (5xx, timeout, ...) or HTTP status")
	f.fs.IntVar(&count, "count", 0, "stop after this many events (0: until interrupted)")
	// Not cliFlags.parse: that one's --provider is required, tail's is a filter.
	const usageLine = "relay tail --config FILE [--provider P] [--route R] [--status S] [--count N]"
	if err := f.parseOnly(args, usageLine); err != nil {
		return err
	}
	if f.config == "" || f.fs.NArg() > 0 || count < 0 {
		fmt.Fprintf(stderr, "usage: %s\n", usageLine)
		return errUsage
	}
	c, err := newAdminClient(f.config)
	if err != nil {
		return err
	}
	q := url.Values{}
	for k, v := range map[string]string{"provider": provider, "route": route, "status": status} {
		if v != "" {
			q.Set(k, v)
		}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/admin/api/tail?"+q.Encode(), nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Accept", "text/event-stream")
	res, err := (&http.Client{}).Do(req) // no timeout: the stream lasts until interrupted
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("cannot reach the relay's admin API at %s: is `relay serve` running? (%w)", c.base, err)
	}
	defer res.Body.Close()
	if res.StatusCode == http.StatusUnauthorized {
		return errUnauthorized
	}
	if res.StatusCode != http.StatusOK {
		var e admin.ErrorReply
		b, _ := io.ReadAll(io.LimitReader(res.Body, 1<<20))
		if json.Unmarshal(b, &e) == nil && e.Error.Message != "" {
			return fmt.Errorf("admin API: %s", e.Error.Message)
		}
		return fmt.Errorf("admin API GET /admin/api/tail: %s", res.Status)
	}
	err = printTail(res.Body, stdout, count)
	if ctx.Err() != nil || errors.Is(err, errEnough) {
		return nil
	}
	return err
}

// errEnough ends printTail after --count events.
var errEnough = errors.New("enough events")

// errStreamClosed is the end of the stream before --count events or an interrupt: the
// relay ends a tail it had to drop (a client that fell behind) and all tails when it stops.
var errStreamClosed = errors.New("tail: the relay closed the stream: this client fell behind, or the relay stopped; run `relay tail` again")

// printTail reads the SSE stream r and prints each event as one line, until count
// events (errEnough) or the stream ends (errStreamClosed).
func printTail(r io.Reader, w io.Writer, count int) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	event, printed := "", 0
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			event = ""
		case strings.HasPrefix(line, "event: "):
			event = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: ") && event == "skipped":
			fmt.Fprintf(w, "(skipped events: this client fell behind) %s\n", strings.TrimPrefix(line, "data: "))
		case strings.HasPrefix(line, "data: "):
			var ev admin.TailEvent
			if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &ev); err != nil {
				return fmt.Errorf("tail: the relay sent an event this version cannot read: %w", err)
			}
			fmt.Fprintln(w, tailLine(&ev))
			if printed++; count > 0 && printed >= count {
				return errEnough
			}
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("%w (%w)", errStreamClosed, err)
	}
	return errStreamClosed
}

// tailLine is one event as printed: time, kind, provider, route, id, then what applies.
func tailLine(ev *admin.TailEvent) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s  %-9s %-10s %-26s %s", ev.At, ev.Kind, ev.Provider, ev.Route, ev.ID)
	if ev.Source != "" {
		fmt.Fprintf(&b, "  source=%s", ev.Source)
	}
	if ev.Attempt > 0 {
		fmt.Fprintf(&b, "  attempt=%d", ev.Attempt)
	}
	if ev.Status > 0 {
		fmt.Fprintf(&b, "  status=%d", ev.Status)
	}
	if ev.DurationMS > 0 {
		fmt.Fprintf(&b, "  took=%dms", ev.DurationMS)
	}
	if ev.Class != "" {
		fmt.Fprintf(&b, "  class=%s", ev.Class)
	}
	if ev.Reason != "" {
		fmt.Fprintf(&b, "  reason=%s", ev.Reason)
	}
	if ev.Error != "" {
		fmt.Fprintf(&b, "  error=%q", ev.Error)
	}
	return b.String()
}
