package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/eventrelay/relay/relay/queue"
)

// clusterTimeout bounds cluster creation and each wait for a healthy cluster.
const clusterTimeout = 60 * time.Second

// cluster is a local Redis Cluster the harness started for phase k: masters ×
// (1 + replicasPer) redis-server processes on loopback, each in its own temp dir (its
// own nodes.conf and AOF), AOF everysec and noeviction as the single node runs. It is
// adapted from internal/redistest/cluster.go (which needs a testing.TB).
type cluster struct {
	nodes   []*proc
	addrs   []string
	masters int
	// role is "master" or "replica" per node address, read once the cluster is ok.
	role map[string]string
}

// startCluster starts the nodes, builds the cluster with `redis-cli --cluster create
// ... --cluster-replicas N --cluster-yes` and waits until every node reports
// cluster_state:ok with the expected masters and replicas attached.
func startCluster(dir string, masters, replicasPer int) *cluster {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		fatalf("redis-server not found: install the Debian package redis-server")
	}
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		fatalf("redis-cli not found: install the Debian package redis-tools")
	}
	c := &cluster{masters: masters, role: map[string]string{}}
	args := []string{"--cluster", "create"}
	for i := range masters * (1 + replicasPer) {
		port := freeBusPort()
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		data := filepath.Join(dir, fmt.Sprintf("cluster-node%d", i))
		_ = os.MkdirAll(data, 0o700)
		p := track(start(fmt.Sprintf("cluster-node%d", i), dir, bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1",
			"--dir", data, "--save", "", "--appendonly", "yes", "--appendfsync", "everysec",
			"--maxmemory-policy", "noeviction", "--daemonize", "no", "--protected-mode", "yes",
			"--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "5000",
			"--repl-diskless-sync-delay", "0"))
		p.waitTCP(addr, 10*time.Second)
		c.nodes = append(c.nodes, p)
		c.addrs = append(c.addrs, addr)
		args = append(args, addr)
	}
	args = append(args, "--cluster-replicas", strconv.Itoa(replicasPer), "--cluster-yes")
	ctx, cancel := context.WithTimeout(context.Background(), clusterTimeout)
	defer cancel()
	if out, err := exec.CommandContext(ctx, cli, args...).CombinedOutput(); err != nil {
		fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	c.waitOK()
	return c
}

// url is the relay's redis+cluster:// URL naming every node.
func (c *cluster) url() string { return "redis+cluster://" + strings.Join(c.addrs, ",") }

// client is a cluster client for the harness's own reads and writes (prefill, backlog).
func (c *cluster) client() *redis.ClusterClient {
	return redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.addrs, PoolSize: 16})
}

// stop stops every node by its PID.
func (c *cluster) stop() {
	for _, p := range c.nodes {
		p.stop(5 * time.Second)
	}
}

// flush empties every master (FLUSHALL is per node on a cluster); replicas follow.
func (c *cluster) flush(cc *redis.ClusterClient) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := cc.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error {
		return m.FlushAll(ctx).Err()
	})
	if err != nil {
		fatalf("cluster FLUSHALL: %v", err)
	}
}

// waitOK polls until the cluster is healthy, then records each node's role.
func (c *cluster) waitOK() {
	deadline := time.Now().Add(clusterTimeout)
	for {
		bad := c.notOK()
		if bad == "" {
			return
		}
		if time.Now().After(deadline) {
			fatalf("cluster not ok after %s: %s", clusterTimeout, bad)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// notOK says what is not yet healthy ("" when every node reports cluster_state:ok and
// sees the expected masters serving slots and every other node as a replica).
func (c *cluster) notOK() string {
	for _, a := range c.addrs {
		info, err := nodeCommand(a, "CLUSTER", "INFO")
		if err != nil {
			return a + ": " + err.Error()
		}
		if !strings.Contains(info, "cluster_state:ok") {
			return a + " is not ok"
		}
	}
	for _, a := range c.addrs {
		out, err := nodeCommand(a, "CLUSTER", "NODES")
		if err != nil {
			return a + ": " + err.Error()
		}
		masters, replicas := 0, 0
		role := map[string]string{}
		for _, line := range strings.Split(out, "\n") {
			f := strings.Fields(line)
			addr, _, _ := strings.Cut(f0(f, 1), "@")
			switch {
			case len(f) < 8 || strings.Contains(f[2], "fail"):
			case strings.Contains(f[2], "master") && len(f) > 8:
				masters++
				role[addr] = "master"
			case strings.Contains(f[2], "slave"):
				replicas++
				role[addr] = "replica"
			}
		}
		if masters != c.masters || masters+replicas != len(c.addrs) {
			return fmt.Sprintf("%s sees %d masters with slots and %d replicas; want %d and %d",
				a, masters, replicas, c.masters, len(c.addrs)-c.masters)
		}
		c.role = role
	}
	return ""
}

func f0(f []string, i int) string {
	if i < len(f) {
		return f[i]
	}
	return ""
}

// pids names every node's process for CPU sampling: "redis-m<i>" for masters,
// "redis-r<i>" for replicas (i: the node's index).
func (c *cluster) pids() map[string]int {
	out := map[string]int{}
	for i, p := range c.nodes {
		k := "r"
		if c.role[c.addrs[i]] == "master" {
			k = "m"
		}
		out[fmt.Sprintf("redis-%s%d", k, i)] = p.pid()
	}
	return out
}

// placement says which master holds each provider's stream (its {P} hash tag's slot).
func (c *cluster) placement(cc *redis.ClusterClient, keyOf func(string) string, providers []string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var parts []string
	for _, p := range providers {
		m, err := cc.MasterForKey(ctx, keyOf(p))
		if err != nil {
			fatalf("master for %s: %v", p, err)
		}
		idx := -1
		for i, a := range c.addrs {
			if a == m.Options().Addr {
				idx = i
			}
		}
		parts = append(parts, fmt.Sprintf("%s → m%d", p, idx))
	}
	return strings.Join(parts, ", ")
}

// shardPlacement says, per provider, how many of its shards' streams each master holds
// ("ens: m0 2, m1 2, m2 2").
func (c *cluster) shardPlacement(cc *redis.ClusterClient, keys queue.Keys, providers []string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var parts []string
	for _, p := range providers {
		per := make([]int, len(c.addrs))
		for _, k := range keys.EachShard() {
			m, err := cc.MasterForKey(ctx, k.Events(p))
			if err != nil {
				fatalf("master for %s: %v", k.Events(p), err)
			}
			for i, a := range c.addrs {
				if a == m.Options().Addr {
					per[i]++
				}
			}
		}
		var on []string
		for i, n := range per {
			if n > 0 {
				on = append(on, fmt.Sprintf("m%d %d", i, n))
			}
		}
		parts = append(parts, p+": "+strings.Join(on, ", "))
	}
	return strings.Join(parts, "; ")
}

// nodeCommand runs one command on one node and returns its reply as text.
func nodeCommand(addr string, args ...any) (string, error) {
	rc := redis.NewClient(&redis.Options{Addr: addr, DialTimeout: time.Second, ReadTimeout: 2 * time.Second, MaxRetries: -1})
	defer rc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	v, err := rc.Do(ctx, args...).Result()
	if err != nil {
		return "", err
	}
	return fmt.Sprint(v), nil
}

// freeBusPort finds a loopback port below 55535 that is free and whose cluster bus port
// (port + 10000) is free too.
func freeBusPort() int {
	for range 200 {
		p := 20000 + rand.IntN(35000)
		if portFree(p) && portFree(p+10000) {
			return p
		}
	}
	fatalf("no free port pair (port, port+10000) below 55535 after 200 tries")
	return 0
}

func portFree(p int) bool {
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
	if err != nil {
		return false
	}
	_ = ln.Close()
	return true
}
