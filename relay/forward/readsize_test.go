package forward

import (
	"strconv"
	"testing"
)

// The read sizer's regimes: one key reads full batches for every request; a few busy keys
// read a full batch per key (more than the requests: the rest is kept); keys beyond
// manyKeys per request, or a key per event, read about a request's worth; an adapter
// that does not batch reads one entry per request.
func TestReadSizerRegimes(t *testing.T) {
	const maxW, requests = 50, 2
	sized := func(keys func(i int) string, n, batches int) int {
		r := newReadSizer(maxW)
		for i := range n {
			r.add(keys(i))
		}
		r.update(requests, n, batches)
		return r.perBatch
	}
	cases := []struct {
		name    string
		keys    func(i int) string
		n       int // entries read
		batches int
		want    int
	}{
		{"one key", func(int) string { return "k" }, 100, 2, maxW},
		{"five busy keys", func(i int) string { return strconv.Itoa(i % 5) }, 100, 5, 5 * maxW / requests},
		{"ten busy keys", func(i int) string { return strconv.Itoa(i % 10) }, 300, 10, 10 * maxW / requests},
		{"too many keys per request", func(i int) string { return strconv.Itoa(i % 40) }, 300, 40, 8},
		{"a key per event", func(i int) string { return strconv.Itoa(i) }, 300, 300, 1},
		{"no keys", func(int) string { return "" }, 300, 300, 1},
		{"few seen, no repeat yet: unchanged", func(i int) string { return strconv.Itoa(i) }, 4, 4, maxW},
	}
	for _, c := range cases {
		if got := sized(c.keys, c.n, c.batches); got != c.want {
			t.Errorf("%s: %d entries per request, want %d", c.name, got, c.want)
		}
	}
	r := newReadSizer(1)
	r.update(requests, 10, 10)
	if r.perBatch != 1 {
		t.Errorf("unbatched adapter: %d entries per request, want 1", r.perBatch)
	}
}

// The sample forgets the oldest keys: after a switch from a key per event to one busy
// key, reads grow back to full batches.
func TestReadSizerForgets(t *testing.T) {
	r := newReadSizer(50)
	for i := range sampleSize {
		r.add(strconv.Itoa(i))
	}
	r.update(2, sampleSize, sampleSize)
	if r.perBatch != 1 {
		t.Fatalf("a key per event: %d entries per request, want 1", r.perBatch)
	}
	for range sampleSize {
		r.add("busy")
	}
	r.update(2, 2, 1)
	if r.perBatch != 50 || r.n != sampleSize || len(r.count) != 1 || r.singles != 0 {
		t.Fatalf("after one busy key: perBatch %d, sample %d entries, %d keys, %d singles; want 50, %d, 1, 0",
			r.perBatch, r.n, len(r.count), r.singles, sampleSize)
	}
}
