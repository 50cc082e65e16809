package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"text/tabwriter"

	"github.com/eventrelay/relay/relay/admin"
)

// traceCmd is `relay trace --config FILE --provider P ID`: what happened to one event,
// from the running relay's admin API.
func traceCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	const usageLine = "relay trace --config FILE --provider P ID"
	f := newCLIFlags("trace", stderr).withProvider()
	// The id may come before or after the flags.
	var id string
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		id, args = args[0], args[1:]
	} else if n := len(args); n > 0 && len(args[n-1]) > 0 && args[n-1][0] != '-' && (n < 2 || !isValueFlag(args[n-2])) {
		id, args = args[n-1], args[:n-1]
	}
	if err := f.parse(args, usageLine); err != nil {
		return err
	}
	if id == "" {
		fmt.Fprintf(stderr, "usage: %s\n", usageLine)
		return errUsage
	}
	c, err := newAdminClient(f.config)
	if err != nil {
		return err
	}
	var t admin.EventTrace
	path := "/admin/api/events/" + url.PathEscape(f.provider) + "/" + url.PathEscape(id)
	if err := c.call(ctx, http.MethodGet, path, nil, &t); err != nil {
		return err
	}
	return printTrace(stdout, &t)
}

// isValueFlag reports whether arg is a flag that takes the next argument as its value.
func isValueFlag(arg string) bool {
	switch arg {
	case "--config", "-config", "--provider", "-provider":
		return true
	}
	return false
}

// printTrace renders a trace: the arrival, one line per attempt, where the event is now.
func printTrace(w io.Writer, t *admin.EventTrace) error {
	rcv := t.Received
	fmt.Fprintf(w, "event %s (%s)\n", t.ID, t.Provider)
	fmt.Fprintf(w, "received  %s  route %s  source %s  stream id %s\n", orDash(rcv.At), orDash(rcv.Route),
		orDash(rcv.Source), orDash(rcv.StreamID))
	if len(t.Attempts) > 0 {
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "ATTEMPT\tAT\tOUTCOME\tSTATUS\tDURATION\tCLASS\tDETAIL")
		for _, a := range t.Attempts {
			status := "-"
			if a.Status != 0 {
				status = fmt.Sprint(a.Status)
			}
			detail := a.Error
			if a.Reason != "" {
				detail = "reason " + a.Reason + "; " + detail
			}
			if a.RetryDueAt != "" {
				detail = "due " + a.RetryDueAt + "; " + detail
			}
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%dms\t%s\t%s\n", a.Attempt, a.At, a.Outcome, status, a.DurationMS,
				orDash(a.Class), detail)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	n := t.Now
	line := "now       " + n.State
	switch {
	case n.State == "dead":
		line += " (reason " + n.Reason + ")"
	case n.State == "in_flight":
		line += fmt.Sprintf(" (consumer %s, idle %dms)", n.Consumer, n.IdleMS)
	case n.State == "retry":
		line += " (due " + n.RetryDueAt + ")"
	}
	if n.At != "" {
		line += " at " + n.At
	}
	if n.StreamID != "" {
		line += " stream id " + n.StreamID
	}
	_, err := fmt.Fprintln(w, line)
	return err
}
