// The dashboard and the alert rules, checked against DESIGN.md's metric contract.

package deploy_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// --- the metric contract -----------------------------------------------------------------

// metricSpec is one metric of DESIGN.md's contract.
type metricSpec struct {
	name      string
	labels    []string // sorted
	histogram bool
}

// designMetrics mirrors DESIGN.md, "Admin and operations (contract)", which is the truth:
// the tests read the document when it is there (shared/ beside the repository, as in CI)
// and TestDesignMetricList keeps this copy equal to it for when it is not.
var designMetrics = []metricSpec{
	{"relay_ingest_requests_total", []string{"code", "route"}, false},
	{"relay_events_enqueued_total", []string{"provider"}, false},
	{"relay_deliveries_total", []string{"outcome", "provider"}, false},
	{"relay_delivery_duration_seconds", []string{"provider"}, true},
	{"relay_queue_depth", []string{"provider", "state"}, false},
	{"relay_oldest_undelivered_seconds", []string{"provider"}, false},
	{"relay_breaker_state", []string{"provider"}, false},
}

// designLabelValues are the label values DESIGN.md enumerates.
var designLabelValues = map[string][]string{
	"outcome": {"dead", "delivered", "retried"},
	"state":   {"dead", "pending", "ready", "retry"},
}

// queueCollectorMetrics come from the scrape-time queue collector, which was being
// written alongside these files: their absence gets its own explanation.
var queueCollectorMetrics = []string{"relay_queue_depth", "relay_oldest_undelivered_seconds"}

var designPath = filepath.Join("..", "..", "shared", "DESIGN.md")

// designFromDoc reads the metric list out of DESIGN.md's "Metrics:" paragraph; ok is
// false when the document is not there.
func designFromDoc(t *testing.T) (specs []metricSpec, values map[string][]string, ok bool) {
	t.Helper()
	b, err := os.ReadFile(designPath)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, false
	}
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	i := strings.Index(doc, "\nMetrics:")
	if i < 0 {
		t.Fatalf("%s: no paragraph starting \"Metrics:\"; update designFromDoc", designPath)
	}
	para := doc[i+1:]
	if j := strings.Index(para, "\n\n"); j >= 0 {
		para = para[:j]
	}
	para = strings.Join(strings.Fields(para), " ") // undo the line wrapping
	for _, m := range regexp.MustCompile("`(relay_[a-z0-9_]+)\\{([a-z_,]+)\\}`( \\(histogram\\))?").FindAllStringSubmatch(para, -1) {
		labels := strings.Split(m[2], ",")
		slices.Sort(labels)
		specs = append(specs, metricSpec{m[1], labels, m[3] != ""})
	}
	values = map[string][]string{}
	for _, m := range regexp.MustCompile("\\((\\w+): ((?:`[\\w-]+`(?:, )?)+)\\)").FindAllStringSubmatch(para, -1) {
		var vs []string
		for _, v := range regexp.MustCompile("`([\\w-]+)`").FindAllStringSubmatch(m[2], -1) {
			vs = append(vs, v[1])
		}
		slices.Sort(vs)
		values[m[1]] = vs
	}
	if len(specs) == 0 {
		t.Fatalf("%s: found no metric in the \"Metrics:\" paragraph; update designFromDoc", designPath)
	}
	return specs, values, true
}

// contract is DESIGN.md's metric list by name, and its enumerated label values.
func contract(t *testing.T) (map[string]metricSpec, map[string][]string) {
	t.Helper()
	specs, values, ok := designFromDoc(t)
	if !ok {
		t.Logf("%s is not there: using this test's copy of its metric list", designPath)
		specs, values = designMetrics, designLabelValues
	}
	m := map[string]metricSpec{}
	for _, s := range specs {
		m[s.name] = s
	}
	return m, values
}

func TestDesignMetricList(t *testing.T) {
	specs, values, ok := designFromDoc(t)
	if !ok {
		t.Skipf("%s is not there", designPath)
	}
	if !reflect.DeepEqual(specs, designMetrics) {
		t.Errorf("DESIGN.md's metrics changed; update designMetrics in this file:\nDESIGN.md: %v\nthis file: %v", specs, designMetrics)
	}
	if !reflect.DeepEqual(values, designLabelValues) {
		t.Errorf("DESIGN.md's label values changed; update designLabelValues:\nDESIGN.md: %v\nthis file: %v", values, designLabelValues)
	}
}

// --- the dashboard and the alert rules ------------------------------------------------------

// promExpr is one PromQL expression and where it comes from.
type promExpr struct {
	where, expr string
}

// labelValuesRef is a Grafana label_values(metric, label) variable.
type labelValuesRef struct {
	where, metric, label string
}

const dashboardFile = "grafana/relay-dashboard.json"

// dashboardExprs returns the dashboard's queries, checking its structure on the way.
func dashboardExprs(t *testing.T) ([]promExpr, []labelValuesRef) {
	t.Helper()
	var d struct {
		UID        string           `json:"uid"`
		Title      string           `json:"title"`
		Panels     []map[string]any `json:"panels"`
		Templating struct {
			List []map[string]any `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(readFile(t, dashboardFile), &d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	if d.UID == "" || d.Title == "" {
		t.Errorf("%s: set uid and title, so that re-importing replaces the dashboard", dashboardFile)
	}
	var exprs []promExpr
	ids := map[float64]bool{}
	var walk func(panels []map[string]any)
	walk = func(panels []map[string]any) {
		for _, p := range panels {
			title, _ := p["title"].(string)
			where := fmt.Sprintf("%s panel %q", dashboardFile, title)
			id, _ := p["id"].(float64)
			if ids[id] {
				t.Errorf("%s: id %v used twice", where, id)
			}
			ids[id] = true
			if _, ok := p["gridPos"].(map[string]any); !ok {
				t.Errorf("%s: no gridPos", where)
			}
			if p["type"] == "row" {
				if sub, ok := p["panels"].([]any); ok {
					var inner []map[string]any
					for _, s := range sub {
						if m, ok := s.(map[string]any); ok {
							inner = append(inner, m)
						}
					}
					walk(inner)
				}
				continue
			}
			targets, _ := p["targets"].([]any)
			if len(targets) == 0 {
				t.Errorf("%s: no query", where)
			}
			for _, tg := range targets {
				m, _ := tg.(map[string]any)
				expr, _ := m["expr"].(string)
				if expr == "" {
					t.Errorf("%s: a target without expr", where)
					continue
				}
				exprs = append(exprs, promExpr{where, expr})
			}
		}
	}
	walk(d.Panels)

	var refs []labelValuesRef
	labelValues := regexp.MustCompile(`^label_values\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*,\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\)$`)
	for _, v := range d.Templating.List {
		if v["type"] != "query" {
			continue
		}
		where := fmt.Sprintf("%s variable %v", dashboardFile, v["name"])
		q, _ := v["query"].(string)
		if m, ok := v["query"].(map[string]any); ok {
			q, _ = m["query"].(string)
		}
		if m := labelValues.FindStringSubmatch(strings.TrimSpace(q)); m != nil {
			refs = append(refs, labelValuesRef{where, m[1], m[2]})
		} else if q != "" {
			exprs = append(exprs, promExpr{where, q})
		}
	}
	return exprs, refs
}

type ruleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert       string            `yaml:"alert"`
			Record      string            `yaml:"record"`
			Expr        string            `yaml:"expr"`
			For         string            `yaml:"for"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

const alertsFile = "prometheus/alerts.yml"

// alertExprs returns the rules' expressions, checking their structure on the way.
func alertExprs(t *testing.T) []promExpr {
	t.Helper()
	var rf ruleFile
	dec := yaml.NewDecoder(bytes.NewReader(readFile(t, alertsFile)))
	dec.KnownFields(true) // a misspelt key is silently ignored by Prometheus's older versions
	if err := dec.Decode(&rf); err != nil {
		t.Fatalf("%s: %v", alertsFile, err)
	}
	var exprs []promExpr
	names := map[string]bool{}
	for _, g := range rf.Groups {
		if g.Name == "" || len(g.Rules) == 0 {
			t.Errorf("%s: group %q needs a name and rules", alertsFile, g.Name)
		}
		for _, r := range g.Rules {
			where := fmt.Sprintf("%s alert %s", alertsFile, r.Alert)
			if r.Alert == "" || names[r.Alert] {
				t.Errorf("%s: want a unique alert name", where)
			}
			names[r.Alert] = true
			if r.For != "" {
				if _, err := time.ParseDuration(r.For); err != nil {
					t.Errorf("%s: for %q: %v", where, r.For, err)
				}
			}
			if !slices.Contains([]string{"critical", "warning", "info"}, r.Labels["severity"]) {
				t.Errorf("%s: severity %q, want critical, warning or info", where, r.Labels["severity"])
			}
			if r.Annotations["summary"] == "" {
				t.Errorf("%s: no summary annotation", where)
			}
			exprs = append(exprs, promExpr{where, r.Expr})
		}
	}
	if len(exprs) == 0 {
		t.Fatalf("%s: no rules", alertsFile)
	}
	return exprs
}

// targetLabels are added by Prometheus to every series it scrapes; "up" is the series
// it writes for each scrape.
var targetLabels = []string{"instance", "job"}

// resolveMetric maps a series name to its metric: histograms are queried through their
// _bucket, _sum and _count series.
func resolveMetric(name string, specs map[string]metricSpec) (spec metricSpec, suffix string, ok bool) {
	if s, ok := specs[name]; ok {
		return s, "", true
	}
	for _, suf := range []string{"_bucket", "_sum", "_count"} {
		if s, ok := specs[strings.TrimSuffix(name, suf)]; ok && s.histogram && strings.HasSuffix(name, suf) {
			return s, suf, true
		}
	}
	if name == "up" {
		return metricSpec{name: "up"}, "", true
	}
	return metricSpec{}, "", false
}

// checkExprs checks that every metric, label and label value the expressions use is in
// DESIGN.md's contract, and returns which metrics are used where.
func checkExprs(t *testing.T, exprs []promExpr, refs []labelValuesRef) map[string][]string {
	t.Helper()
	specs, values := contract(t)
	used := map[string][]string{}
	use := func(name, where string) {
		file, _, _ := strings.Cut(where, " ")
		if name != "up" && !slices.Contains(used[name], file) {
			used[name] = append(used[name], file)
		}
	}
	for _, e := range exprs {
		q, err := parsePromQL(e.expr)
		if err != nil {
			t.Errorf("%s: %v in %q", e.where, err, e.expr)
			continue
		}
		if len(q.selectors) == 0 {
			t.Errorf("%s: no metric in %q", e.where, e.expr)
		}
		known := slices.Clone(targetLabels)
		for _, s := range q.selectors {
			spec, suffix, ok := resolveMetric(s.name, specs)
			if !ok {
				t.Errorf("%s: %s is not a metric DESIGN.md names", e.where, s.name)
				continue
			}
			use(spec.name, e.where)
			labels := append(slices.Clone(spec.labels), targetLabels...)
			if suffix == "_bucket" {
				labels = append(labels, "le")
			}
			known = append(known, labels...)
			for _, m := range s.matchers {
				if m.label == "__name__" {
					continue
				}
				if !slices.Contains(labels, m.label) {
					t.Errorf("%s: %s has no label %q (it has %v)", e.where, s.name, m.label, spec.labels)
					continue
				}
				checkLabelValue(t, e.where, m, values[m.label])
			}
		}
		for _, g := range q.grouping {
			if !slices.Contains(known, g) {
				t.Errorf("%s: groups by %q, a label none of its metrics has", e.where, g)
			}
		}
	}
	for _, r := range refs {
		spec, ok := specs[r.metric]
		switch {
		case !ok:
			t.Errorf("%s: %s is not a metric DESIGN.md names", r.where, r.metric)
		case !slices.Contains(spec.labels, r.label):
			t.Errorf("%s: %s has no label %q", r.where, r.metric, r.label)
		default:
			use(spec.name, r.where)
		}
	}
	return used
}

// checkLabelValue checks a matcher's value against the values DESIGN.md enumerates for
// its label (outcome, state): outcome="failed" would match nothing, forever, silently.
func checkLabelValue(t *testing.T, where string, m promMatcher, allowed []string) {
	t.Helper()
	if len(allowed) == 0 || strings.Contains(m.value, "$") {
		return
	}
	switch m.op {
	case "=", "!=":
		if !slices.Contains(allowed, m.value) {
			t.Errorf("%s: %s%s%q, but %s is one of %v", where, m.label, m.op, m.value, m.label, allowed)
		}
	case "=~", "!~":
		re, err := regexp.Compile("^(?:" + m.value + ")$")
		if err != nil {
			t.Errorf("%s: %s%s%q: %v", where, m.label, m.op, m.value, err)
			return
		}
		if !slices.ContainsFunc(allowed, re.MatchString) {
			t.Errorf("%s: %s%s%q matches none of %v", where, m.label, m.op, m.value, allowed)
		}
	}
}

// TestDashboardAndAlerts checks statically that the dashboard and the alert rules use
// only the metrics, labels and label values of DESIGN.md; TestRunningRelay checks that
// the relay exports them.
func TestDashboardAndAlerts(t *testing.T) {
	dash, refs := dashboardExprs(t)
	alerts := alertExprs(t)
	used := checkExprs(t, append(dash, alerts...), refs)
	// The brief for each: what an operator must see and be woken for.
	for _, want := range []struct{ file, metric string }{
		{dashboardFile, "relay_ingest_requests_total"},
		{dashboardFile, "relay_events_enqueued_total"},
		{dashboardFile, "relay_deliveries_total"},
		{dashboardFile, "relay_delivery_duration_seconds"},
		{dashboardFile, "relay_queue_depth"},
		{dashboardFile, "relay_oldest_undelivered_seconds"},
		{dashboardFile, "relay_breaker_state"},
		{alertsFile, "relay_oldest_undelivered_seconds"},
		{alertsFile, "relay_deliveries_total"},
		{alertsFile, "relay_breaker_state"},
		{alertsFile, "relay_ingest_requests_total"},
	} {
		if !slices.Contains(used[want.metric], want.file) {
			t.Errorf("%s does not use %s", want.file, want.metric)
		}
	}
	var down bool
	for _, a := range alerts {
		down = down || strings.Contains(a.expr, "up{")
	}
	if !down {
		t.Errorf("%s: no alert on the scrape target being down (up == 0)", alertsFile)
	}
}
