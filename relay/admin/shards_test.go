package admin

import "testing"

func TestParseHandle(t *testing.T) {
	for _, c := range []struct {
		in    string
		shard int
		id    string
		ok    bool
	}{
		{"1718000000000-0", 0, "1718000000000-0", true},
		{"1718000000000-3@2", 2, "1718000000000-3", true},
		{"1718000000000@63", 63, "1718000000000", true},
		{"1718000000000-0@0", 0, "", false},  // shard 0 has no suffix
		{"1718000000000-0@02", 0, "", false}, // one spelling per shard
		{"1718000000000-0@x", 0, "", false},
		{"1718000000000-0@", 0, "", false},
		{"@1", 0, "", false},
		{"abc@1", 0, "", false},
	} {
		shard, id, ok := parseHandle(c.in)
		if shard != c.shard || id != c.id || ok != c.ok {
			t.Errorf("parseHandle(%q) = %d, %q, %v; want %d, %q, %v", c.in, shard, id, ok, c.shard, c.id, c.ok)
		}
		if ok && handle(shard, id) != c.in {
			t.Errorf("handle(%d, %q) = %q, want %q", shard, id, handle(shard, id), c.in)
		}
	}
}
