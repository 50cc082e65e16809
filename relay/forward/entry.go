package forward

import (
	"encoding/json"
	"strconv"
	"time"

	"github.com/eventrelay/relay/delivery"
	"github.com/eventrelay/relay/relay/queue"
)

// Dead-letter reasons.
const (
	reasonPermanent   = "permanent"
	reasonMaxAttempts = "max_attempts"
	reasonMaxAge      = "max_age"
	reasonTrimmed     = "trimmed"
	reasonMalformed   = "malformed"
)

// carried are the ingest fields an entry keeps through retries and into dead letters, in
// a fixed order.
var carried = [...]string{
	queue.FieldID, queue.FieldRoute, queue.FieldBody, queue.FieldAt, queue.FieldIP,
	queue.FieldUA, queue.FieldCountry, queue.FieldCustomer, queue.FieldSource,
}

// entry is one stream entry a worker holds.
type entry struct {
	streamID string
	// owner is the consumer the entry is pending under (it read or claimed it): its
	// outcome is recorded only while that is still so.
	owner  string
	values map[string]any
	// took is when it was read or claimed: its idle time in the pending list began then.
	took     time.Time
	msg      delivery.Message
	attempts int
	// bad is set when the entry cannot be delivered at all (trimmed or malformed).
	bad    error
	reason string
}

func newEntry(provider, owner, streamID string, values map[string]any) *entry {
	e := &entry{streamID: streamID, owner: owner, values: values, took: time.Now()}
	if len(values) == 0 {
		e.bad, e.reason = queue.ErrMalformedEntry, reasonTrimmed
		return e
	}
	m, err := queue.DecodeMessage(provider, values)
	if err != nil {
		e.bad, e.reason = err, reasonMalformed
		return e
	}
	e.msg = m
	if s, ok := values[queue.FieldAttempts].(string); ok {
		e.attempts, _ = strconv.Atoi(s)
	}
	return e
}

// pairs returns the carried fields plus extra pairs, as strings.
func (e *entry) pairs(extra ...string) []string {
	out := make([]string, 0, 2*len(carried)+len(extra))
	for _, f := range carried {
		if v, ok := e.values[f].(string); ok {
			out = append(out, f, v)
		}
	}
	return append(out, extra...)
}

// retryMember encodes the entry for the retry set: a JSON array of field/value pairs that
// the move script XADDs back. It holds the attempt count, so it is unique per attempt.
func (e *entry) retryMember(attempts int, status int, errText string) (string, error) {
	b, err := json.Marshal(e.pairs(queue.FieldAttempts, strconv.Itoa(attempts),
		queue.FieldStatus, strconv.Itoa(status), queue.FieldError, errText))
	return string(b), err
}
