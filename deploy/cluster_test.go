// The Redis Cluster examples: cluster/ (docker compose: 6 nodes, a one-shot init
// service, two relays) and k8s/cluster/ (a kustomization over k8s/ adding a StatefulSet
// of 6 nodes, an init Job and the relay's configuration for the cluster). Neither can be
// run here; these checks tie their names, ports and settings to each other and to the
// relay's own configuration validation.

package deploy_test

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// clusterHosts are the host:port entries of a redis+cluster:// URL (no credentials in
// these examples).
func clusterHosts(t *testing.T, where, url string) []string {
	t.Helper()
	rest, ok := strings.CutPrefix(url, "redis+cluster://")
	if !ok {
		t.Fatalf("%s: redis.url %q is not a redis+cluster:// URL", where, url)
	}
	rest, _, _ = strings.Cut(rest, "/")
	rest, _, _ = strings.Cut(rest, "?")
	hosts := strings.Split(rest, ",")
	slices.Sort(hosts)
	return hosts
}

// confDirectives reads a redis.conf-style text: directive → value (last one wins).
func confDirectives(text string) map[string]string {
	d := map[string]string{}
	for line := range strings.Lines(text) {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, _ := strings.Cut(line, " ")
		d[strings.ToLower(k)] = strings.TrimSpace(v)
	}
	return d
}

// checkNodeConf checks what every cluster node needs: the relay's durability
// requirements (AOF, noeviction, a memory bound) and cluster mode. It returns the port.
func checkNodeConf(t *testing.T, where, text string) int {
	t.Helper()
	d := confDirectives(text)
	for k, want := range map[string]string{
		"appendonly":       "yes",
		"appendfsync":      "everysec",
		"maxmemory-policy": "noeviction",
		"cluster-enabled":  "yes",
		"protected-mode":   "yes",
	} {
		if d[k] != want {
			t.Errorf("%s: %s %q, want %q", where, k, d[k], want)
		}
	}
	if v := d["maxmemory"]; v == "" || v == "0" {
		t.Errorf("%s: set maxmemory: without it noeviction never refuses a write", where)
	}
	if d["cluster-config-file"] == "" || d["dir"] == "" {
		t.Errorf("%s: cluster-config-file and dir must be set (nodes.conf next to the AOF, on the volume)", where)
	}
	port, err := strconv.Atoi(d["port"])
	if err != nil {
		t.Fatalf("%s: port %q", where, d["port"])
	}
	return port
}

// withoutRedis is a relay.yaml's content as plain YAML values, its redis: section left
// out, to compare two configurations that must differ only there.
func withoutRedis(t *testing.T, where, text string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := yaml.Unmarshal([]byte(text), &m); err != nil {
		t.Fatalf("%s: %v", where, err)
	}
	delete(m, "redis")
	return m
}

type clusterComposeService struct {
	Image string `yaml:"image"`
	Build *struct {
		Context    string `yaml:"context"`
		Dockerfile string `yaml:"dockerfile"`
	} `yaml:"build"`
	Command     []string          `yaml:"command"`
	Volumes     []string          `yaml:"volumes"`
	Environment map[string]string `yaml:"environment"`
	Ports       []string          `yaml:"ports"`
	DependsOn   map[string]struct {
		Condition string `yaml:"condition"`
	} `yaml:"depends_on"`
	Healthcheck *struct {
		Test []string `yaml:"test"`
	} `yaml:"healthcheck"`
	Restart         string `yaml:"restart"`
	StopGracePeriod string `yaml:"stop_grace_period"`
}

func TestClusterCompose(t *testing.T) {
	var c struct {
		Services map[string]clusterComposeService `yaml:"services"`
		Volumes  map[string]any                   `yaml:"volumes"`
	}
	decodeYAML(t, "cluster/docker-compose.yml", &c)
	img, _ := parseDockerfile(t)
	confText := string(readFile(t, "cluster/redis-cluster.conf"))
	port := checkNodeConf(t, "cluster/redis-cluster.conf", confText)

	const initName = "redis-cluster-init"
	var nodes, relays []string
	for name, s := range c.Services {
		switch {
		case s.Build != nil:
			relays = append(relays, name)
		case name != initName && strings.HasPrefix(s.Image, "redis"):
			nodes = append(nodes, name)
		}
	}
	slices.Sort(nodes)
	slices.Sort(relays)
	if len(nodes) != 6 || len(relays) != 2 {
		t.Fatalf("cluster/docker-compose.yml: redis nodes %q and relays %q, want 6 and 2", nodes, relays)
	}

	// Every node runs redis-cluster.conf (so AOF and noeviction hold on each), from its
	// own volume, and is reachable only on the compose network.
	dataVolumes := map[string]string{}
	for _, n := range nodes {
		s := c.Services[n]
		if !strings.HasPrefix(s.Image, "redis:7") {
			t.Errorf("%s: image %q, want redis:7", n, s.Image)
		}
		target, ownData := "", false
		for _, v := range s.Volumes {
			src, dst, _ := strings.Cut(v, ":")
			dst, _, _ = strings.Cut(dst, ":")
			switch {
			case src == "./redis-cluster.conf":
				target = dst
			case dst == "/data":
				if other, dup := dataVolumes[src]; dup {
					t.Errorf("%s and %s share the data volume %s", n, other, src)
				}
				dataVolumes[src] = n
				ownData = true
				if _, ok := c.Volumes[src]; !ok {
					t.Errorf("%s: volume %s is not declared under volumes:", n, src)
				}
			}
		}
		if target == "" || !slices.Contains(s.Command, target) {
			t.Errorf("%s must run ./redis-cluster.conf: volumes %q, command %q", n, s.Volumes, s.Command)
		}
		if !ownData {
			t.Errorf("%s: no volume of its own at /data (the AOF and nodes.conf would not survive a restart)", n)
		}
		if s.Healthcheck == nil || !strings.Contains(strings.Join(s.Healthcheck.Test, " "), "redis-cli") {
			t.Errorf("%s needs a redis-cli ping health check (the init service waits for it)", n)
		}
		if len(s.Ports) > 0 {
			t.Errorf("%s publishes %q; only the compose network may reach Redis", n, s.Ports)
		}
	}

	// The init service waits for every node, names every node and makes 3 masters with
	// one replica each.
	in, ok := c.Services[initName]
	if !ok {
		t.Fatalf("cluster/docker-compose.yml: no %s service", initName)
	}
	script := strings.Join(in.Command, " ")
	for _, want := range []string{"--cluster create", "--cluster-replicas 1", "--cluster-yes", ":" + strconv.Itoa(port)} {
		if !strings.Contains(script, want) {
			t.Errorf("%s: command lacks %q", initName, want)
		}
	}
	for _, n := range nodes {
		if !strings.Contains(script, n+" ") && !strings.Contains(script, n+";") {
			t.Errorf("%s: command does not name the node %s", initName, n)
		}
		if d := in.DependsOn[n]; d.Condition != "service_healthy" {
			t.Errorf("%s: depends_on %s %q, want service_healthy", initName, n, d.Condition)
		}
	}
	if in.Restart != "no" {
		t.Errorf("%s: restart %q, want \"no\" (one-shot)", initName, in.Restart)
	}

	// The relays: the Dockerfile's image, the cluster configuration, started after init.
	cfg, names := parseRelayConfig(t, "cluster/relay.cluster.yaml", readFile(t, "cluster/relay.cluster.yaml"))
	var wantHosts []string
	for _, n := range nodes {
		wantHosts = append(wantHosts, n+":"+strconv.Itoa(port))
	}
	if got := clusterHosts(t, "cluster/relay.cluster.yaml", cfg.Redis.URL); !slices.Equal(got, wantHosts) {
		t.Errorf("cluster/relay.cluster.yaml: redis.url names %q, want every node %q", got, wantHosts)
	}
	if cfg.Redis.MinReplicasAcked != 1 {
		t.Errorf("cluster/relay.cluster.yaml: min_replicas_acked %d, want 1 (each master has one replica)", cfg.Redis.MinReplicasAcked)
	}
	ingest, admin := listenPort(t, cfg.Server.Listen), listenPort(t, cfg.Admin.Listen)
	if !slices.Equal(img.expose, []int{ingest, admin}) {
		t.Errorf("cluster/relay.cluster.yaml listens on %d and %d; the Dockerfile EXPOSEs %v", ingest, admin, img.expose)
	}
	example := map[string]bool{}
	for line := range strings.Lines(string(readFile(t, ".env.example"))) {
		if name, _, ok := strings.Cut(strings.TrimSpace(line), "="); ok && !strings.HasPrefix(name, "#") {
			example[name] = true
		}
	}
	hostPorts := map[string]string{}
	for _, r := range relays {
		s := c.Services[r]
		if filepath.Clean(filepath.Join("cluster", s.Build.Context, s.Build.Dockerfile)) != filepath.Join("..", "deploy", "Dockerfile") {
			t.Errorf("%s: build %+v, want context ../.. and dockerfile deploy/Dockerfile", r, s.Build)
		}
		if !slices.Contains(s.Volumes, "./relay.cluster.yaml:"+configPath+":ro") {
			t.Errorf("%s: volumes %q, want ./relay.cluster.yaml mounted read-only at %s", r, s.Volumes, configPath)
		}
		if d := s.DependsOn[initName]; d.Condition != "service_completed_successfully" {
			t.Errorf("%s: depends_on %s %q, want service_completed_successfully", r, initName, d.Condition)
		}
		for _, n := range names {
			if v := s.Environment[n]; !strings.HasPrefix(v, "${"+n) {
				t.Errorf("%s: relay.cluster.yaml needs ${%s}; the environment has %q", r, n, v)
			}
			if !example[n] {
				t.Errorf(".env.example does not list %s, which cluster/relay.cluster.yaml needs", n)
			}
		}
		if _, ok := published(s.Ports, ingest); !ok {
			t.Errorf("%s: ports %q do not publish the ingest port %d", r, s.Ports, ingest)
		}
		if ip, ok := published(s.Ports, admin); !ok || ip != "127.0.0.1" {
			t.Errorf("%s: ports %q: the admin port %d must be published on 127.0.0.1 only", r, s.Ports, admin)
		}
		for _, p := range s.Ports {
			parts := strings.Split(p, ":")
			host := strings.Join(parts[:len(parts)-1], ":")
			if other, dup := hostPorts[host]; dup {
				t.Errorf("%s and %s both publish host port %s", r, other, host)
			}
			hostPorts[host] = r
		}
		if d, err := time.ParseDuration(s.StopGracePeriod); err != nil || d <= stopBudget(t, cfg) {
			t.Errorf("%s: stop_grace_period %q, want more than the relay's clean stop (%v)", r, s.StopGracePeriod, stopBudget(t, cfg))
		}
	}
}

// statefulSetSpec is what deploymentSpec does not decode of a StatefulSet.
type statefulSetSpec struct {
	Spec struct {
		ServiceName          string `yaml:"serviceName"`
		VolumeClaimTemplates []struct {
			Metadata struct {
				Name string `yaml:"name"`
			} `yaml:"metadata"`
		} `yaml:"volumeClaimTemplates"`
	} `yaml:"spec"`
}

// objectsIn reads every manifest in dir, keyed "Kind/name".
func objectsIn(t *testing.T, dir string) map[string]k8sObject {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no %s/*.yaml (%v)", dir, err)
	}
	objs := map[string]k8sObject{}
	for _, f := range files {
		docs, err := yamlDocs(readFile(t, f))
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for _, d := range docs {
			o := k8sObject{file: f, node: d}
			o.decode(t, &o.k8sMeta)
			key := o.Kind + "/" + o.Metadata.Name
			if _, dup := objs[key]; dup {
				t.Errorf("%s: %s defined twice", f, key)
			}
			objs[key] = o
		}
	}
	return objs
}

func TestClusterKubernetes(t *testing.T) {
	const dir = "k8s/cluster"
	objs := objectsIn(t, dir)
	base := k8sObjects(t)

	// The kustomization applies the relay of k8s/, every manifest here, and the patch.
	var kust struct {
		Resources []string `yaml:"resources"`
		Patches   []struct {
			Path string `yaml:"path"`
		} `yaml:"patches"`
	}
	get(t, objs, "Kustomization/").decode(t, &kust)
	listed := map[string]bool{}
	for _, r := range kust.Resources {
		listed[filepath.Clean(r)] = true
	}
	for _, p := range kust.Patches {
		listed[filepath.Clean(p.Path)] = true
	}
	if !listed[".."] {
		t.Errorf("%s/kustomization.yaml: resources %q must include ../ (the relay)", dir, kust.Resources)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.yaml"))
	for _, f := range files {
		if b := filepath.Base(f); b != "kustomization.yaml" && !listed[b] {
			t.Errorf("%s/kustomization.yaml does not apply %s", dir, b)
		}
	}

	// Every node runs the same configuration as the compose example's nodes.
	var rcm struct {
		Data map[string]string `yaml:"data"`
	}
	get(t, objs, "ConfigMap/redis-cluster-config").decode(t, &rcm)
	if rcm.Data["redis.conf"] != string(readFile(t, "cluster/redis-cluster.conf")) {
		t.Errorf("%s: redis-cluster-config's redis.conf differs from cluster/redis-cluster.conf; keep them the same", dir)
	}
	port := checkNodeConf(t, dir+" redis-cluster-config", rcm.Data["redis.conf"])

	ssObj := get(t, objs, "StatefulSet/redis-cluster")
	var ss deploymentSpec
	var ssx statefulSetSpec
	ssObj.decode(t, &ss)
	ssObj.decode(t, &ssx)
	nodes := ss.Spec.Replicas
	if nodes != 6 {
		t.Errorf("StatefulSet redis-cluster: %d replicas, want 6 (3 masters, 1 replica each)", nodes)
	}
	var svc struct {
		Spec struct {
			ClusterIP                string            `yaml:"clusterIP"`
			PublishNotReadyAddresses bool              `yaml:"publishNotReadyAddresses"`
			Selector                 map[string]string `yaml:"selector"`
			Ports                    []struct {
				Port int `yaml:"port"`
			} `yaml:"ports"`
		} `yaml:"spec"`
	}
	get(t, objs, "Service/"+ssx.Spec.ServiceName).decode(t, &svc)
	if svc.Spec.ClusterIP != "None" || !svc.Spec.PublishNotReadyAddresses {
		t.Errorf("Service %s: clusterIP %q, publishNotReadyAddresses %v; want a headless Service publishing pods before they are ready",
			ssx.Spec.ServiceName, svc.Spec.ClusterIP, svc.Spec.PublishNotReadyAddresses)
	}
	if !selects(svc.Spec.Selector, ss.Spec.Template.Metadata.Labels) {
		t.Errorf("Service %s does not select the StatefulSet's pods", ssx.Spec.ServiceName)
	}
	var svcPorts []int
	for _, p := range svc.Spec.Ports {
		svcPorts = append(svcPorts, p.Port)
	}
	if !slices.Contains(svcPorts, port) || !slices.Contains(svcPorts, port+10000) {
		t.Errorf("Service %s ports %v, want %d and the cluster bus %d", ssx.Spec.ServiceName, svcPorts, port, port+10000)
	}
	pod := ss.Spec.Template.Spec
	if len(pod.Containers) != 1 {
		t.Fatalf("StatefulSet redis-cluster: %d containers, want 1", len(pod.Containers))
	}
	ctr := pod.Containers[0]
	var ctrPorts []int
	for _, p := range ctr.Ports {
		ctrPorts = append(ctrPorts, p.ContainerPort)
	}
	if !slices.Contains(ctrPorts, port) || !slices.Contains(ctrPorts, port+10000) {
		t.Errorf("redis container ports %v, want %d and the cluster bus %d", ctrPorts, port, port+10000)
	}
	mounts := map[string]string{}
	for _, m := range ctr.VolumeMounts {
		mounts[m.Name] = m.MountPath
	}
	for _, v := range pod.Volumes {
		if v.ConfigMap != nil && v.ConfigMap.Name == "redis-cluster-config" {
			if conf := filepath.Join(mounts[v.Name], "redis.conf"); !slices.Contains(ctr.Command, conf) {
				t.Errorf("redis container command %q does not run %s (the mounted redis-cluster-config)", ctr.Command, conf)
			}
		}
	}
	confDir := confDirectives(rcm.Data["redis.conf"])["dir"]
	if len(ssx.Spec.VolumeClaimTemplates) == 0 || mounts[ssx.Spec.VolumeClaimTemplates[0].Metadata.Name] != confDir {
		t.Errorf("StatefulSet redis-cluster: a volumeClaimTemplate must be mounted at %s (redis.conf's dir: AOF and nodes.conf)", confDir)
	}

	// The pods' DNS names, which the init Job and the relay's URL must both use.
	var hosts []string
	for i := range nodes {
		hosts = append(hosts, "redis-cluster-"+strconv.Itoa(i)+"."+ssx.Spec.ServiceName)
	}
	var job struct {
		Spec struct {
			Template struct {
				Spec struct {
					Containers []container `yaml:"containers"`
				} `yaml:"spec"`
			} `yaml:"template"`
		} `yaml:"spec"`
	}
	get(t, objs, "Job/redis-cluster-init").decode(t, &job)
	var script string
	for _, c := range job.Spec.Template.Spec.Containers {
		script += strings.Join(append(c.Command, c.Args...), " ")
	}
	for _, want := range append([]string{"--cluster create", "--cluster-replicas 1", "--cluster-yes", ":" + strconv.Itoa(port)}, hosts...) {
		if !strings.Contains(script, want) {
			t.Errorf("Job redis-cluster-init: command lacks %q", want)
		}
	}

	// The relay: the patched configuration names every pod and waits for one replica;
	// nothing else differs from k8s/configmap.yaml.
	var cm, baseCM struct {
		Data map[string]string `yaml:"data"`
	}
	get(t, objs, "ConfigMap/relay-config").decode(t, &cm)
	get(t, base, "ConfigMap/relay-config").decode(t, &baseCM)
	cfg, _ := parseRelayConfig(t, dir+"/relay-config.yaml relay.yaml", []byte(cm.Data["relay.yaml"]))
	var wantHosts []string
	for _, h := range hosts {
		wantHosts = append(wantHosts, h+":"+strconv.Itoa(port))
	}
	if got := clusterHosts(t, dir+"/relay-config.yaml", cfg.Redis.URL); !slices.Equal(got, wantHosts) {
		t.Errorf("%s/relay-config.yaml: redis.url names %q, want every pod %q", dir, got, wantHosts)
	}
	if cfg.Redis.MinReplicasAcked != 1 {
		t.Errorf("%s/relay-config.yaml: min_replicas_acked %d, want 1", dir, cfg.Redis.MinReplicasAcked)
	}
	if a, b := withoutRedis(t, dir, cm.Data["relay.yaml"]), withoutRedis(t, "k8s", baseCM.Data["relay.yaml"]); !reflect.DeepEqual(a, b) {
		t.Errorf("%s/relay-config.yaml differs from k8s/configmap.yaml outside redis:; keep them the same", dir)
	}
	var dep deploymentSpec
	get(t, base, "Deployment/relay").decode(t, &dep)
	if dep.Spec.Replicas < 2 {
		t.Errorf("k8s/deployment.yaml: %d replicas; the cluster example runs 2 relays", dep.Spec.Replicas)
	}

	// Only the relay, the init Job and the nodes reach Redis.
	var np struct {
		Spec struct {
			PodSelector labelSelector `yaml:"podSelector"`
			Ingress     []struct {
				From []struct {
					PodSelector *labelSelector `yaml:"podSelector"`
				} `yaml:"from"`
				Ports []struct {
					Port any `yaml:"port"`
				} `yaml:"ports"`
			} `yaml:"ingress"`
		} `yaml:"spec"`
	}
	get(t, objs, "NetworkPolicy/redis-cluster").decode(t, &np)
	if !selects(np.Spec.PodSelector.MatchLabels, ss.Spec.Template.Metadata.Labels) {
		t.Error("NetworkPolicy redis-cluster does not select the Redis pods")
	}
	relayAllowed := false
	for _, rule := range np.Spec.Ingress {
		for _, f := range rule.From {
			if f.PodSelector == nil || !selects(f.PodSelector.MatchLabels, dep.Spec.Template.Metadata.Labels) {
				continue
			}
			for _, p := range rule.Ports {
				if n, ok := ctr.port(p.Port); ok && n == port {
					relayAllowed = true
				}
			}
		}
	}
	if !relayAllowed {
		t.Errorf("NetworkPolicy redis-cluster does not let the relay pods reach port %d", port)
	}
}

// TestClusterReadme checks that deploy/README.md points at both cluster examples.
func TestClusterReadme(t *testing.T) {
	b, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"cluster/docker-compose.yml", "k8s/cluster", "min_replicas_acked"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("deploy/README.md does not mention %s", want)
		}
	}
}
