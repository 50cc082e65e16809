package forward_test

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/eventrelay/relay/relay/queue"
)

// An entry a dead consumer held, then deleted by a trim (XADD MAXLEN deletes entries even while
// pending): the reclaimer finds it gone and dead-letters its id as "trimmed"
// instead of losing track of it. An entry whose fields are damaged goes to dead as
// "malformed" without an attempt.
func TestTrimmedAndMalformedEntriesAreDeadLettered(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	stream := e.keys.Events("bannerflex")
	// Stop our own workers from reading first: add entries only once the group exists,
	// and claim them for a consumer that will never ack.
	e.eventually(5*time.Second, "consumer group", func() bool {
		groups, _ := e.rdb.XInfoGroups(ctx, stream).Result()
		return len(groups) == 1
	})
	pipe := e.rdb.TxPipeline()
	trimmedID := pipe.XAdd(ctx, &redis.XAddArgs{Stream: stream, Values: []any{"id", "x1", "route", "bannerflex/banner-events", "body", bfBody, "at", "1"}})
	pipe.XReadGroup(ctx, &redis.XReadGroupArgs{Group: queue.Group, Consumer: "crashed-relay", Streams: []string{stream, ">"}, Count: 1, Block: -1})
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	if err := e.rdb.XDel(ctx, stream, trimmedID.Val()).Err(); err != nil {
		t.Fatal(err)
	}
	malformed := e.rdb.XAdd(ctx, &redis.XAddArgs{Stream: stream, Values: []any{"id", "x2", "route", "bannerflex/banner-events"}}).Val()

	e.eventually(10*time.Second, "two dead letters", func() bool { return len(e.dead("bannerflex")) == 2 })
	reasons := map[string]string{}
	for _, d := range e.dead("bannerflex") {
		reasons[d.EventsStreamID] = d.Reason
	}
	if reasons[trimmedID.Val()] != "trimmed" || reasons[malformed] != "malformed" {
		t.Fatalf("dead letters %v, want %s trimmed and %s malformed", reasons, trimmedID.Val(), malformed)
	}
	e.settledRequests("bannerflex", 0, 5*time.Second) // undeliverable entries are never sent
}
