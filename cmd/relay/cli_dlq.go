package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/eventrelay/relay/relay/admin"
)

// replayChunk is how many dead letters one replay call of the CLI looks at, so a long
// replay shows progress and no single call runs for long.
const replayChunk = 500

const dlqUsage = `usage: relay dlq <command> --config FILE --provider P [flags]

commands:
  list   [--limit N]                      the newest dead letters (default 50, at most 1000)
  replay [--id ID ...] [FILTER] [--dry-run] send dead letters again (all of them without --id or a filter)
  purge  [--id ID ...] [FILTER] [--dry-run] [--yes]
                                          delete dead letters (all, or by filter, needs --yes)

FILTER (any of them; each narrows the selection):
  --since TIME   dead-lettered at or after TIME (RFC 3339, e.g. 2026-12-01T00:00:00Z)
  --until TIME   dead-lettered before TIME
  --reason R     permanent, max_attempts, max_age, trimmed or malformed
  --status N     last HTTP status (0: no reply)
  --route R      ingest route, e.g. ens/click
--dry-run counts what would be replayed or purged and changes nothing.
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
	f.fs.Var(&f.ids, "id", "stream id of a dead letter to replay, as dlq list shows it (<id>@k on shard k >= 1; repeatable; default: all)")
	ff := addFilterFlags(f.fs)
	if err := f.parse(args, "relay dlq replay --config FILE --provider P [--id ID ...] [FILTER] [--dry-run]"); err != nil {
		return err
	}
	filter, err := ff.filter()
	if err != nil {
		fmt.Fprintf(stderr, "relay dlq replay: %v\n", err)
		return errUsage
	}
	c, err := newAdminClient(f.config)
	if err != nil {
		return err
	}
	var sum admin.ReplayReply
	if len(f.ids) > 0 {
		req := admin.ReplayRequest{IDs: f.ids, Filter: filter, DryRun: ff.dryRun}
		if err := c.call(ctx, http.MethodPost, deadPath(f.provider, "/replay"), req, &sum); err != nil {
			return err
		}
	} else if err := replayAll(ctx, c, f.provider, admin.ReplayRequest{Filter: filter, DryRun: ff.dryRun}, stdout, &sum); err != nil {
		return err
	}
	if ff.dryRun {
		fmt.Fprintf(stdout, "dry run, nothing changed: would replay %d dead letters of %s", sum.Replayed, f.provider)
		if sum.Skipped > 0 {
			fmt.Fprintf(stdout, "; %d would be skipped: they hold no event data (reason trimmed)", sum.Skipped)
		}
		fmt.Fprintln(stdout)
		return nil
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

// replayAll replays every dead letter of provider present now that req's filter matches,
// replayChunk at a time, printing progress after each chunk (not in a dry run), and adds
// up the chunks in sum.
func replayAll(ctx context.Context, c *adminClient, provider string, req admin.ReplayRequest, stdout io.Writer, sum *admin.ReplayReply) error {
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
	req.Limit = replayChunk
	for {
		var r admin.ReplayReply
		if err := c.call(ctx, http.MethodPost, deadPath(provider, "/replay"), req, &r); err != nil {
			if sum.Replayed > 0 {
				return fmt.Errorf("stopped after replaying %d: %w", sum.Replayed, err)
			}
			return err
		}
		sum.Replayed, sum.Missing, sum.Skipped = sum.Replayed+r.Replayed, sum.Missing+r.Missing, sum.Skipped+r.Skipped
		sum.Matched += r.Matched
		switch looked := r.Replayed + r.Missing + r.Skipped; {
		case looked == 0 || req.DryRun:
		case req.Filter != nil:
			fmt.Fprintf(stdout, "replayed %d of %d matching so far (%d dead letters in all)\n", sum.Replayed, sum.Matched, total)
		default:
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
	f.fs.Var(&f.ids, "id", "stream id of a dead letter to delete, as dlq list shows it (<id>@k on shard k >= 1; repeatable; default: all, with --yes)")
	f.fs.BoolVar(&f.yes, "yes", false, "confirm deleting every dead letter of the provider, or every one the filter matches")
	ff := addFilterFlags(f.fs)
	if err := f.parse(args, "relay dlq purge --config FILE --provider P [--id ID ...] [FILTER] [--dry-run] [--yes]"); err != nil {
		return err
	}
	filter, err := ff.filter()
	if err != nil {
		fmt.Fprintf(stderr, "relay dlq purge: %v\n", err)
		return errUsage
	}
	if len(f.ids) == 0 && !f.yes && !ff.dryRun {
		what := "every dead letter of " + f.provider
		if filter != nil {
			what = "every dead letter of " + f.provider + " the filter matches"
		}
		fmt.Fprintf(stderr, "relay dlq purge: this deletes %s for good; add --yes to confirm, --dry-run to count them first, or choose entries with --id\n", what)
		return errUsage
	}
	c, err := newAdminClient(f.config)
	if err != nil {
		return err
	}
	var reply admin.PurgeReply
	switch {
	case len(f.ids) > 0:
		err = c.call(ctx, http.MethodDelete, deadPath(f.provider, ""), admin.PurgeRequest{IDs: f.ids, Filter: filter, DryRun: ff.dryRun}, &reply)
	case filter != nil || ff.dryRun:
		err = purgeByFilter(ctx, c, f.provider, admin.PurgeRequest{Filter: filter, DryRun: ff.dryRun}, &reply)
	default: // no body: purge all
		err = c.call(ctx, http.MethodDelete, deadPath(f.provider, ""), nil, &reply)
	}
	if err != nil {
		return err
	}
	if ff.dryRun {
		fmt.Fprintf(stdout, "dry run, nothing changed: would purge %d dead letters of %s\n", reply.Purged, f.provider)
		return nil
	}
	fmt.Fprintf(stdout, "purged %d dead letters of %s\n", reply.Purged, f.provider)
	return nil
}

// purgeByFilter purges (or counts, in a dry run) the dead letters of provider present now
// that req's filter matches, replayChunk at a time, adding up the chunks in sum.
func purgeByFilter(ctx context.Context, c *adminClient, provider string, req admin.PurgeRequest, sum *admin.PurgeReply) error {
	req.Limit = replayChunk
	for {
		var r admin.PurgeReply
		if err := c.call(ctx, http.MethodDelete, deadPath(provider, ""), req, &r); err != nil {
			if sum.Purged > 0 && !req.DryRun {
				return fmt.Errorf("stopped after purging %d: %w", sum.Purged, err)
			}
			return err
		}
		sum.Purged, sum.Matched = sum.Purged+r.Purged, sum.Matched+r.Matched
		if r.Done || r.LastID == "" {
			return nil
		}
		req.After, req.Until = r.LastID, r.Until
	}
}

// filterFlags are the dead-letter filter flags of replay and purge.
type filterFlags struct {
	since, until, reason, route string
	status                      *int
	dryRun                      bool
}

func addFilterFlags(fs *flag.FlagSet) *filterFlags {
	ff := &filterFlags{}
	fs.StringVar(&ff.since, "since", "", "only dead letters dead-lettered at or after this RFC 3339 time")
	fs.StringVar(&ff.until, "until", "", "only dead letters dead-lettered before this RFC 3339 time")
	fs.StringVar(&ff.reason, "reason", "", "only this reason: permanent, max_attempts, max_age, trimmed, malformed")
	fs.StringVar(&ff.route, "route", "", "only this ingest route, e.g. ens/click")
	fs.Func("status", "only this last HTTP status (0: no reply)", func(v string) error {
		n, err := strconv.Atoi(v)
		if err != nil {
			return fmt.Errorf("%q is not a number", v)
		}
		ff.status = &n
		return nil
	})
	fs.BoolVar(&ff.dryRun, "dry-run", false, "count what would be replayed or purged; change nothing")
	return ff
}

// filter is the API filter the flags ask for, nil when none. Times are checked here so a
// typo is a usage error; the relay checks everything again.
func (ff *filterFlags) filter() (*admin.DeadFilter, error) {
	for _, t := range []struct{ name, v string }{{"--since", ff.since}, {"--until", ff.until}} {
		if _, err := time.Parse(time.RFC3339Nano, t.v); t.v != "" && err != nil {
			return nil, fmt.Errorf("%s %q is not an RFC 3339 time (e.g. 2026-12-01T00:00:00Z)", t.name, t.v)
		}
	}
	f := admin.DeadFilter{Since: ff.since, Until: ff.until, Reason: ff.reason, Status: ff.status, Route: ff.route}
	if f == (admin.DeadFilter{}) {
		return nil, nil
	}
	return &f, nil
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
