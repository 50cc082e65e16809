package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/eventrelay/relay/relay/admin"
)

// replayChunk is how many dead letters one replay call of the CLI looks at, so a long
// replay shows progress and no single call runs for long.
const replayChunk = 500

const dlqUsage = `usage: relay dlq <command> --config FILE --provider P [flags]

commands:
  list   [--limit N]            the newest dead letters (default 50, at most 1000)
  replay [--id ID ...]          send dead letters again (all of them without --id)
  purge  [--id ID ...] [--yes]  delete dead letters (all of them needs --yes)
`

// dlqCmd is `relay dlq list|replay|purge`, through the running relay's admin API.
func dlqCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, dlqUsage)
		return errUsage
	}
	switch args[0] {
	case "list":
		return dlqList(ctx, args[1:], stdout, stderr)
	case "replay":
		return dlqReplay(ctx, args[1:], stdout, stderr)
	case "purge":
		return dlqPurge(ctx, args[1:], stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, dlqUsage)
		return nil
	default:
		fmt.Fprintf(stderr, "relay dlq: unknown command %q\n\n%s", args[0], dlqUsage)
		return errUsage
	}
}

// deadPath is the API path of provider's dead letters plus suffix.
func deadPath(provider, suffix string) string {
	return "/admin/api/dead/" + url.PathEscape(provider) + suffix
}

func dlqList(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	f := newCLIFlags("dlq list", stderr).withProvider()
	f.fs.IntVar(&f.limit, "limit", 50, "how many, newest first (at most 1000)")
	if err := f.parse(args, "relay dlq list --config FILE --provider P [--limit N]"); err != nil {
		return err
	}
	if f.limit < 1 {
		fmt.Fprintln(stderr, "relay dlq list: --limit must be at least 1")
		return errUsage
	}
	c, err := newAdminClient(f.config)
	if err != nil {
		return err
	}
	var reply admin.DeadListReply
	if err := c.call(ctx, http.MethodGet, deadPath(f.provider, "?limit="+strconv.Itoa(f.limit)), nil, &reply); err != nil {
		return err
	}
	if len(reply.Dead) == 0 {
		fmt.Fprintf(stdout, "no dead letters for %s\n", f.provider)
		return nil
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "STREAM ID\tDEAD AT\tREASON\tSTATUS\tATTEMPTS\tROUTE\tEVENT ID\tERROR")
	for _, d := range reply.Dead {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%s\t%s\t%s\n", d.StreamID, orDash(d.DeadAt), orDash(d.Reason), d.Status,
			d.Attempts, orDash(oneLine(d.Route, 40)), orDash(oneLine(d.ID, 40)), orDash(oneLine(d.Error, 80)))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%d of %d dead letters of %s, newest first\n", len(reply.Dead), reply.Total, f.provider)
	return nil
}

func dlqReplay(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	f := newCLIFlags("dlq replay", stderr).withProvider()
	f.fs.Var(&f.ids, "id", "stream id of a dead letter to replay (repeatable; default: all)")
	if err := f.parse(args, "relay dlq replay --config FILE --provider P [--id ID ...]"); err != nil {
		return err
	}
	c, err := newAdminClient(f.config)
	if err != nil {
		return err
	}
	var sum admin.ReplayReply
	if len(f.ids) > 0 {
		if err := c.call(ctx, http.MethodPost, deadPath(f.provider, "/replay"), admin.ReplayRequest{IDs: f.ids}, &sum); err != nil {
			return err
		}
	} else if err := replayAll(ctx, c, f.provider, stdout, &sum); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "replayed %d dead letters of %s", sum.Replayed, f.provider)
	if sum.Missing > 0 {
		fmt.Fprintf(stdout, "; %d already gone (replayed or purged before)", sum.Missing)
	}
	if sum.Skipped > 0 {
		fmt.Fprintf(stdout, "; %d skipped: they hold no event data (reason trimmed) and stay", sum.Skipped)
	}
	fmt.Fprintln(stdout)
	return nil
}

// replayAll replays every dead letter of provider present now, replayChunk at a time,
// printing progress after each chunk, and adds up the chunks in sum.
func replayAll(ctx context.Context, c *adminClient, provider string, stdout io.Writer, sum *admin.ReplayReply) error {
	var status admin.ProvidersReply
	if err := c.call(ctx, http.MethodGet, "/admin/api/providers", nil, &status); err != nil {
		return err
	}
	var total int64 = -1
	for _, p := range status.Providers {
		if p.Name == provider {
			total = p.Dead
		}
	}
	if total < 0 {
		return fmt.Errorf("admin API: unknown provider %q", provider)
	}
	req := admin.ReplayRequest{Limit: replayChunk}
	for {
		var r admin.ReplayReply
		if err := c.call(ctx, http.MethodPost, deadPath(provider, "/replay"), req, &r); err != nil {
			if sum.Replayed > 0 {
				return fmt.Errorf("stopped after replaying %d: %w", sum.Replayed, err)
			}
			return err
		}
		sum.Replayed, sum.Missing, sum.Skipped = sum.Replayed+r.Replayed, sum.Missing+r.Missing, sum.Skipped+r.Skipped
		if looked := r.Replayed + r.Missing + r.Skipped; looked > 0 {
			fmt.Fprintf(stdout, "replayed %d/%d\n", sum.Replayed, max(total, sum.Replayed+sum.Skipped))
		}
		if r.Done || r.LastID == "" {
			return nil
		}
		req.After, req.Until = r.LastID, r.Until
	}
}

func dlqPurge(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	f := newCLIFlags("dlq purge", stderr).withProvider()
	f.fs.Var(&f.ids, "id", "stream id of a dead letter to delete (repeatable; default: all, with --yes)")
	f.fs.BoolVar(&f.yes, "yes", false, "confirm deleting every dead letter of the provider")
	if err := f.parse(args, "relay dlq purge --config FILE --provider P [--id ID ...] [--yes]"); err != nil {
		return err
	}
	if len(f.ids) == 0 && !f.yes {
		fmt.Fprintf(stderr, "relay dlq purge: this deletes every dead letter of %s for good; add --yes to confirm, or choose entries with --id\n", f.provider)
		return errUsage
	}
	c, err := newAdminClient(f.config)
	if err != nil {
		return err
	}
	var in any // no body: purge all
	if len(f.ids) > 0 {
		in = admin.PurgeRequest{IDs: f.ids}
	}
	var reply admin.PurgeReply
	if err := c.call(ctx, http.MethodDelete, deadPath(f.provider, ""), in, &reply); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "purged %d dead letters of %s\n", reply.Purged, f.provider)
	return nil
}

// oneLine makes s fit one table cell: control characters become spaces, and it is cut
// to n runes.
func oneLine(s string, n int) string {
	s = strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return ' '
		}
		return r
	}, s)
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
