package forward

import (
	"time"

	"github.com/eventrelay/relay/relay/queue"
)

// entry is one stream entry a worker holds.
type entry struct {
	queue.Entry
	// owner is the consumer the entry is pending under (it read or claimed it): its
	// outcome is recorded only while that is still so.
	owner string
	// took is when it was read or claimed: its idle time in the pending list began then.
	took time.Time
	// tried and spent are when its last attempt started and how long that request took
	// (zero for a deferral): the trace's record of the attempt.
	tried time.Time
	spent time.Duration
	// batchKey and weight are the adapter's BatchKey (with the lane), once keyed; sampled
	// that the read sizer has counted the key (see readSizer).
	batchKey       string
	weight         int
	keyed, sampled bool
}

// held wraps entries read or claimed as owner.
func held(owner string, entries []*queue.Entry) []*entry {
	now := time.Now()
	out := make([]*entry, len(entries))
	for i, e := range entries {
		out[i] = &entry{Entry: *e, owner: owner, took: now}
	}
	return out
}
