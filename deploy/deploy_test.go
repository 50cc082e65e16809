// Package deploy_test checks the deployment files in this directory against the relay's
// code, so that a port, a probe path, a secret name or a metric name cannot drift from
// what the relay really does: nothing here can be run for real on a machine without a
// container engine or a cluster, so these checks are what catches a mistake before an
// operator does.
//
// This file: every file parses; the Dockerfile, compose, redis.conf and the systemd unit.
// k8s_test.go: the Kubernetes manifests. metrics_test.go: the dashboard and alert rules
// against the metric list of docs/api.md (promql_test.go reads their queries). relay_test.go:
// runs the relay, checks that it exports those metrics, and runs it on redis.conf.
package deploy_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/eventrelay/relay/config"
	"github.com/eventrelay/relay/providers"
)

// configPath is where every deployment puts the relay's configuration: the Dockerfile's
// ENTRYPOINT reads it, compose and Kubernetes mount it, the systemd unit passes it.
const configPath = "/etc/relay/relay.yaml"

// readFile returns a file of this directory (go test runs in it).
func readFile(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// yamlDocs decodes every document of a YAML stream. Kubernetes files may hold several
// documents separated by ---, and a parse error in a later one must not go unseen.
func yamlDocs(data []byte) ([]*yaml.Node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var docs []*yaml.Node
	for {
		var n yaml.Node
		err := dec.Decode(&n)
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return docs, fmt.Errorf("document %d: %w", len(docs)+1, err)
		}
		docs = append(docs, &n)
	}
}

// decodeYAML decodes a single-document YAML file into v.
func decodeYAML(t *testing.T, name string, v any) {
	t.Helper()
	docs, err := yamlDocs(readFile(t, name))
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if len(docs) != 1 {
		t.Fatalf("%s: %d YAML documents, want 1", name, len(docs))
	}
	if err := docs[0].Decode(v); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
}

// TestFilesParse parses every YAML and JSON file here: a file that does not parse is
// one that kubectl, compose, Prometheus or Grafana would refuse at the worst moment.
func TestFilesParse(t *testing.T) {
	var yamls, jsons int
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		switch filepath.Ext(path) {
		case ".yml", ".yaml":
			yamls++
			docs, err := yamlDocs(readFile(t, path))
			if err != nil {
				t.Errorf("%s: %v", path, err)
			} else if len(docs) == 0 {
				t.Errorf("%s: no YAML document", path)
			}
			for i, doc := range docs {
				if len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
					t.Errorf("%s: document %d is not a mapping", path, i+1)
				}
			}
		case ".json":
			jsons++
			var v any
			if err := json.Unmarshal(readFile(t, path), &v); err != nil {
				t.Errorf("%s: %v", path, err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if yamls == 0 || jsons == 0 {
		t.Fatalf("found %d YAML and %d JSON files; the walk is looking in the wrong place", yamls, jsons)
	}
}

// --- the relay's configuration -------------------------------------------------------

// fakeEnv stands in for the Secret, .env or EnvironmentFile: a valid value for every
// ${NAME}, so that config.Parse validates the rest of the file, and a record of the
// names the file asked for, so that the test can check that each one is provided.
func fakeEnv(asked map[string]bool) func(string) (string, bool) {
	return func(name string) (string, bool) {
		asked[name] = true
		if strings.HasSuffix(name, "_URL") {
			return "redis://redis.invalid:6379/0", true
		}
		// Long enough for every secret the config checks (identity secrets: 32).
		return "fake-" + strings.ToLower(strings.ReplaceAll(name, "_", "-")) + "-0123456789abcdef0123456789abcdef", true
	}
}

// parseRelayConfig runs a deployment's relay.yaml through the relay's own parser (the one
// `relay check-config` uses) and returns it with the ${NAME}s it references.
func parseRelayConfig(t *testing.T, where string, data []byte) (*config.Config, []string) {
	t.Helper()
	asked := map[string]bool{}
	cfg, err := config.Parse(data, fakeEnv(asked), providers.Specs())
	if err != nil {
		t.Fatalf("%s: the relay refuses this configuration:\n%v", where, err)
	}
	var names []string
	for n := range asked {
		names = append(names, n)
	}
	slices.Sort(names)
	return cfg, names
}

// defaultConfig is the relay's configuration with every default applied: the least a
// valid file needs.
func defaultConfig(t *testing.T) *config.Config {
	t.Helper()
	cfg, _ := parseRelayConfig(t, "minimal config", []byte("admin: {token: deploy-test-admin-token}\nproviders: {bannerflex: {}}\n"))
	return cfg
}

// listenPort is the port of a listen address such as ":8080" or "127.0.0.1:9090".
func listenPort(t *testing.T, addr string) int {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	n, perr := strconv.Atoi(p)
	if err != nil || perr != nil {
		t.Fatalf("listen address %q has no port", addr)
	}
	return n
}

// isLoopback reports whether a listen address accepts local connections only: then
// nothing outside the container or pod (published ports, kubelet probes, Prometheus)
// reaches it.
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// maxProviderTimeout is the longest upstream timeout of the enabled providers: how long
// deliveries in flight may still run after ingest has drained on SIGTERM.
func maxProviderTimeout(cfg *config.Config) time.Duration {
	var d time.Duration
	for _, p := range cfg.Providers.Enabled() {
		d = max(d, p.Delivery.Timeout)
	}
	return d
}

// shutdownGrace reads the relay's ingest drain time from cmd/relay/serve.go, so the stop
// timeouts here follow it if it changes.
func shutdownGrace(t *testing.T) time.Duration {
	t.Helper()
	src := readFile(t, filepath.Join("..", "cmd", "relay", "serve.go"))
	m := regexp.MustCompile(`shutdownGrace\s*=\s*(\d+)\s*\*\s*time\.Second`).FindSubmatch(src)
	if m == nil {
		t.Fatal("cmd/relay/serve.go: no `shutdownGrace = N * time.Second`; update shutdownGrace in this test")
	}
	n, _ := strconv.Atoi(string(m[1]))
	return time.Duration(n) * time.Second
}

// stopBudget is how long a relay may take to stop cleanly: ingest drain, then the
// deliveries in flight (forward.Options.Grace defaults to the provider timeout).
func stopBudget(t *testing.T, cfg *config.Config) time.Duration {
	t.Helper()
	return shutdownGrace(t) + maxProviderTimeout(cfg)
}

// --- Dockerfile -------------------------------------------------------------------------

type dockerInstr struct {
	cmd  string // upper case: FROM, RUN, ...
	args string
}

// dockerfile returns the instructions of deploy/Dockerfile, continuation lines joined.
func dockerfile(t *testing.T) []dockerInstr {
	t.Helper()
	var out []dockerInstr
	var cur strings.Builder
	sc := bufio.NewScanner(bytes.NewReader(readFile(t, "Dockerfile")))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		// Comments may sit even inside a continued instruction; blank lines end nothing.
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if rest, ok := strings.CutSuffix(line, `\`); ok {
			cur.WriteString(rest + " ")
			continue
		}
		cur.WriteString(line)
		cmd, args, _ := strings.Cut(cur.String(), " ")
		out = append(out, dockerInstr{strings.ToUpper(cmd), strings.TrimSpace(args)})
		cur.Reset()
	}
	return out
}

// dockerImage is what the Dockerfile promises about the final image.
type dockerImage struct {
	entrypoint []string
	expose     []int
	user       string
}

// parseDockerfile reads what the Dockerfile promises and lists what is wrong with it;
// only TestDockerfile reports the problems, the other tests just use the image.
func parseDockerfile(t *testing.T) (img dockerImage, problems []string) {
	t.Helper()
	bad := func(format string, args ...any) {
		problems = append(problems, fmt.Sprintf("Dockerfile: "+format, args...))
	}
	instrs := dockerfile(t)
	var stages [][]dockerInstr
	var stageNames []string
	for _, in := range instrs {
		if in.cmd == "FROM" {
			stages = append(stages, nil)
			f := strings.Fields(in.args)
			name := ""
			if len(f) == 3 && strings.EqualFold(f[1], "AS") {
				name = f[2]
			}
			stageNames = append(stageNames, name)
		}
		if len(stages) == 0 {
			bad("%s before the first FROM", in.cmd)
			return img, problems
		}
		stages[len(stages)-1] = append(stages[len(stages)-1], in)
	}
	if len(stages) < 2 {
		bad("%d stage(s), want a multi-stage build (builder + final image)", len(stages))
		return img, problems
	}

	build := stages[0]
	if builder := strings.Fields(build[0].args)[0]; !strings.HasPrefix(builder, "golang:1.26") {
		bad("builder image %q, want golang:1.26 (go.mod's Go version)", builder)
	}
	var buildRun string
	for _, in := range build {
		if in.cmd == "RUN" && strings.Contains(in.args, "go build") {
			buildRun = in.args
		}
	}
	for _, want := range []string{"CGO_ENABLED=0", "-trimpath", "-s -w", "-X main.version=", "./cmd/relay"} {
		if !strings.Contains(buildRun, want) {
			bad("the go build step lacks %q: %q", want, buildRun)
		}
	}
	// The linker ignores -X for a variable that does not exist, silently.
	if !regexp.MustCompile(`(?m)^var version = `).Match(readFile(t, filepath.Join("..", "cmd", "relay", "main.go"))) {
		problems = append(problems, "cmd/relay/main.go has no `var version = ...` for -X main.version to set")
	}

	final := stages[len(stages)-1]
	base := strings.Fields(final[0].args)[0]
	if base != "scratch" && !strings.HasPrefix(base, "gcr.io/distroless/static") {
		bad("final image %q, want scratch or gcr.io/distroless/static (a static binary needs nothing else)", base)
	}
	copied := false
	for _, in := range final {
		switch in.cmd {
		case "COPY":
			if strings.Contains(in.args, "--from="+stageNames[0]) && strings.HasSuffix(in.args, " /relay") {
				copied = true
			}
		case "USER":
			img.user = in.args
		case "EXPOSE":
			for _, p := range strings.Fields(in.args) {
				n, err := strconv.Atoi(strings.TrimSuffix(p, "/tcp"))
				if err != nil {
					bad("EXPOSE %q", p)
				}
				img.expose = append(img.expose, n)
			}
		case "ENTRYPOINT":
			if err := json.Unmarshal([]byte(in.args), &img.entrypoint); err != nil {
				bad("ENTRYPOINT must be exec form (a JSON array: no shell in the image, and signals reach the relay): %v", err)
			}
		}
	}
	if !copied {
		bad("the final stage does not COPY --from=%s the binary to /relay", stageNames[0])
	}
	uid, _, _ := strings.Cut(img.user, ":")
	if img.user == "" || uid == "root" || uid == "0" {
		bad("final stage USER %q, want a non-root user", img.user)
	}
	// Kubernetes verifies runAsNonRoot only against a numeric user, and scratch has no
	// /etc/passwd to resolve a name.
	if _, err := strconv.Atoi(uid); err != nil {
		bad("USER %q, want a numeric uid", img.user)
	}
	if want := []string{"/relay", "serve", "--config", configPath}; !slices.Equal(img.entrypoint, want) {
		bad("ENTRYPOINT %q, want %q", img.entrypoint, want)
	}
	slices.Sort(img.expose)
	return img, problems
}

func TestDockerfile(t *testing.T) {
	img, problems := parseDockerfile(t)
	for _, p := range problems {
		t.Error(p)
	}
	def := defaultConfig(t)
	want := []int{listenPort(t, def.Server.Listen), listenPort(t, def.Admin.Listen)}
	slices.Sort(want)
	if !slices.Equal(img.expose, want) {
		t.Errorf("Dockerfile: EXPOSE %v, want the default server.listen and admin.listen ports %v", img.expose, want)
	}
}

// --- docker-compose ---------------------------------------------------------------------

type composeFile struct {
	Services map[string]composeService `yaml:"services"`
	Volumes  map[string]any            `yaml:"volumes"`
}

type composeService struct {
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
	StopGracePeriod string `yaml:"stop_grace_period"`
}

// published finds the host side of a "[ip:]host:container" port mapping.
func published(ports []string, container int) (hostIP string, found bool) {
	for _, p := range ports {
		parts := strings.Split(p, ":")
		if parts[len(parts)-1] != strconv.Itoa(container) {
			continue
		}
		if len(parts) == 3 {
			return parts[0], true
		}
		return "", true
	}
	return "", false
}

func TestCompose(t *testing.T) {
	var c composeFile
	decodeYAML(t, "docker-compose.yml", &c)
	img, _ := parseDockerfile(t)
	redis, relay := c.Services["redis"], c.Services["relay"]

	// Redis: durable by redis.conf, which must really be what it runs.
	if !strings.HasPrefix(redis.Image, "redis:7") {
		t.Errorf("redis image %q, want redis:7", redis.Image)
	}
	confTarget := ""
	for _, v := range redis.Volumes {
		if src, dst, ok := strings.Cut(v, ":"); ok && src == "./redis.conf" {
			confTarget, _, _ = strings.Cut(dst, ":")
		}
	}
	if confTarget == "" || !slices.Contains(redis.Command, confTarget) {
		t.Errorf("redis must run ./redis.conf: volumes %q, command %q", redis.Volumes, redis.Command)
	}
	if redis.Healthcheck == nil || !strings.Contains(strings.Join(redis.Healthcheck.Test, " "), "redis-cli") ||
		!strings.Contains(strings.Join(redis.Healthcheck.Test, " "), "ping") {
		t.Error("redis needs a healthcheck with redis-cli ping (the relay waits for it)")
	}
	if len(redis.Ports) > 0 {
		t.Errorf("redis publishes %q; only the relay, on the compose network, may reach it", redis.Ports)
	}

	// Relay: built from deploy/Dockerfile, config mounted where the ENTRYPOINT reads it.
	if relay.Build == nil || filepath.Clean(filepath.Join(relay.Build.Context, relay.Build.Dockerfile)) != filepath.Join("..", "deploy", "Dockerfile") {
		t.Errorf("relay build %+v, want context .. and dockerfile deploy/Dockerfile", relay.Build)
	}
	if d, ok := relay.DependsOn["redis"]; !ok || d.Condition != "service_healthy" {
		t.Errorf("relay depends_on %+v, want redis with condition service_healthy", relay.DependsOn)
	}
	if !slices.Contains(relay.Volumes, "./relay.compose.yaml:"+configPath+":ro") {
		t.Errorf("relay volumes %q, want ./relay.compose.yaml mounted read-only at %s", relay.Volumes, configPath)
	}

	cfg, names := parseRelayConfig(t, "relay.compose.yaml", readFile(t, "relay.compose.yaml"))
	if cfg.Redis.URL != "redis://redis:6379/0" {
		t.Errorf("relay.compose.yaml: redis.url %q, want redis://redis:6379/0 (the compose service)", cfg.Redis.URL)
	}
	if isLoopback(cfg.Admin.Listen) {
		t.Errorf("relay.compose.yaml: admin.listen %q is loopback: the published port could not reach it", cfg.Admin.Listen)
	}
	ingest, admin := listenPort(t, cfg.Server.Listen), listenPort(t, cfg.Admin.Listen)
	if !slices.Equal(img.expose, []int{ingest, admin}) {
		t.Errorf("relay.compose.yaml listens on %d and %d; the Dockerfile EXPOSEs %v", ingest, admin, img.expose)
	}
	if _, ok := published(relay.Ports, ingest); !ok {
		t.Errorf("relay ports %q do not publish the ingest port %d", relay.Ports, ingest)
	}
	if ip, ok := published(relay.Ports, admin); !ok || ip != "127.0.0.1" {
		t.Errorf("relay ports %q: the admin port %d must be published on 127.0.0.1 only", relay.Ports, admin)
	}

	// Every ${NAME} of the relay's config comes from compose's environment, and from
	// .env.example so that an operator knows to set it.
	example := map[string]bool{}
	for line := range strings.Lines(string(readFile(t, ".env.example"))) {
		if name, _, ok := strings.Cut(strings.TrimSpace(line), "="); ok && !strings.HasPrefix(name, "#") {
			example[name] = true
		}
	}
	for _, n := range names {
		if v := relay.Environment[n]; !strings.HasPrefix(v, "${"+n) {
			t.Errorf("relay.compose.yaml needs ${%s}; docker-compose.yml's relay environment has %s: %q", n, n, v)
		}
		if !example[n] {
			t.Errorf(".env.example does not list %s, which relay.compose.yaml needs", n)
		}
	}

	// Compose SIGKILLs after stop_grace_period (default 10 s).
	if d, err := time.ParseDuration(relay.StopGracePeriod); err != nil || d <= stopBudget(t, cfg) {
		t.Errorf("relay stop_grace_period %q, want more than the relay's clean stop (%v)", relay.StopGracePeriod, stopBudget(t, cfg))
	}
}

// --- redis.conf -------------------------------------------------------------------------

// redisConf returns the directives of redis.conf (last one wins, as in Redis) and its
// commented lines.
func redisConf(t *testing.T) (directives map[string]string, comments []string) {
	t.Helper()
	directives = map[string]string{}
	for line := range strings.Lines(string(readFile(t, "redis.conf"))) {
		line = strings.TrimSpace(line)
		if c, ok := strings.CutPrefix(line, "#"); ok {
			comments = append(comments, strings.TrimSpace(c))
			continue
		}
		if line == "" {
			continue
		}
		k, v, _ := strings.Cut(line, " ")
		directives[strings.ToLower(k)] = strings.TrimSpace(v)
	}
	return directives, comments
}

func TestRedisConf(t *testing.T) {
	d, comments := redisConf(t)
	// The relay refuses a Redis without the first and last two (see relay/queue/open.go);
	// the others are what "durable" means here.
	for k, want := range map[string]string{
		"appendonly":                  "yes",
		"appendfsync":                 "everysec",
		"maxmemory-policy":            "noeviction",
		"protected-mode":              "yes",
		"stop-writes-on-bgsave-error": "yes",
	} {
		if d[k] != want {
			t.Errorf("redis.conf: %s %q, want %q", k, d[k], want)
		}
	}
	if v := d["maxmemory"]; v == "" || v == "0" {
		t.Error("redis.conf: set maxmemory: without it noeviction never refuses a write and the host runs out of memory instead")
	}
	if n, err := strconv.Atoi(d["tcp-keepalive"]); err != nil || n <= 0 {
		t.Errorf("redis.conf: tcp-keepalive %q, want > 0", d["tcp-keepalive"])
	}
	var requirepass, acl bool
	for _, c := range comments {
		requirepass = requirepass || strings.HasPrefix(c, "requirepass ")
		acl = acl || strings.HasPrefix(c, "user relay on ")
	}
	if !requirepass || !acl {
		t.Error("redis.conf: want commented examples of requirepass and of an ACL user for the relay")
	}
}

// --- systemd ----------------------------------------------------------------------------

// systemdUnit returns section → key → values (a key may repeat, e.g. SystemCallFilter).
func systemdUnit(t *testing.T) map[string]map[string][]string {
	t.Helper()
	unit := map[string]map[string][]string{}
	section := ""
	for line := range strings.Lines(string(readFile(t, filepath.Join("systemd", "relay.service")))) {
		line = strings.TrimSpace(line)
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			section = line[1 : len(line)-1]
			unit[section] = map[string][]string{}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" {
				t.Fatalf("relay.service: cannot parse %q", line)
			}
			unit[section][k] = append(unit[section][k], v)
		}
	}
	return unit
}

// systemdSeconds parses a systemd time span such as "45s", "45" or "1min 30s".
func systemdSeconds(s string) (time.Duration, error) {
	if n, err := strconv.Atoi(s); err == nil {
		return time.Duration(n) * time.Second, nil
	}
	return time.ParseDuration(strings.ReplaceAll(strings.ReplaceAll(s, "min", "m"), " ", ""))
}

func TestSystemdUnit(t *testing.T) {
	u := systemdUnit(t)
	svc := u["Service"]
	last := func(k string) string {
		if v := svc[k]; len(v) > 0 {
			return v[len(v)-1]
		}
		return ""
	}
	if exec := last("ExecStart"); !strings.HasSuffix(exec, "relay serve --config "+configPath) {
		t.Errorf("ExecStart %q, want .../relay serve --config %s", exec, configPath)
	}
	if last("DynamicUser") != "yes" && (last("User") == "" || last("User") == "root") {
		t.Error("want DynamicUser=yes or a User= other than root")
	}
	for k, want := range map[string]string{
		"NoNewPrivileges":       "yes",
		"ProtectSystem":         "strict",
		"ProtectHome":           "yes",
		"PrivateTmp":            "yes",
		"PrivateDevices":        "yes",
		"ProtectKernelTunables": "yes",
		"ProtectKernelModules":  "yes",
		"ProtectControlGroups":  "yes",
		"RestrictSUIDSGID":      "yes",
		"LockPersonality":       "yes",
		"CapabilityBoundingSet": "",
		"Restart":               "on-failure",
		"KillSignal":            "SIGTERM",
	} {
		if v, ok := svc[k]; !ok || last(k) != want {
			t.Errorf("[Service] %s=%q, want %q", k, strings.Join(v, ","), want)
		}
	}
	for _, k := range []string{"RestrictAddressFamilies", "SystemCallFilter", "EnvironmentFile"} {
		if last(k) == "" {
			t.Errorf("[Service] %s is unset", k)
		}
	}
	// systemd SIGKILLs after TimeoutStopSec; the relay's clean stop with the default
	// provider timeout must fit.
	if d, err := systemdSeconds(last("TimeoutStopSec")); err != nil || d <= stopBudget(t, defaultConfig(t)) {
		t.Errorf("TimeoutStopSec=%q, want more than the relay's clean stop (%v)", last("TimeoutStopSec"), stopBudget(t, defaultConfig(t)))
	}
	if !slices.Contains(u["Install"]["WantedBy"], "multi-user.target") {
		t.Error("[Install] WantedBy=multi-user.target is missing")
	}
}
