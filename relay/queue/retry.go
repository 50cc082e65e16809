package queue

import (
	"encoding/binary"
	"encoding/json"
	"strconv"

	"github.com/eventrelay/relay/delivery"
)

// A retry member is one member of a provider's retry set (score: due time, unix ms by
// Redis's clock): the entry's envelope with a trailer of attempts, status and error,
// which moveScript XADDs back into the events stream when due. It holds the attempt
// count, so it is unique per attempt. Earlier relays wrote a JSON array of field/value
// pairs instead (the nine ingest fields, then attempts, status and error); moveScript
// moves those as they are, and DecodeEntry reads what they become.

// retryMember encodes e for the retry set after attempts attempts, the last of which
// ended with status and errText. e must not be Bad.
func retryMember(e *Entry, attempts, status int, errText string) string {
	b := make([]byte, 0, len(e.ingest)+3*binary.MaxVarintLen64+len(errText))
	b = append(b, e.ingest...)
	return string(appendTrailer(b, attempts, status, errText))
}

// EncodeRetryMember is the retry member of m after attempts attempts, the last of which
// ended with status and errText: for tools and tests that write retries themselves.
func EncodeRetryMember(m *delivery.Message, attempts, status int, errText string) string {
	return retryMember(&Entry{ingest: EncodeEntry(m)}, attempts, status, errText)
}

// RetryMemberAt reads the event's received_at (unix ms) from a retry member, false when
// the member has none or is not one.
func RetryMemberAt(member string) (int64, bool) {
	if len(member) == 0 || member[0] != '[' {
		return envelopeAt(member)
	}
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
