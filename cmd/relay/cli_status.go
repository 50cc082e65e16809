package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"text/tabwriter"
	"time"

	"github.com/eventrelay/relay/relay/admin"
)

// statusCmd is `relay status --config FILE`: one line per provider, from the running
// relay's admin API.
func statusCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	f := newCLIFlags("status", stderr)
	if err := f.parse(args, "relay status --config FILE"); err != nil {
		return err
	}
	c, err := newAdminClient(f.config)
	if err != nil {
		return err
	}
	var reply admin.ProvidersReply
	if err := c.call(ctx, http.MethodGet, "/admin/api/providers", nil, &reply); err != nil {
		return err
	}
	return printStatus(stdout, reply.Providers)
}

// printStatus renders the providers as an aligned table.
func printStatus(w io.Writer, providers []admin.ProviderStatus) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "PROVIDER\tBREAKER\tREADY\tPENDING\tRETRY\tDEAD\tOLDEST\tDELIVERED/1m\tRETRIED/1m\tDEAD/1m")
	for _, p := range providers {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%s\t%d\t%d\t%d\n", p.Name, p.Breaker, p.Ready, p.Pending,
			p.Retry, p.Dead, age(p.OldestUndeliveredSeconds), p.LastMinute.Delivered, p.LastMinute.Retried,
			p.LastMinute.Dead)
	}
	return tw.Flush()
}

// age renders an age in seconds: "-" for none, "<1s", else whole seconds ("3m12s").
func age(seconds float64) string {
	switch {
	case seconds <= 0:
		return "-"
	case seconds < 1:
		return "<1s"
	default:
		return (time.Duration(seconds) * time.Second).String()
	}
}
