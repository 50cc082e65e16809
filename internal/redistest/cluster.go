package redistest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// clusterTimeout bounds cluster creation and the wait for cluster_state:ok.
const clusterTimeout = 60 * time.Second

// Cluster is a Redis Cluster of local redis-server processes owned by a test: masters
// and their replicas, AOF on, a 1.5 s node timeout so a failover takes a few seconds.
type Cluster struct {
	t       testing.TB
	Nodes   []*Server
	masters int
}

// StartCluster starts masters × (1 + replicasPer) empty nodes with cluster mode on, each
// with its own directory (each writes its own nodes.conf), builds the cluster with
// `redis-cli --cluster create ... --cluster-replicas N --cluster-yes`, and waits until
// every node reports cluster_state:ok.
func StartCluster(t testing.TB, masters, replicasPer int) *Cluster {
	t.Helper()
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		t.Fatal("redistest: redis-cli not found on PATH (Debian package redis-tools); run the test command in README.md")
	}
	c := &Cluster{t: t, masters: masters}
	args := []string{"--cluster", "create"}
	for range masters * (1 + replicasPer) {
		n := Start(t, Options{ClusterBus: true, Args: []string{
			"--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
			"--cluster-node-timeout", "1500",
		}})
		c.Nodes = append(c.Nodes, n)
		args = append(args, n.Addr())
	}
	args = append(args, "--cluster-replicas", strconv.Itoa(replicasPer), "--cluster-yes")
	ctx, cancel := context.WithTimeout(context.Background(), clusterTimeout)
	defer cancel()
	if out, err := exec.CommandContext(ctx, cli, args...).CombinedOutput(); err != nil {
		t.Fatalf("redistest: redis-cli --cluster create: %v\n%s", err, out)
	}
	c.WaitOK()
	return c
}

// URL is the relay's redis+cluster:// URL naming every node.
func (c *Cluster) URL() string {
	addrs := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		addrs[i] = n.Addr()
	}
	return "redis+cluster://" + strings.Join(addrs, ",")
}

// WaitOK waits until every running node reports cluster_state:ok, the cluster has its
// number of masters serving slots (none of them failed), and every other running node is
// a replica: after creation, replicas have attached; after a master's kill, a replica
// was promoted; after its restart, the old master has rejoined as a replica.
func (c *Cluster) WaitOK() {
	c.t.Helper()
	deadline := time.Now().Add(clusterTimeout)
	for {
		bad := c.notOK()
		if bad == "" {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("redistest: cluster not ok after %s: %s", clusterTimeout, bad)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (c *Cluster) notOK() string {
	running := 0
	for _, n := range c.Nodes {
		if n.cmd == nil {
			continue
		}
		running++
		info, err := n.command("CLUSTER", "INFO")
		if err != nil {
			return n.Addr() + ": " + err.Error()
		}
		if !strings.Contains(info, "cluster_state:ok") {
			return n.Addr() + " is not ok"
		}
	}
	for _, n := range c.Nodes {
		if n.cmd == nil {
			continue
		}
		out, err := n.command("CLUSTER", "NODES")
		if err != nil {
			return n.Addr() + ": " + err.Error()
		}
		masters, replicas := 0, 0
		for _, line := range strings.Split(out, "\n") {
			f := strings.Fields(line)
			switch {
			case len(f) < 8 || strings.Contains(f[2], "fail"):
			case strings.Contains(f[2], "master") && len(f) > 8:
				masters++
			case strings.Contains(f[2], "slave"):
				replicas++
			}
		}
		if masters != c.masters || masters+replicas != running {
			return fmt.Sprintf("%s sees %d masters with slots and %d replicas; want %d and %d",
				n.Addr(), masters, replicas, c.masters, running-c.masters)
		}
	}
	return ""
}

// MasterOf returns the node that is master for key's slot now.
func (c *Cluster) MasterOf(key string) *Server {
	c.t.Helper()
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{c.anyRunning().Addr()}})
	defer cc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	m, err := cc.MasterForKey(ctx, key)
	if err != nil {
		c.t.Fatalf("redistest: master for %q: %v", key, err)
	}
	for _, n := range c.Nodes {
		if n.Addr() == m.Options().Addr {
			return n
		}
	}
	c.t.Fatalf("redistest: master %s for %q is not a node of this cluster", m.Options().Addr, key)
	return nil
}

// Masters returns the nodes that are masters serving slots now (by CLUSTER NODES of a
// running node).
func (c *Cluster) Masters() []*Server {
	c.t.Helper()
	out, err := c.anyRunning().command("CLUSTER", "NODES")
	if err != nil {
		c.t.Fatalf("redistest: CLUSTER NODES: %v", err)
	}
	var ms []*Server
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) < 9 || !strings.Contains(f[2], "master") || strings.Contains(f[2], "fail") {
			continue
		}
		addr, _, _ := strings.Cut(f[1], "@")
		for _, n := range c.Nodes {
			if n.Addr() == addr {
				ms = append(ms, n)
			}
		}
	}
	return ms
}

func (c *Cluster) anyRunning() *Server {
	for _, n := range c.Nodes {
		if n.cmd != nil {
			return n
		}
	}
	c.t.Fatal("redistest: no cluster node is running")
	return nil
}

// command runs one command on this node and returns its reply as text.
func (s *Server) command(args ...any) (string, error) {
	rc := redis.NewClient(&redis.Options{Addr: s.Addr(), DialTimeout: time.Second, ReadTimeout: 2 * time.Second, MaxRetries: -1})
	defer rc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	v, err := rc.Do(ctx, args...).Result()
	if err != nil {
		return "", err
	}
	return fmt.Sprint(v), nil
}

// freeBusPort finds a port below 55535 that is free, and whose cluster bus port (port +
// 10000) is free too.
func freeBusPort() (int, error) {
	for range 200 {
		p := 20000 + rand.IntN(35000)
		if portFree(p) && portFree(p+10000) {
			return p, nil
		}
	}
	return 0, errors.New("no free port pair (port, port+10000) below 55535 after 200 tries")
}

func portFree(p int) bool {
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
	if err != nil {
		return false
	}
	_ = ln.Close()
	return true
}
