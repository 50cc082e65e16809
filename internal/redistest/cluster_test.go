package redistest

import (
	"testing"
)

// TestClusterFailover: the local cluster comes up with 3 masters and 3 replicas; killing
// the master of a key promotes its replica; restarted, the old master rejoins as a
// replica.
func TestClusterFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("starts six redis-server processes and waits for a failover")
	}
	c := StartCluster(t, 3, 1)
	if n := len(c.Masters()); n != 3 {
		t.Fatalf("%d masters; want 3", n)
	}
	old := c.MasterOf("relay:{ens}:events")
	old.Kill()
	c.WaitOK()
	if now := c.MasterOf("relay:{ens}:events"); now == old {
		t.Fatalf("the killed node %s is still master of the key", old.Addr())
	}
	old.Restart()
	c.WaitOK()
	if n := len(c.Masters()); n != 3 {
		t.Fatalf("%d masters after the old master rejoined; want 3", n)
	}
}
