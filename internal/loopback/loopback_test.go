package loopback

import "testing"

func TestFreeAddrsAreDistinct(t *testing.T) {
	for range 200 {
		addrs, err := FreeAddrs(3)
		if err != nil {
			t.Fatal(err)
		}
		if len(addrs) != 3 || addrs[0] == addrs[1] || addrs[1] == addrs[2] || addrs[0] == addrs[2] {
			t.Fatalf("FreeAddrs(3) = %v, want three distinct addresses", addrs)
		}
	}
}
