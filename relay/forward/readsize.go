package forward

// sampleSize is how many of the last entries read the read sizer remembers the batch
// keys of.
const sampleSize = 256

// manyKeys is the most batch keys per request of a turn for which reads are sized to fill
// every key's batch. A read holding K keys for R requests sends R batches, keeps R for
// the next turn and sends the other K−2R back to the stream: above 8 keys per request
// that is over 3 entries sent back per entry sent, and reads go back to a request's
// worth at a time.
const manyKeys = 8

// readSizer sizes the fetcher's reads (entries per request of a turn) from the batch keys
// of the entries read last. Owned by the fetcher goroutine.
//
// Batch keys vary by provider: one key (Brevo's v3 events), a few busy keys (Cardlytics
// customers), or a key per event (none: each event its own request). Where keys repeat,
// a read large enough to fill every key's batch sends full requests, and what has no
// request this turn is kept for the next; where they do not, a larger read would only
// send entries back to the stream.
type readSizer struct {
	maxWeight int
	perBatch  int // entries to read per request of the next turn
	// ring holds the batch keys of the last sampleSize entries read ("" counted apart:
	// an entry without a key is a batch of its own), count how often each appears.
	ring    [sampleSize]string
	n, next int
	count   map[string]int
	singles int
}

func newReadSizer(maxWeight int) *readSizer {
	w := max(maxWeight, 1)
	return &readSizer{maxWeight: w, perBatch: w, count: map[string]int{}}
}

// add records the batch key of one entry read.
func (r *readSizer) add(key string) {
	if r.n == sampleSize {
		r.forget(r.ring[r.next])
	} else {
		r.n++
	}
	r.ring[r.next] = key
	r.next = (r.next + 1) % sampleSize
	if key == "" {
		r.singles++
		return
	}
	r.count[key]++
}

func (r *readSizer) forget(key string) {
	if key == "" {
		r.singles--
		return
	}
	if r.count[key]--; r.count[key] == 0 {
		delete(r.count, key)
	}
}

// update sizes the next read after a turn of requests requests whose live entries made
// batches batches.
func (r *readSizer) update(requests, live, batches int) {
	if r.maxWeight == 1 || live == 0 || batches == 0 {
		r.perBatch = r.maxWeight
		return
	}
	keys := len(r.count) + r.singles
	switch {
	case r.n >= 2*keys && keys <= manyKeys*requests:
		// Keys repeat: read a full batch per key (several per request when keys are
		// fewer than requests).
		r.perBatch = min(maxRead, ceilDiv(max(keys, requests)*r.maxWeight, requests))
	case r.n < sampleSize && batches <= manyKeys*requests:
		// Too few entries seen yet to tell: keep the read size.
	default:
		// Many light keys: read about what the requests can carry.
		r.perBatch = max(1, min(r.maxWeight, ceilDiv(live, batches)))
	}
}

func ceilDiv(a, b int) int { return (a + b - 1) / b }
