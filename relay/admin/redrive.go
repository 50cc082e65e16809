package admin

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/eventrelay/relay/relay/queue"
)

// deadReasons are the values DeadFilter.Reason may take.
var deadReasons = []string{queue.DeadPermanent, queue.DeadMaxAttempts, queue.DeadMaxAge, queue.DeadTrimmed, queue.DeadMalformed}

// parseFilter checks f for provider and turns it into queue's form; nil matches all.
// Each error names the field.
func parseFilter(f *DeadFilter, provider string) (queue.DeadFilter, error) {
	var out queue.DeadFilter
	if f == nil {
		return out, nil
	}
	for _, t := range []struct {
		name string
		in   string
		dst  *time.Time
	}{{"filter.since", f.Since, &out.Since}, {"filter.until", f.Until, &out.Until}} {
		if t.in == "" {
			continue
		}
		v, err := time.Parse(time.RFC3339Nano, t.in)
		if err != nil || v.UnixMilli() <= 0 {
			return out, fmt.Errorf("%w: %s %q is not an RFC 3339 time after 1970 (e.g. 2026-12-01T00:00:00Z)", errBadBody, t.name, t.in)
		}
		*t.dst = v
	}
	if !out.Since.IsZero() && !out.Until.IsZero() && !out.Since.Before(out.Until) {
		return out, fmt.Errorf("%w: filter.until must be later than filter.since", errBadBody)
	}
	if f.Reason != "" && !slices.Contains(deadReasons, f.Reason) {
		return out, fmt.Errorf("%w: filter.reason %q is none of %s", errBadBody, f.Reason, strings.Join(deadReasons, ", "))
	}
	out.Reason = f.Reason
	if f.Status != nil {
		if *f.Status < 0 || *f.Status > 999 {
			return out, fmt.Errorf("%w: filter.status %d is no HTTP status (0: no reply)", errBadBody, *f.Status)
		}
		out.Status, out.HasStatus = *f.Status, true
	}
	if f.Route != "" && !strings.HasPrefix(f.Route, provider+"/") {
		return out, fmt.Errorf("%w: filter.route %q is not a route of %s (%s/<operation>)", errBadBody, f.Route, provider, provider)
	}
	out.Route = f.Route
	return out, nil
}

// checkPage validates the paging fields shared by replay and purge.
func checkPage(limit int, after, until string) error {
	if limit < 0 {
		return fmt.Errorf("%w: limit must not be negative", errBadBody)
	}
	for _, id := range []string{after, until} {
		if id != "" && !validHandle(id) {
			return fmt.Errorf("%w: %q is not a stream id", errBadBody, id)
		}
	}
	return nil
}

// scan is one paged pass over a provider's dead letters, for a replay or purge by filter.
type scan struct {
	provider string
	filter   queue.DeadFilter
	// limit caps the dead letters looked at (0: no cap); after and until bound the ids.
	limit        int
	after, until string
	// page handles the dead letters of one page that match the filter.
	page func(r *http.Request, matched []queue.DeadLetter) error
}

// scanned is what a scan did.
type scanned struct {
	matched int64
	lastID  string
	until   string
	done    bool
}

// runScan pages through the dead letters after s.after up to s.until (default: the newest
// now), chunk at a time (XRANGE, so memory stays bounded however long the stream),
// handing each page's matches to s.page. The upper bound keeps a provider that
// dead-letters replayed events at once from looping forever. With shards it goes shard
// by shard, from the shard of s.after (or s.until), each up to its newest when the scan
// reaches it; the cursors it answers (last_id, until) are handles of the shard it is in.
func (a *api) runScan(r *http.Request, s scan) (scanned, error) {
	cursor := s.after
	if cursor == "" {
		cursor = s.until
	}
	first, _, _ := parseHandle(cursor) // checked by checkPage
	var out scanned
	for shard := first; shard < a.keys.NumShards(); shard++ {
		one := s
		if shard != first {
			one.after, one.until = "", ""
		}
		res, err := a.scanShard(r, shard, one)
		out.matched += res.matched
		if res.lastID != "" || shard == first {
			out.lastID, out.until = res.lastID, res.until
		}
		if err != nil || !res.done {
			return out, err
		}
		if s.limit > 0 {
			s.limit -= res.seen
			if s.limit <= 0 && shard+1 < a.keys.NumShards() {
				return out, nil // not done: the next call goes on from here
			}
		}
	}
	out.done = true
	return out, nil
}

// shardScanned is what a scan did in one shard.
type shardScanned struct {
	scanned
	seen int
}

// scanShard is runScan in one shard, its cursors handles of that shard.
func (a *api) scanShard(r *http.Request, shard int, s scan) (shardScanned, error) {
	keys := a.keys.ForShard(shard)
	_, after, _ := parseHandle(s.after)
	_, until, _ := parseHandle(s.until)
	out := shardScanned{scanned: scanned{until: s.until}}
	if until == "" {
		ctx, cancel := a.redisCtx(r)
		newest, err := queue.NewestDeadID(ctx, a.client, keys, s.provider)
		cancel()
		if err != nil {
			return out, err
		}
		if newest == "" {
			out.done = true
			return out, nil
		}
		until = newest
		out.until = handle(shard, newest)
	}
	for {
		n := chunk
		if s.limit > 0 {
			n = min(n, s.limit-out.seen)
		}
		if n == 0 {
			return out, nil
		}
		ctx, cancel := a.redisCtx(r)
		page, err := queue.ScanDead(ctx, a.client, keys, s.provider, s.filter, after, until, n)
		cancel()
		if err != nil {
			return out, err
		}
		if len(page) == 0 {
			out.done = true
			return out, nil
		}
		after = page[len(page)-1].StreamID
		page = tagged(page, shard)
		matched := slices.DeleteFunc(slices.Clone(page), func(d queue.DeadLetter) bool { return !s.filter.Match(d) })
		out.matched += int64(len(matched))
		if len(matched) > 0 {
			if err := s.page(r, matched); err != nil {
				return out, err
			}
		}
		out.seen += len(page)
		out.lastID = page[len(page)-1].StreamID
		if after == until {
			out.done = true
			return out, nil
		}
	}
}

// byIDs hands the dead letters ids that exist and match f to page, chunk at a time, and
// returns how many matched and how many were gone.
func (a *api) byIDs(r *http.Request, provider string, ids []string, f queue.DeadFilter,
	page func(*http.Request, []queue.DeadLetter) error) (matched, missing int64, err error) {
	shards, byShard := a.byShard(ids)
	known := 0
	for _, s := range shards {
		known += len(byShard[s])
	}
	missing = int64(len(ids) - known) // handles of shards this deployment does not have
	for _, s := range shards {
		for part := range slices.Chunk(byShard[s], chunk) {
			if matched, missing, err = a.byIDsOfShard(r, provider, s, part, f, page, matched, missing); err != nil {
				return matched, missing, err
			}
		}
	}
	return matched, missing, nil
}

// byIDsOfShard is byIDs for one chunk of stream ids of one shard, adding to matched and missing.
func (a *api) byIDsOfShard(r *http.Request, provider string, shard int, part []string, f queue.DeadFilter,
	page func(*http.Request, []queue.DeadLetter) error, matched, missing int64) (int64, int64, error) {
	ctx, cancel := a.redisCtx(r)
	found, err := queue.GetDeadByIDs(ctx, a.client, a.keys.ForShard(shard), provider, part)
	cancel()
	if err != nil {
		return matched, missing, err
	}
	found = tagged(found, shard)
	missing += int64(len(part) - len(found))
	found = slices.DeleteFunc(found, func(d queue.DeadLetter) bool { return !f.Match(d) })
	matched += int64(len(found))
	if len(found) > 0 {
		if err := page(r, found); err != nil {
			return matched, missing, err
		}
	}
	return matched, missing, nil
}

// streamIDs are the dead letters' ids.
func streamIDs(dead []queue.DeadLetter) []string {
	ids := make([]string, len(dead))
	for i, d := range dead {
		ids[i] = d.StreamID
	}
	return ids
}

// auditScope names what a replay or purge selected, for the audit log.
func auditScope(ids []string, f *DeadFilter, dryRun bool) string {
	scope := "all"
	if ids != nil {
		scope = "ids"
	}
	if f != nil {
		scope += fmt.Sprintf(" filter{since=%q until=%q reason=%q route=%q status=%s}", f.Since, f.Until, f.Reason, f.Route, statusText(f.Status))
	}
	if dryRun {
		scope += " dry-run"
	}
	return scope
}

func statusText(s *int) string {
	if s == nil {
		return "any"
	}
	return fmt.Sprint(*s)
}
