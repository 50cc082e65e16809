package queue

import (
	"bytes"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/eventrelay/relay/delivery"
	"github.com/eventrelay/relay/internal/redistest"
)

func TestKeys(t *testing.T) {
	k := Keys{Prefix: "relay"}
	for got, want := range map[string]string{
		k.Events("ens"):                       "relay:{ens}:events",
		k.Retry("ens"):                        "relay:{ens}:retry",
		k.Dead("ens"):                         "relay:{ens}:dead",
		k.Seen("ens", "site:shop", "ev-1:a"):  "relay:{ens}:seen:site:shop:ev-1:a",
		k.Events("cardlytics"):                "relay:{cardlytics}:events",
		k.Seen("brevo", "client:be", "x.y_z"): "relay:{brevo}:seen:client:be:x.y_z",
		// A ':' or '%' in a caller's name is escaped: the id starts after the caller's
		// last unescaped ':', so ("site:a:b", "c") and ("site:a", "b:c") differ.
		k.Seen("ens", "site:a:b", "c"):  "relay:{ens}:seen:site:a%3Ab:c",
		k.Seen("ens", "site:a", "b:c"):  "relay:{ens}:seen:site:a:b:c",
		k.Seen("ens", "site:100%", "x"): "relay:{ens}:seen:site:100%25:x",
		k.Seen("ens", "nokind", "x"):    "relay:{ens}:seen:nokind:x",
	} {
		if got != want {
			t.Errorf("got %q, want %q", got, want)
		}
	}
	if Group != "relay" {
		t.Errorf("Group = %q", Group)
	}
}

// entryValues renders an entry the way go-redis hands XMessage.Values to a reader.
func entryValues(m *delivery.Message) map[string]any {
	var e entry
	e.set(m, Keys{Prefix: testPrefix}.seenPrefix(m.Provider), RelayID)
	args := e.appendValues(nil)
	if len(args) != 1 {
		panic("an entry has one value, its envelope")
	}
	b, _ := args[0].(*argBytes).MarshalBinary()
	return map[string]any{FieldEnvelope: string(b)}
}

// legacyValues renders m in the nine-field format of earlier relays, exactly as their
// enqueue script wrote it: the fixture of every test that old entries still work.
func legacyValues(m *delivery.Message) map[string]any {
	return map[string]any{
		"id": m.ID, "route": m.Route, "body": string(m.Body), "at": strconv.FormatInt(m.ReceivedAt.UnixMilli(), 10),
		"ip": m.ClientIP, "ua": m.UserAgent, "country": m.Country, "customer": m.CustomerID, "src": m.Source,
	}
}

// TestEntrySeenKey: the Seen key the enqueue path writes into the entry's buffer is
// Keys.Seen for a caller's id and absent for a relay-generated one, and reusing the
// entry for a shorter message leaves no trace of the longer.
func TestEntrySeenKey(t *testing.T) {
	k := Keys{Prefix: "relay"}
	var e entry
	for _, m := range []*delivery.Message{testMessage("ens", 123456), testMessage("brevo", 7)} {
		e.set(m, k.seenPrefix(m.Provider), ClientID)
		if got, want := string(e.seen), k.Seen(m.Provider, m.Source, m.ID); got != want {
			t.Fatalf("seen key %q, want %q", got, want)
		}
		e.set(m, k.seenPrefix(m.Provider), RelayID)
		if len(e.seen) != 0 {
			t.Fatalf("seen key %q for a relay-generated id, want none", e.seen)
		}
		env, err := decodeEnvelope(m.Provider, string(e.env))
		if err != nil || !equalMessage(env.msg, *m) {
			t.Fatalf("envelope %+v (%v), want %+v", env.msg, err, *m)
		}
	}
}

// The legacy nine-field format: what earlier relays wrote, and entries they left queued.
func TestDecodeMessageRoundTrip(t *testing.T) {
	m := testMessage("ens", 7)
	v := legacyValues(m)
	if len(v) != numFields {
		t.Fatalf("%d fields, want %d: %v", len(v), numFields, v)
	}
	got, err := DecodeMessage("ens", v)
	if err != nil {
		t.Fatal(err)
	}
	if !equalMessage(got, *m) {
		t.Fatalf("got %+v\nwant %+v", got, *m)
	}
	if e := DecodeEntry("ens", "1-0", v); e.Bad != nil || !equalMessage(e.Message, *m) || e.Attempts != 0 {
		t.Fatalf("DecodeEntry: %+v", e)
	}
	// Optional fields may be absent (entries written by other tools, replays).
	for _, f := range []string{FieldIP, FieldUA, FieldCountry, FieldCustomer, FieldSource} {
		delete(v, f)
	}
	if _, err := DecodeMessage("ens", v); err != nil {
		t.Fatalf("without optional fields: %v", err)
	}
}

func TestDecodeMessageMalformed(t *testing.T) {
	good := legacyValues(testMessage("ens", 1))
	cases := map[string]map[string]any{
		"trimmed (no fields)": {},
		"nil":                 nil,
		"no id":               without(good, FieldID),
		"no body":             without(good, FieldBody),
		"no route":            without(good, FieldRoute),
		"no at":               without(good, FieldAt),
		"bad at":              with(good, FieldAt, "yesterday"),
		"empty id":            with(good, FieldID, ""),
		"not a string":        with(good, FieldRoute, 42),
	}
	for name, v := range cases {
		if _, err := DecodeMessage("ens", v); !errors.Is(err, ErrMalformedEntry) {
			t.Errorf("%s: err = %v, want ErrMalformedEntry", name, err)
		}
	}
}

// TestTrimmedEntryIsMalformed pins the PITFALL the format guards against: after a MAXLEN
// trim, XREADGROUP of a pending entry returns its id with no fields.
func TestTrimmedEntryIsMalformed(t *testing.T) {
	_, conn := openRedis(t, redistest.Options{})
	ctx := t.Context()
	c := conn.Client
	key := Keys{Prefix: testPrefix}.Events("ens")
	if err := c.XGroupCreateMkStream(ctx, key, Group, "0").Err(); err != nil {
		t.Fatal(err)
	}
	e := runEnqueuer(t, c, defaultEnqOpts())
	if _, err := e.Enqueue(ctx, testMessage("ens", 1), ClientID); err != nil {
		t.Fatal(err)
	}
	read := func(id string) []redis.XMessage {
		s, err := c.XReadGroup(ctx, &redis.XReadGroupArgs{Group: Group, Consumer: "c1",
			Streams: []string{key, id}, Count: 10, Block: -1}).Result()
		if err != nil {
			t.Fatal(err)
		}
		return s[0].Messages
	}
	if ms := read(">"); len(ms) != 1 {
		t.Fatalf("read %d entries", len(ms))
	} else if e := DecodeEntry("ens", ms[0].ID, ms[0].Values); e.Bad != nil {
		t.Fatalf("fresh entry: %v", e.Bad)
	}
	if err := c.XTrimMaxLen(ctx, key, 0).Err(); err != nil {
		t.Fatal(err)
	}
	ms := read("0")
	if len(ms) != 1 {
		t.Fatalf("pending read %d entries", len(ms))
	}
	if _, err := DecodeMessage("ens", ms[0].Values); !errors.Is(err, ErrMalformedEntry) {
		t.Fatalf("trimmed entry: err = %v, want ErrMalformedEntry", err)
	}
	if e := DecodeEntry("ens", ms[0].ID, ms[0].Values); !errors.Is(e.Bad, ErrMalformedEntry) || e.Reason != DeadTrimmed {
		t.Fatalf("trimmed entry: %v %q, want ErrMalformedEntry, %q", e.Bad, e.Reason, DeadTrimmed)
	}
}

func TestEntryNeverHoldsASecretField(t *testing.T) {
	v := entryValues(testMessage("ens", 1))
	for k := range legacyValues(testMessage("ens", 1)) {
		v[k] = ""
	}
	for k := range v {
		if strings.Contains(k, "key") || strings.Contains(k, "secret") || strings.Contains(k, "token") {
			t.Errorf("entry field %q", k)
		}
	}
}

func equalMessage(a, b delivery.Message) bool {
	return a.ID == b.ID && a.Provider == b.Provider && a.Route == b.Route && bytes.Equal(a.Body, b.Body) &&
		a.ReceivedAt.Equal(b.ReceivedAt.Truncate(time.Millisecond)) && a.ClientIP == b.ClientIP &&
		a.UserAgent == b.UserAgent && a.Country == b.Country && a.CustomerID == b.CustomerID && a.Source == b.Source
}

func without(v map[string]any, k string) map[string]any {
	c := with(v, k, nil)
	delete(c, k)
	return c
}

func with(v map[string]any, k string, val any) map[string]any {
	c := make(map[string]any, len(v))
	for kk, vv := range v {
		c[kk] = vv
	}
	c[k] = val
	return c
}
