package admin

import (
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/eventrelay/relay/relay/queue"
)

// A dead letter's handle (its "stream_id" in the API) is its id in its shard's
// dead-letter stream, followed by "@k" for shard k ≥ 1 (redis.shards): stream ids of
// different shards may be equal, and a replay must go back to the shard the event came
// from. Shard 0's handles are plain stream ids, as without shards.

// handle is the API's name of dead letter id of shard.
func handle(shard int, id string) string {
	if shard == 0 {
		return id
	}
	return id + "@" + strconv.Itoa(shard)
}

// parseHandle splits a handle into its shard and stream id; ok is false when it is not
// one (a stream id, optionally "@" and a shard number from 1).
func parseHandle(h string) (shard int, id string, ok bool) {
	id, s, sharded := strings.Cut(h, "@")
	if !validStreamID(id) {
		return 0, "", false
	}
	if !sharded {
		return 0, id, true
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > 1<<16 || strconv.Itoa(n) != s {
		return 0, "", false
	}
	return n, id, true
}

// validHandle reports whether s is a dead letter's handle.
func validHandle(s string) bool {
	_, _, ok := parseHandle(s)
	return ok
}

// byShard groups valid handles by shard (stream ids), in shard order; a shard this
// deployment does not have gets nothing (its handles are reported missing by callers).
func (a *api) byShard(handles []string) (shards []int, ids map[int][]string) {
	ids = map[int][]string{}
	for _, h := range handles {
		s, id, ok := parseHandle(h)
		if !ok || s >= a.keys.NumShards() {
			continue
		}
		if _, seen := ids[s]; !seen {
			shards = append(shards, s)
		}
		ids[s] = append(ids[s], id)
	}
	slices.Sort(shards)
	return shards, ids
}

// tagged sets each dead letter's StreamID to its handle in shard.
func tagged(dead []queue.DeadLetter, shard int) []queue.DeadLetter {
	for i := range dead {
		dead[i].StreamID = handle(shard, dead[i].StreamID)
	}
	return dead
}

// deleteHandles deletes the dead letters handles, chunk at a time, shard by shard.
func (a *api) deleteHandles(r *http.Request, provider string, handles []string) (int64, error) {
	var purged int64
	shards, ids := a.byShard(handles)
	for _, s := range shards {
		for part := range slices.Chunk(ids[s], chunk) {
			ctx, cancel := a.redisCtx(r)
			n, err := queue.DeleteDead(ctx, a.client, a.keys.ForShard(s), provider, part)
			cancel()
			purged += n
			if err != nil {
				return purged, err
			}
		}
	}
	return purged, nil
}

// purgeAll deletes every shard's dead-letter stream.
func (a *api) purgeAll(r *http.Request, provider string) (int64, error) {
	var purged int64
	for _, k := range a.keys.EachShard() {
		ctx, cancel := a.redisCtx(r)
		n, err := queue.PurgeDead(ctx, a.client, k, provider)
		cancel()
		purged += n
		if err != nil {
			return purged, err
		}
	}
	return purged, nil
}

// listDead is the dead letters' total over the shards and the newest limit of them,
// newest first (by stream id: the time each was dead-lettered), with their handles.
func (a *api) listDead(r *http.Request, provider string, limit int) (int64, []queue.DeadLetter, error) {
	var total int64
	var all []queue.DeadLetter
	for _, k := range a.keys.EachShard() {
		ctx, cancel := a.redisCtx(r)
		n, dead, err := queue.ListDead(ctx, a.client, k, provider, limit)
		cancel()
		if err != nil {
			return 0, nil, err
		}
		total += n
		all = append(all, tagged(dead, k.Shard)...)
	}
	if a.keys.NumShards() > 1 {
		slices.SortStableFunc(all, func(x, y queue.DeadLetter) int { return -compareStreamIDs(x.StreamID, y.StreamID) })
	}
	return total, all[:min(limit, len(all))], nil
}

// compareStreamIDs orders two handles by their stream ids ("<ms>-<seq>").
func compareStreamIDs(x, y string) int {
	parse := func(h string) (ms, seq uint64) {
		id, _, _ := strings.Cut(h, "@")
		a, b, _ := strings.Cut(id, "-")
		ms, _ = strconv.ParseUint(a, 10, 64)
		seq, _ = strconv.ParseUint(b, 10, 64)
		return ms, seq
	}
	xm, xs := parse(x)
	ym, ys := parse(y)
	if xm != ym {
		if xm < ym {
			return -1
		}
		return 1
	}
	switch {
	case xs < ys:
		return -1
	case xs > ys:
		return 1
	}
	return 0
}
