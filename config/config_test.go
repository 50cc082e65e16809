package config_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"flag"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/eventrelay/relay/config"
	"github.com/eventrelay/relay/providers"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current output")

// leakMarker is part of every secret in the test inputs: no output may contain it.
const leakMarker = "LEAK"

// testEnv is the fixed fake environment of the golden files, plus the paths of a client
// certificate, its key and another key, generated for this test so that no private key
// lives in the repository.
func testEnv(t *testing.T) func(string) (string, bool) {
	t.Helper()
	dir := t.TempDir()
	env := map[string]string{
		"RELAY_ADMIN_TOKEN":    "admin-LEAK-0123456789abcdef",
		"SHOP_IDENTITY_SECRET": "identity-LEAK-0123456789abcdef0123456789",
		"BACKEND_TOKEN":        "backend-LEAK-0123456789abcdef",
		"BILLING_TOKEN":        "billing-LEAK-0123456789abcdef",
		"SITE_SUFFIX":          "0123",
		"LINKRUNNER_KEY":       "lr-LEAK-key",
		"ENS_API_KEY":          "ens-LEAK-key",
		"BREVO_API_KEY":        "brevo-LEAK-api-key",
		"BREVO_MA_KEY":         "brevo-LEAK-ma-key",
		"CDLX_CLIENT_ID":       "cdlx-LEAK-client",
		"CDLX_SECRET":          "cdlx-LEAK-secret",
		"CDLX_INSTITUTION_ID":  "cdlx-LEAK-institution",
		"CDLX_WORKERS":         "8",
		"NEWLINE_TOKEN":        "token-LEAK-0123456789abcdef\n",
		"NULL_WORD":            "null",
		"EMPTY":                "",
		"WORKERS":              "8",
		"CDLX_CERT_FILE":       filepath.Join(dir, "cdlx.crt"),
		"CDLX_KEY_FILE":        filepath.Join(dir, "cdlx.key"),
		"CDLX_CA_FILE":         filepath.Join(dir, "cdlx.crt"),
		"CDLX_OTHER_KEY_FILE":  filepath.Join(dir, "other.key"),
	}
	writeCert(t, env["CDLX_CERT_FILE"], env["CDLX_KEY_FILE"])
	writeCert(t, filepath.Join(dir, "other.crt"), env["CDLX_OTHER_KEY_FILE"])
	return func(name string) (string, bool) {
		v, ok := env[name]
		return v, ok
	}
}

// writeCert writes a self-signed certificate and its private key as PEM files.
func writeCert(t *testing.T, certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "relay test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IsCA:         true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	for file, block := range map[string]*pem.Block{
		certFile: {Type: "CERTIFICATE", Bytes: der},
		keyFile:  {Type: "PRIVATE KEY", Bytes: keyDER},
	} {
		if err := os.WriteFile(file, pem.EncodeToMemory(block), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// TestGolden parses each testdata/*.yaml and compares the outcome, "ok" or every
// problem, with the .golden file beside it. Run with -update to rewrite the goldens.
func TestGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden inputs: %v", err)
	}
	getenv := testEnv(t)
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".yaml")
		t.Run(name, func(t *testing.T) {
			got := "ok\n"
			if _, err := config.Load(file, getenv, providers.Specs()); err != nil {
				var errs *config.Errors
				if !errors.As(err, &errs) || len(*errs) == 0 {
					t.Fatalf("Load returned %T, want a non-empty *Errors: %v", err, err)
				}
				got = err.Error() + "\n"
			}
			if strings.Contains(got, leakMarker) {
				t.Errorf("output reveals a secret:\n%s", got)
			}
			golden := strings.TrimSuffix(file, ".yaml") + ".golden"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test ./config -update)", err)
			}
			if got != string(want) {
				t.Errorf("Load(%s):\n--- got\n%s--- want\n%s", file, got, want)
			}
		})
	}
}

func TestExampleConfigRunsWithoutEnvironment(t *testing.T) {
	cfg, err := config.Load("../relay.example.yaml", nil, providers.Specs())
	if err != nil {
		t.Fatalf("relay.example.yaml: %v", err)
	}
	if cfg.Redis.URL != "" || cfg.Sites[0].Key != "pk_demo_0123456789" || cfg.Clients[0].Name != "backend" {
		t.Errorf("unexpected example config: %+v", cfg)
	}
	if names := enabledNames(cfg); !slices.Equal(names, []string{"linkrunner", "ens", "brevo", "bannerflex"}) {
		t.Errorf("example enables the wrong providers: %+v", cfg.Providers)
	}
}

// TestDefaults checks every documented default on a file that sets almost nothing.
func TestDefaults(t *testing.T) {
	cfg, err := config.Parse([]byte(`
admin: {token: admin-token-0123456789}
sites: [{name: shop, key: pk_shop_0123}]
clients: [{name: backend, token: backend-token-0123456789}]
providers:
  linkrunner: {server_key: lr}
  ens: {api_key: ens}
  brevo: {api_key: brevo}
  bannerflex:
  cardlytics: {base_url: "http://127.0.0.1:8443", client_id: id, secret: s}
`), nil, providers.Specs())
	if err != nil {
		t.Fatal(err)
	}
	delivery := func(baseURL string, rate float64) config.Delivery {
		return config.Delivery{
			BaseURL: baseURL, Workers: 4, RateLimit: rate, Timeout: 10 * time.Second, VisibilityTimeout: 30 * time.Second,
			MaxAttempts: 12, MaxAge: 24 * time.Hour,
			Backoff:     config.Backoff{Base: time.Second, Max: 10 * time.Minute},
			Breaker:     config.Breaker{Failures: 5, OpenFor: 30 * time.Second},
			DeadLetters: config.DeadLetters{MaxAge: 7 * 24 * time.Hour, MaxCount: 100000},
		}
	}
	// Enabled routes: all but brevo/track-event (no ma_key).
	siteRoutes := []string{
		"linkrunner/capture-event", "ens/impression", "ens/click", "brevo/events",
		"bannerflex/banner-events", "cardlytics/client-events",
	}
	clientRoutes := []string{
		"linkrunner/capture-event", "linkrunner/capture-payment", "ens/impression", "ens/click",
		"brevo/events", "bannerflex/banner-events", "cardlytics/client-events",
	}
	want := &config.Config{
		Server: config.Server{
			Listen: ":8080", MaxBodyBytes: 65536, ReadTimeout: 10 * time.Second,
			WriteTimeout: 10 * time.Second, IdleTimeout: 60 * time.Second,
			MaxTrackedIPs: 100000, MaxBatchEvents: 100, CORSMaxAge: 10 * time.Minute,
		},
		Admin: config.Admin{Listen: "127.0.0.1:9090", Token: "admin-token-0123456789"},
		Redis: config.Redis{
			Prefix: "relay", EnqueueTimeout: time.Second, HighWaterMark: 1000000,
			Writers: 2, MaxBatch: 256, PoolSize: 32, ConsumerExpiry: time.Hour, Shards: 1,
		},
		Log:   config.Log{Level: "info"},
		Trace: config.Trace{Enabled: new(true), Keep: 100_000, TailBuffer: 4096},
		Sites: []config.Site{{
			Name: "shop", Key: "pk_shop_0123", Routes: siteRoutes,
			RateLimit: config.RateLimit{PerIP: 20, Burst: 40}, Consent: config.ConsentNone,
		}},
		Clients:   []config.Client{{Name: "backend", Token: "backend-token-0123456789", Routes: clientRoutes}},
		Providers: config.NewProviders(providers.Specs()),
	}
	for name, sec := range map[string]config.ProviderSection{
		"linkrunner": &providers.LinkrunnerConfig{Delivery: delivery("https://api.linkrunner.io", 30), ServerKey: "lr"},
		"ens":        &providers.ENSConfig{Delivery: delivery("https://ads.enslive.live", 50), APIKey: "ens"},
		"brevo": &providers.BrevoConfig{
			Delivery: delivery("https://api.brevo.com", 10), APIKey: "brevo",
			TrackerURL: "https://in-automate.brevo.com",
		},
		"bannerflex": &providers.BannerFlexConfig{Delivery: delivery("https://www.bannerflex.app", 50)},
		"cardlytics": &providers.CardlyticsConfig{
			Delivery: delivery("http://127.0.0.1:8443", 20), Auth: "bearer", ClientID: "id", Secret: "s",
			SessionTokenField: "token",
		},
	} {
		want.Providers.Enable(name, sec)
	}
	// Specs hold functions, which DeepEqual never finds equal: compare the sections.
	gotP, wantP := cfg.Providers, want.Providers
	cfg.Providers, want.Providers = config.Providers{}, config.Providers{}
	for _, name := range gotP.Names() {
		if !reflect.DeepEqual(gotP.Section(name), wantP.Section(name)) {
			t.Errorf("providers.%s:\n got %+v\nwant %+v", name, gotP.Section(name), wantP.Section(name))
		}
	}
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("defaults:\n got %+v\nwant %+v", cfg, want)
		for _, pair := range [][2]any{
			{cfg.Server, want.Server}, {cfg.Redis, want.Redis}, {cfg.Sites, want.Sites},
			{cfg.Clients, want.Clients},
		} {
			if !reflect.DeepEqual(pair[0], pair[1]) {
				t.Errorf("differs:\n got %+v\nwant %+v", pair[0], pair[1])
			}
		}
	}
}

func TestBurstDefault(t *testing.T) {
	for _, tc := range []struct {
		perIP float64
		burst int
	}{{0, 40}, {20, 40}, {2.5, 5}, {0.3, 1}, {0.01, 1}} {
		c := config.Config{Sites: []config.Site{{RateLimit: config.RateLimit{PerIP: tc.perIP}}}}
		c.SetDefaults()
		if got := c.Sites[0].RateLimit.Burst; got != tc.burst {
			t.Errorf("per_ip %v: burst %d, want %d", tc.perIP, got, tc.burst)
		}
	}
}

func TestProviderPresenceEnables(t *testing.T) {
	for _, text := range []string{"bannerflex:", "bannerflex: ~", "bannerflex: null", "bannerflex: {}"} {
		cfg, err := config.Parse([]byte("admin: {token: admin-token-0123456789}\nproviders:\n  "+text+"\n"), nil, providers.Specs())
		if err != nil {
			t.Errorf("%q: %v", text, err)
			continue
		}
		if b := section[*providers.BannerFlexConfig](cfg, "bannerflex"); b == nil || b.BaseURL != "https://www.bannerflex.app" {
			t.Errorf("%q: bannerflex = %+v, want enabled with defaults", text, b)
		}
		if cfg.Providers.Section("ens") != nil {
			t.Errorf("%q: ens enabled without being listed", text)
		}
	}
}

// TestExpansionCannotInjectYAML feeds values that would change the document if they were
// pasted into the text, and checks each lands verbatim in its field, plain, quoted or in
// a flow collection (quoted or not), and nothing else changes.
func TestExpansionCannotInjectYAML(t *testing.T) {
	for _, value := range []string{
		"x\nadmin:\n  token: injected-token-0123456789",
		"x: y",
		"x\n- y",
		"{a: b}",
		"[a, b]",
		"x # not a comment",
		"'quoted'",
		"x\" , key: \"y",
		"${ENS_API_KEY}", // values are not expanded again
		"$${ENS_API_KEY}",
		"}",
		"]",
		"x}, {name: injected, key: pk_injected_0123",
		"x, key: pk_injected_0123}",
		"a]\n  - {name: b",
		"zRelayEnv0z", // a placeholder's text is not expanded either
	} {
		getenv := func(name string) (string, bool) {
			switch name {
			case "VALUE":
				return value, true
			case "ENS_API_KEY":
				return "expanded-twice", true
			}
			return "", false
		}
		cfg, err := config.Parse([]byte(`
admin: {token: admin-token-0123456789}
sites:
  - name: ${VALUE}
    key: pk_plain_0123
  - name: "q-${VALUE}"
    key: pk_quoted_0123
  - {name: "f-${VALUE}", key: pk_flow_0123}
  - {key: pk_flow_middle_0123, name: m-${VALUE}-m}
  - {name: 'fs-${VALUE}', key: pk_flow_single_0123}
clients: [{name: ${VALUE}, token: backend-token-0123456789}]
providers:
  bannerflex: {}
`), getenv, providers.Specs())
		if err != nil {
			t.Errorf("%q: %v", value, err)
			continue
		}
		var names []string
		for _, s := range cfg.Sites {
			names = append(names, s.Name)
		}
		names = append(names, cfg.Clients[0].Name)
		want := []string{value, "q-" + value, "f-" + value, "m-" + value + "-m", "fs-" + value, value}
		if !reflect.DeepEqual(names, want) || cfg.Admin.Token != "admin-token-0123456789" {
			t.Errorf("%q: names %q, admin token %q", value, names, cfg.Admin.Token)
		}
	}
}

func TestExpandString(t *testing.T) {
	getenv := func(name string) (string, bool) {
		v, ok := map[string]string{"A": "1", "B": "two", "E": "", "D": "$${A}"}[name]
		return v, ok
	}
	for _, tc := range []struct {
		in, out  string
		problems int
	}{
		{"${A}", "1", 0},
		{"x${A}y${B}z", "x1ytwoz", 0},
		{"${E}", "", 0},
		{"$${A}", "${A}", 0},
		{"$$${A}", "$${A}", 0},
		{"${D}", "$${A}", 0},
		{"$A ${A}$", "$A 1$", 0},
		{"${UNSET}", "", 1},
		{"${UNSET}${ALSO}", "", 2},
		{"${A", "", 1},
		{"${}", "", 1},
		{"${1A}", "", 1},
		{"${A-B}", "", 1},
	} {
		out, problems := config.ExpandString(tc.in, getenv)
		if len(problems) != tc.problems || (tc.problems == 0 && out != tc.out) {
			t.Errorf("expandString(%q) = %q, %q; want %q with %d problems", tc.in, out, problems, tc.out, tc.problems)
		}
	}
}

// TestExpandedScalarTypes: a plain ${VAR} takes the type of its value, a quoted one stays
// a string, and a null-looking value stays a string.
func TestExpandedScalarTypes(t *testing.T) {
	getenv := func(name string) (string, bool) {
		v, ok := map[string]string{"N": "8", "NULL": "null", "TRUE": "true", "RATE": "2.5"}[name]
		return v, ok
	}
	for _, doc := range []string{`
admin: {token: admin-token-0123456789}
providers:
  ens:
    api_key: ${NULL}
    workers: ${N}
    rate_limit: ${RATE}
  linkrunner:
    server_key: ${TRUE}
`, `
admin: {token: admin-token-0123456789}
providers:
  ens: {api_key: ${NULL}, workers: ${N}, rate_limit: ${RATE}}
  linkrunner: {server_key: ${TRUE}}
`} {
		cfg, err := config.Parse([]byte(doc), getenv, providers.Specs())
		if err != nil {
			t.Fatal(err)
		}
		if ens := section[*providers.ENSConfig](cfg, "ens"); ens.APIKey != "null" || ens.Workers != 8 || ens.RateLimit != 2.5 {
			t.Errorf("ens = %+v", ens)
		}
		if lr := section[*providers.LinkrunnerConfig](cfg, "linkrunner"); lr.ServerKey != "true" {
			t.Errorf("linkrunner.server_key = %q", lr.ServerKey)
		}
	}
}

// TestDesignExample: the design's configuration example (testdata/design_example.yaml), which writes ${NAME} unquoted in
// flow mappings, loads, and every reference lands in its field.
func TestDesignExample(t *testing.T) {
	getenv := testEnv(t)
	env := func(name string) string {
		v, _ := getenv(name)
		return v
	}
	cfg, err := config.Load("testdata/design_example.yaml", getenv, providers.Specs())
	if err != nil {
		t.Fatal(err)
	}
	lr := section[*providers.LinkrunnerConfig](cfg, "linkrunner")
	ens := section[*providers.ENSConfig](cfg, "ens")
	brevo := section[*providers.BrevoConfig](cfg, "brevo")
	cdlx := section[*providers.CardlyticsConfig](cfg, "cardlytics")
	for _, c := range []struct{ got, name string }{
		{cfg.Admin.Token, "RELAY_ADMIN_TOKEN"},
		{cfg.Sites[0].IdentitySecret, "SHOP_IDENTITY_SECRET"},
		{cfg.Clients[0].Token, "BACKEND_TOKEN"},
		{lr.ServerKey, "LINKRUNNER_KEY"},
		{ens.APIKey, "ENS_API_KEY"},
		{brevo.APIKey, "BREVO_API_KEY"},
		{brevo.MAKey, "BREVO_MA_KEY"},
		{cdlx.ClientID, "CDLX_CLIENT_ID"},
		{cdlx.Secret, "CDLX_SECRET"},
		{cdlx.InstitutionID, "CDLX_INSTITUTION_ID"},
	} {
		if c.got != env(c.name) {
			t.Errorf("${%s} decoded as %q", c.name, c.got)
		}
	}
	if cfg.Providers.Section("bannerflex") == nil || cfg.Sites[0].RateLimit != (config.RateLimit{PerIP: 20, Burst: 40}) ||
		!reflect.DeepEqual(cfg.Server.TrustedProxies, []string{"10.0.0.0/8"}) {
		t.Errorf("unexpected config: %+v", cfg)
	}
}

// TestFlowExpansionStaysOneScalar: unquoted references in flow collections, alone, within
// a larger scalar, as items and in nested collections, each expand to exactly one scalar
// holding the hostile value, and the document keeps its shape.
func TestFlowExpansionStaysOneScalar(t *testing.T) {
	for _, value := range []string{
		"}", "]", "{", "[", "x, y", "x}, {k: v", "x], [y", "k: v", "x\n}\n- y", "# c", "x #c",
		`"`, "'", "&a", "*a", "!!int", "? q", "| x", "${V}", "$${V}", "~", "",
	} {
		getenv := func(name string) (string, bool) { return value, name == "V" }
		root, err := config.ParseNode([]byte(`
a: {k: ${V}, l: [${V}, x${V}y, {m: ${V}}, "${V}", '${V}'], ${V}: key}
b: [${V}]
c: [a$${V}, {d: $${V}}]
`))
		if err != nil {
			t.Fatalf("%q: %v", value, err)
		}
		var errs config.Errors
		config.ExpandNode(root, "", getenv, &errs)
		if len(errs) > 0 {
			t.Fatalf("%q: %v", value, &errs)
		}
		var got map[string]any
		if err := root.Decode(&got); err != nil {
			t.Fatalf("%q: %v", value, err)
		}
		want := map[string]any{
			"a": map[string]any{
				"k":    value,
				"l":    []any{value, "x" + value + "y", map[string]any{"m": value}, value, value},
				"${V}": "key", // keys are names, never expanded
			},
			"b": []any{value},
			"c": []any{"a${V}", map[string]any{"d": "${V}"}},
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%q:\n got %#v\nwant %#v", value, got, want)
		}
	}
}

// TestMaskEnvRefs: masking hides exactly the valid references and escapes, restoring
// gives back the text, and a text that already holds the placeholder prefix keeps it.
func TestMaskEnvRefs(t *testing.T) {
	for _, text := range []string{
		"",
		"a: b",
		"a: {k: ${A}}",
		"a: [${A}, ${B}, ${A}]",
		"a: $${A} $$${B} ${A}${B}x${C}",
		"a: ${bad name} ${A ${} ${1A} ${A-B} ${UNTERMINATED",
		"a: zRelayEnv0z ${A} zRelayEnvQ",
		"# ${A}\na: |\n  ${B}\n",
	} {
		masked, mask := config.MaskEnvRefs([]byte(text))
		if got := mask.Restore(string(masked)); got != text {
			t.Errorf("%q: masked %q restores to %q", text, masked, got)
		}
		for _, ref := range mask.Refs() {
			if strings.Contains(string(masked), ref) {
				t.Errorf("%q: masked %q still holds %s", text, masked, ref)
			}
		}
		if strings.Contains(text, "zRelayEnv") && mask.Prefix() == "zRelayEnv" {
			t.Errorf("%q: prefix %q occurs in the text", text, mask.Prefix())
		}
	}
	if _, mask := config.MaskEnvRefs([]byte("${bad name} ${A ${}")); len(mask.Refs()) != 0 {
		t.Errorf("invalid references masked: %q", mask.Refs())
	}

	cfg, err := config.Parse([]byte("admin: {token: zRelayEnv0z-${T}}\nsites: [{name: zRelayEnv0z, key: pk_shop_0123}]\nproviders: {bannerflex: {}}\n"),
		func(string) (string, bool) { return "0123456789abcdef", true }, providers.Specs())
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Admin.Token != "zRelayEnv0z-0123456789abcdef" || cfg.Sites[0].Name != "zRelayEnv0z" {
		t.Errorf("admin.token %q, sites[0].name %q", cfg.Admin.Token, cfg.Sites[0].Name)
	}
}

// TestReferenceOutsideScalar: a reference may stand for a scalar only, never for an
// anchor, alias or tag, and no message shows a placeholder.
func TestReferenceOutsideScalar(t *testing.T) {
	for _, doc := range []string{
		"admin: &${A} {token: admin-token-0123456789}\n",
		"admin: &a {token: admin-token-0123456789}\nx: *${A}\n",
		"admin: {token: !${A} admin-token-0123456789}\n",
		"admin: {token: \"\\${A}\"}\n",
	} {
		_, err := config.Parse([]byte(doc), func(string) (string, bool) { return "a", true }, providers.Specs())
		if err == nil {
			t.Errorf("%q parsed", doc)
		} else if strings.Contains(err.Error(), "RelayEnv") {
			t.Errorf("%q: message shows a placeholder: %v", doc, err)
		}
	}
}

func TestValidateConfigBuiltInCode(t *testing.T) {
	c := &config.Config{
		Admin:     config.Admin{Token: "admin-token-0123456789"},
		Providers: config.NewProviders(providers.Specs()),
		Sites:     []config.Site{{Name: "shop", Key: "pk_shop_0123", Origins: []string{"https://shop.example.com"}}},
	}
	bannerflex := &providers.BannerFlexConfig{}
	c.Providers.Enable("bannerflex", bannerflex)
	c.SetDefaults()
	if err := c.Validate(); err != nil {
		t.Fatalf("valid config: %v", err)
	}
	bannerflex.Timeout = 0
	c.Sites[0].Origins = append(c.Sites[0].Origins, "https://shop.example.com/")
	var errs *config.Errors
	if err := c.Validate(); !errors.As(err, &errs) {
		t.Fatalf("Validate = %v, want *Errors", err)
	}
	var paths []string
	for _, p := range *errs {
		paths = append(paths, p.Path)
	}
	if want := []string{"sites[0].origins[1]", "providers.bannerflex.timeout"}; !reflect.DeepEqual(paths, want) {
		t.Errorf("paths %q, want %q", paths, want)
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := config.Load(filepath.Join(t.TempDir(), "missing.yaml"), nil, providers.Specs())
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Load = %v, want fs.ErrNotExist", err)
	}
}

// TestFullFileUsesEveryKey keeps testdata/full.yaml complete: a field added to the schema
// must be added there too, so the golden test decodes it at least once. The delivery
// settings every provider shares need to appear under one provider only.
func TestFullFileUsesEveryKey(t *testing.T) {
	data, err := os.ReadFile("testdata/full.yaml")
	if err != nil {
		t.Fatal(err)
	}
	root, err := config.ParseNode(data)
	if err != nil {
		t.Fatal(err)
	}
	used := make(map[string]bool)
	var walkYAML func(n *yaml.Node, path string)
	walkYAML = func(n *yaml.Node, path string) {
		switch n.Kind {
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				key := config.JoinPath(path, n.Content[i].Value)
				used[key] = true
				used[anyProvider(key)] = true
				walkYAML(n.Content[i+1], key)
			}
		case yaml.SequenceNode:
			for _, item := range n.Content {
				walkYAML(item, path)
			}
		}
	}
	walkYAML(root, "")

	var walkType func(t reflect.Type, path string)
	walkType = func(ty reflect.Type, path string) {
		for ty.Kind() == reflect.Pointer || ty.Kind() == reflect.Slice {
			ty = ty.Elem()
		}
		if ty.Kind() != reflect.Struct {
			return
		}
		for name, ft := range config.YAMLFields(ty) {
			key := config.JoinPath(path, name)
			if !used[key] && !used[anyProvider(key)] {
				t.Errorf("testdata/full.yaml does not set %s", key)
			}
			walkType(ft, key)
		}
	}
	walkType(reflect.TypeFor[config.Config](), "")
	for _, spec := range providers.Specs() {
		walkType(reflect.TypeOf(spec.NewSection()), "providers."+spec.Name)
	}
}

// anyProvider turns providers.NAME.KEY into providers.*.KEY when KEY is a Delivery setting.
func anyProvider(path string) string {
	parts := strings.SplitN(path, ".", 3)
	if len(parts) < 3 || parts[0] != "providers" {
		return path
	}
	field, _, _ := strings.Cut(parts[2], ".")
	if _, ok := config.YAMLFields(reflect.TypeFor[config.Delivery]())[field]; !ok {
		return path
	}
	return "providers.*." + parts[2]
}

// The shared limiter spaces requests in whole µs: a higher rate_limit is refused, by path.
func TestRateLimitAboveOneMillionIsRefused(t *testing.T) {
	_, err := config.Parse([]byte(`
admin: {listen: "127.0.0.1:9090", token: "admin-token-0123456789"}
providers:
  bannerflex: {rate_limit: 2e6}
`), nil, providers.Specs())
	if err == nil || !strings.Contains(err.Error(), "providers.bannerflex.rate_limit must be at most 1e6") {
		t.Fatalf("err = %v, want providers.bannerflex.rate_limit must be at most 1e6", err)
	}
}

// section returns the section of provider name in cfg as a T (nil when not enabled).
func section[T config.ProviderSection](cfg *config.Config, name string) T {
	sec, _ := cfg.Providers.Section(name).(T)
	return sec
}

// enabledNames lists the enabled providers' names.
func enabledNames(cfg *config.Config) []string {
	var out []string
	for _, p := range cfg.Providers.Enabled() {
		out = append(out, p.Name)
	}
	return out
}

// TestEveryPhaseReportedInOneRun: an unset variable, an unknown key, a value of the wrong
// type and an invalid value are all reported by one Parse, each with its line (validation
// problems have none); the fields left empty by the first three are not reported again.
func TestEveryPhaseReportedInOneRun(t *testing.T) {
	_, err := config.Parse([]byte(`admin:
  token: ${UNSET_ADMIN_TOKEN}
server:
  listn: ":8080"
  read_timeout: soon
providers:
  ens:
    api_key: ens-key-0123456789
    workers: 1000
`), nil, providers.Specs())
	var errs *config.Errors
	if !errors.As(err, &errs) {
		t.Fatalf("Parse: %v, want *Errors", err)
	}
	want := []config.Problem{
		{Line: 2, Path: "admin.token", Message: "environment variable UNSET_ADMIN_TOKEN is not set"},
		{Line: 4, Path: "server.listn", Message: "unknown field"},
		{Line: 5, Path: "server.read_timeout", Message: "must be a duration such as 500ms, 10s or 1h30m"},
		{Path: "providers.ens.workers", Message: "must be between 1 and 256"},
	}
	if !slices.Equal(*errs, want) {
		t.Fatalf("problems:\n%v\nwant:\n%v", err, &config.Errors{want[0], want[1], want[2], want[3]})
	}
}
