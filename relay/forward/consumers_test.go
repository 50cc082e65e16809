package forward_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/eventrelay/relay/relay/queue"
)

// TestStoppedRelaysConsumersAreRemoved: the consumer of a relay that stopped (idle past
// consumer_expiry, holding nothing) leaves the provider's group by itself, while the
// running forwarder's own consumer stays and events keep being delivered.
func TestStoppedRelaysConsumersAreRemoved(t *testing.T) {
	e := newEnvWith(t, envOptions{consumerExpiry: 300 * time.Millisecond})
	ctx := context.Background()
	stream := e.keys.Events("ens")
	e.eventually(5*time.Second, "the group to exist", func() bool {
		return e.rdb.XGroupCreateConsumer(ctx, stream, queue.Group, "stopped-relay-f").Err() == nil
	})
	names := func() []string {
		cs, err := e.rdb.XInfoConsumers(ctx, stream, queue.Group).Result()
		if err != nil {
			t.Fatalf("XINFO CONSUMERS: %v", err)
		}
		var out []string
		for _, c := range cs {
			out = append(out, c.Name)
		}
		return out
	}
	e.eventually(15*time.Second, "the stopped relay's consumer to be removed", func() bool {
		return !slices.Contains(names(), "stopped-relay-f")
	})
	id := e.send("ens/click", `{"n":1}`)
	e.eventually(10*time.Second, "delivery after the removal", func() bool {
		for _, h := range e.up["ens"].got() {
			if h.status < 300 && strings.Contains(h.header.Get(eventIDHeader), id) {
				return true
			}
		}
		return false
	})
	if got := names(); len(got) != 1 {
		t.Errorf("consumers after delivery %v; want only the running forwarder's", got)
	}
}
