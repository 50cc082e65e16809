package queue

import (
	"encoding/json"
	"strconv"
)

// A retry member is one member of a provider's retry set (score: due time, unix ms by
// Redis's clock): the entry's ingest fields plus attempts, status and error, as a JSON
// array of field/value pairs that moveScript XADDs back into the events stream when due.
// It holds the attempt count, so it is unique per attempt.

// retryMember encodes e for the retry set after attempts attempts, the last of which
// ended with status and errText.
func retryMember(e *Entry, attempts, status int, errText string) (string, error) {
	b, err := json.Marshal(e.ingestPairs(FieldAttempts, strconv.Itoa(attempts),
		FieldStatus, strconv.Itoa(status), FieldError, errText))
	return string(b), err
}

// RetryMemberAt reads the event's received_at (unix ms) from a retry member, false when
// the member has none or is not one.
func RetryMemberAt(member string) (int64, bool) {
	var pairs []string
	if json.Unmarshal([]byte(member), &pairs) != nil {
		return 0, false
	}
	for i := 0; i+1 < len(pairs); i += 2 {
		if pairs[i] == FieldAt {
			n, err := strconv.ParseInt(pairs[i+1], 10, 64)
			return n, err == nil
		}
	}
	return 0, false
}
