package queue

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/eventrelay/relay/delivery"
	"github.com/eventrelay/relay/internal/redistest"
)

// outcome is one Enqueue's answer.
type outcome struct {
	m   *delivery.Message
	dup bool
	err error
}

// enqueueOneBatch enqueues msgs concurrently on an Enqueuer whose single writer starts
// only once every request is queued, so they all go out in one pipeline. It returns the
// answers in the order of msgs and the Enqueuer (stopped when the test ends).
func enqueueOneBatch(t *testing.T, client redis.UniversalClient, msgs []*delivery.Message) ([]outcome, *Enqueuer) {
	t.Helper()
	opts := defaultEnqOpts()
	opts.Writers, opts.MaxBatch = 1, len(msgs)
	opts.Timeout = 5 * time.Second // a slow machine must not split the batch by timing out
	e := NewEnqueuer(client, Keys{Prefix: testPrefix}, opts, zapTest(t))
	out := make([]outcome, len(msgs))
	var wg sync.WaitGroup
	for i, m := range msgs {
		wg.Go(func() {
			dup, err := e.Enqueue(t.Context(), m, ClientID)
			out[i] = outcome{m, dup, err}
		})
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(e.reqs) < len(msgs) {
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d requests queued", len(e.reqs), len(msgs))
		}
		time.Sleep(time.Millisecond)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	wg.Wait()
	if s := e.Stats(); s.Pipelines != 1 || s.Events != uint64(len(msgs)) {
		t.Fatalf("stats %+v: want all %d events in one pipeline", s, len(msgs))
	}
	return out, e
}

// TestEnqueueBatchMixed sends one pipeline holding, for two providers, an event already
// queued (duplicate), new events, and one new id twice: the first of the two is added,
// the second is a duplicate of it, whichever Redis runs first.
func TestEnqueueBatchMixed(t *testing.T) {
	_, conn := openRedis(t, redistest.Options{})
	before := runEnqueuer(t, conn.Client, defaultEnqOpts())
	old := testMessage("ens", 1)
	if dup, err := before.Enqueue(t.Context(), old, ClientID); err != nil || dup {
		t.Fatalf("first enqueue: dup=%v %v", dup, err)
	}
	twice := testMessage("ens", 3)
	twin := *twice
	twin.Body = []byte(`{"twin":true}`)
	msgs := []*delivery.Message{old, testMessage("ens", 2), twice, &twin, testMessage("brevo", 1), testMessage("brevo", 2)}
	out, e := enqueueOneBatch(t, conn.Client, msgs)
	if s := e.Stats(); s.Commands != 2 {
		t.Fatalf("%d script calls, want 2 (one per provider)", s.Commands)
	}
	for i, o := range out {
		if o.err != nil {
			t.Fatalf("%d (%s): %v", i, o.m.ID, o.err)
		}
	}
	if !out[0].dup || out[1].dup || out[4].dup || out[5].dup {
		t.Fatalf("duplicates %v %v %v %v: want only the event queued before", out[0].dup, out[1].dup, out[4].dup, out[5].dup)
	}
	if out[2].dup == out[3].dup {
		t.Fatalf("same id twice in one batch: dup=%v and dup=%v, want one added and one duplicate", out[2].dup, out[3].dup)
	}
	ens := entries(t, conn.Client, "ens")
	if n := countIDs(ens); len(n) != 3 || n[old.ID] != 1 || n["ev-ens-2"] != 1 || n[twice.ID] != 1 {
		t.Fatalf("ens entries %v", n)
	}
	// The entry of the repeated id is the one that was answered "added".
	added := msgs[2]
	if out[2].dup {
		added = msgs[3]
	}
	for _, m := range ens {
		if m.ID == twice.ID && string(m.Body) != string(added.Body) {
			t.Fatalf("entry %s has body %s, want the added one's %s", m.ID, m.Body, added.Body)
		}
	}
	// The requests reach the writer in any order; each entry is its own message.
	want := map[string]*delivery.Message{msgs[4].ID: msgs[4], msgs[5].ID: msgs[5]}
	got := entries(t, conn.Client, "brevo")
	for _, m := range got {
		if w := want[m.ID]; w == nil || !equalMessage(m, *w) {
			t.Fatalf("brevo entry %+v", m)
		}
	}
	if len(got) != 2 || got[0].ID == got[1].ID {
		t.Fatalf("brevo entries %+v", got)
	}
}

// TestEnqueueBatchFailedStream: a provider whose XADD fails (its stream key holds a
// string) fails all its events of the pipeline, leaves none of their markers behind, and
// does not fail another provider's events in the same pipeline.
func TestEnqueueBatchFailedStream(t *testing.T) {
	_, conn := openRedis(t, redistest.Options{})
	k := Keys{Prefix: testPrefix}
	if err := conn.Client.Set(t.Context(), k.Events("ens"), "not a stream", 0).Err(); err != nil {
		t.Fatal(err)
	}
	msgs := []*delivery.Message{testMessage("ens", 1), testMessage("brevo", 1), testMessage("ens", 2), testMessage("brevo", 2)}
	out, _ := enqueueOneBatch(t, conn.Client, msgs)
	for _, o := range out {
		switch o.m.Provider {
		case "ens":
			if !errors.Is(o.err, ErrUnavailable) || !strings.Contains(o.err.Error(), "WRONGTYPE") {
				t.Errorf("%s: err = %v, want ErrUnavailable (WRONGTYPE)", o.m.ID, o.err)
			}
			if n, _ := conn.Client.Exists(t.Context(), k.Seen("ens", o.m.Source, o.m.ID)).Result(); n != 0 {
				t.Errorf("%s: marker left behind by a failed XADD", o.m.ID)
			}
		default:
			if o.err != nil || o.dup {
				t.Errorf("%s: dup=%v %v", o.m.ID, o.dup, o.err)
			}
		}
	}
	if n := len(entries(t, conn.Client, "brevo")); n != 2 {
		t.Fatalf("%d brevo entries", n)
	}
	// The resends are enqueued, not called duplicates.
	conn.Client.Del(t.Context(), k.Events("ens"))
	e := runEnqueuer(t, conn.Client, defaultEnqOpts())
	for _, m := range msgs {
		dup, err := e.Enqueue(t.Context(), m, ClientID)
		if err != nil || dup != (m.Provider == "brevo") {
			t.Fatalf("resend %s: dup=%v %v", m.ID, dup, err)
		}
	}
}

// TestEnqueueBatchOOM: with Redis over maxmemory (noeviction) every event of the batch
// is refused, none leaves a marker, and once memory is available the resends are
// enqueued. Redis refuses a script's write for OOM only before the script's first write,
// so an OOM fails a whole call, never part of it.
func TestEnqueueBatchOOM(t *testing.T) {
	_, conn := openRedis(t, redistest.Options{})
	ctx := t.Context()
	if err := conn.Client.ConfigSet(ctx, "maxmemory", "1").Err(); err != nil {
		t.Fatal(err)
	}
	msgs := []*delivery.Message{testMessage("ens", 1), testMessage("ens", 2), testMessage("brevo", 1)}
	out, _ := enqueueOneBatch(t, conn.Client, msgs)
	k := Keys{Prefix: testPrefix}
	for _, o := range out {
		if !errors.Is(o.err, ErrUnavailable) || !strings.Contains(o.err.Error(), "OOM") {
			t.Errorf("%s: err = %v, want ErrUnavailable (OOM)", o.m.ID, o.err)
		}
		if n, _ := conn.Client.Exists(ctx, k.Seen(o.m.Provider, o.m.Source, o.m.ID)).Result(); n != 0 {
			t.Errorf("%s: marker left behind", o.m.ID)
		}
	}
	if err := conn.Client.ConfigSet(ctx, "maxmemory", "0").Err(); err != nil {
		t.Fatal(err)
	}
	e := runEnqueuer(t, conn.Client, defaultEnqOpts())
	for _, m := range msgs {
		if dup, err := e.Enqueue(ctx, m, ClientID); err != nil || dup {
			t.Fatalf("resend %s: dup=%v %v", m.ID, dup, err)
		}
	}
}

// TestGroupAnswerPerEvent: a call's reply maps to its requests one by one, an error
// element failing only its own request.
func TestGroupAnswerPerEvent(t *testing.T) {
	g := &group{events: "t:{ens}:events"}
	for range 4 {
		g.keyed = append(g.keyed, &request{reply: make(chan result, 1)})
	}
	g.cmd = redis.NewCmd(t.Context())
	oom := errors.New("OOM command not allowed when used memory > 'maxmemory'")
	g.cmd.SetVal([]any{int64(1), oom, int64(0), "surprise"})
	if err := g.answer(); err != oom {
		t.Fatalf("answer = %v, want the event's error", err)
	}
	res := make([]result, len(g.keyed))
	for i, r := range g.keyed {
		res[i] = <-r.reply
	}
	if res[0].err != nil || res[0].duplicate {
		t.Errorf("added: %+v", res[0])
	}
	if !errors.Is(res[1].err, ErrUnavailable) || !errors.Is(res[1].err, oom) {
		t.Errorf("failed: %+v", res[1])
	}
	if res[2].err != nil || !res[2].duplicate {
		t.Errorf("duplicate: %+v", res[2])
	}
	if !errors.Is(res[3].err, ErrUnavailable) {
		t.Errorf("unexpected reply type: %+v", res[3])
	}

	// A whole-call error, or a reply of the wrong length, fails every request.
	for _, val := range []any{nil, []any{int64(1)}} {
		g.cmd = redis.NewCmd(t.Context())
		if val == nil {
			g.cmd.SetErr(errors.New("connection reset"))
		} else {
			g.cmd.SetVal(val)
		}
		if g.answer() == nil {
			t.Errorf("%v: no error", val)
		}
		for i, r := range g.keyed {
			if res := <-r.reply; !errors.Is(res.err, ErrUnavailable) {
				t.Errorf("%v: request %d: %+v", val, i, res)
			}
		}
	}
}

// TestGroupAnswerPlain: each event without a marker has its own XADD, whose reply (an
// id, or an error) answers it alone, beside a script call for keyed events.
func TestGroupAnswerPlain(t *testing.T) {
	g := &group{events: "t:{ens}:events"}
	wrongType := errors.New("WRONGTYPE Operation against a key holding the wrong kind of value")
	for _, reply := range []any{"1700000000000-0", wrongType} {
		r := &request{reply: make(chan result, 1), cmd: redis.NewCmd(t.Context())}
		if err, ok := reply.(error); ok {
			r.cmd.SetErr(err)
		} else {
			r.cmd.SetVal(reply)
		}
		g.plain = append(g.plain, r)
	}
	if err := g.answer(); err != wrongType {
		t.Fatalf("answer = %v, want the failed XADD's error", err)
	}
	if res := <-g.plain[0].reply; res.err != nil || res.duplicate {
		t.Errorf("added: %+v", res)
	}
	if res := <-g.plain[1].reply; !errors.Is(res.err, ErrUnavailable) || !errors.Is(res.err, wrongType) {
		t.Errorf("failed: %+v", res)
	}
}
