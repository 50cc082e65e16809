// The metric contract is the "Prometheus metrics" section of the repository's own
// docs/api.md. This file checks the dashboard and the alert rules against it, and that a
// running relay exports exactly the relay_ metrics it documents (relay_test.go checks the
// other direction: every documented metric is exported).

package deploy_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// --- the metric contract -----------------------------------------------------------------

// metricSpec is one metric documented in docs/api.md.
type metricSpec struct {
	name      string
	labels    []string // sorted
	histogram bool
}

// queueCollectorMetrics come from the scrape-time queue collector
// (relay/admin/collector.go): their absence gets its own explanation.
var queueCollectorMetrics = []string{"relay_queue_depth", "relay_oldest_undelivered_seconds"}

// metricsDoc is the document whose metrics section is the contract, and metricsHeading
// the heading of that section.
var metricsDoc = filepath.Join("..", "docs", "api.md")

const metricsHeading = "## Prometheus metrics"

// enumeratedLabels are the labels whose values the code defines as a closed set
// (relay/forward/metrics.go, relay/admin/collector.go): the document must list their
// values, so that a matcher such as outcome="failed", which would match nothing, forever,
// silently, is caught.
var enumeratedLabels = []string{"outcome", "state"}

// tickedCell matches a table cell holding one `code span`.
var tickedCell = regexp.MustCompile("^`([^`]+)`$")

// tickedList reads a table cell that is a comma-separated list of code spans
// ("`route`, `code`"); ok is false when it is anything else.
func tickedList(cell string) ([]string, bool) {
	var out []string
	for part := range strings.SplitSeq(cell, ",") {
		m := tickedCell.FindStringSubmatch(strings.TrimSpace(part))
		if m == nil {
			return nil, false
		}
		out = append(out, m[1])
	}
	return out, len(out) > 0
}

// documentedMetrics reads the metrics section of docs/api.md: the rows of its metric
// table, "| `name` | counter, gauge or histogram | `label`, ... | meaning |", and of its
// table of label values, "| `label` | `value`, ... |". Any other row starting with a code
// span is an error, so a table whose format changed cannot be skipped unnoticed.
func documentedMetrics(t *testing.T) (specs []metricSpec, values map[string][]string) {
	t.Helper()
	b, err := os.ReadFile(metricsDoc)
	if err != nil {
		t.Fatalf("the metric contract: %v", err)
	}
	doc := strings.ReplaceAll(string(b), "\r\n", "\n")
	i := strings.Index(doc, "\n"+metricsHeading+"\n")
	if i < 0 {
		t.Fatalf("%s: no section %q; update documentedMetrics if it moved", metricsDoc, metricsHeading)
	}
	section := doc[i+1+len(metricsHeading):]
	if j := strings.Index(section, "\n## "); j >= 0 {
		section = section[:j]
	}
	values = map[string][]string{}
	seen := map[string]bool{}
	for line := range strings.Lines(section) {
		line = strings.TrimSpace(line)
		if !strings.HasPrefix(line, "| `") {
			continue
		}
		cells := strings.Split(strings.TrimSuffix(strings.TrimPrefix(line, "|"), "|"), "|")
		for k := range cells {
			cells[k] = strings.TrimSpace(cells[k])
		}
		first := tickedCell.FindStringSubmatch(cells[0])
		if first == nil {
			t.Errorf("%s: cannot read the row %q", metricsDoc, line)
			continue
		}
		name := first[1]
		if seen[name] {
			t.Errorf("%s: %s is listed twice", metricsDoc, name)
		}
		seen[name] = true
		if strings.HasPrefix(name, "relay_") {
			labels, ok := tickedList(cells[min(2, len(cells)-1)])
			typ := cells[min(1, len(cells)-1)]
			if len(cells) != 4 || !ok || !slices.Contains([]string{"counter", "gauge", "histogram"}, typ) {
				t.Errorf("%s: cannot read the metric row %q: want | `name` | counter, gauge or histogram | `label`, ... | meaning |",
					metricsDoc, line)
				continue
			}
			slices.Sort(labels)
			specs = append(specs, metricSpec{name, labels, typ == "histogram"})
			continue
		}
		vs, ok := tickedList(cells[min(1, len(cells)-1)])
		if len(cells) != 2 || !ok {
			t.Errorf("%s: cannot read the label row %q: want | `label` | `value`, ... |", metricsDoc, line)
			continue
		}
		slices.Sort(vs)
		values[name] = vs
	}
	if len(specs) == 0 {
		t.Fatalf("%s: found no metric in section %q; update documentedMetrics", metricsDoc, metricsHeading)
	}
	return specs, values
}

// contract is docs/api.md's metric list by name, and its enumerated label values.
func contract(t *testing.T) (map[string]metricSpec, map[string][]string) {
	t.Helper()
	specs, values := documentedMetrics(t)
	m := map[string]metricSpec{}
	for _, s := range specs {
		m[s.name] = s
	}
	return m, values
}

// TestDocumentedMetrics checks the contract itself: every metric has labels, every
// label with listed values belongs to a documented metric, and the closed sets of values
// the code defines are listed.
func TestDocumentedMetrics(t *testing.T) {
	specs, values := contract(t)
	labels := map[string]bool{}
	for _, s := range specs {
		for _, l := range s.labels {
			labels[l] = true
		}
	}
	for label := range values {
		if !labels[label] {
			t.Errorf("%s lists values of label %q, which no documented metric has", metricsDoc, label)
		}
	}
	for _, label := range enumeratedLabels {
		if len(values[label]) == 0 {
			t.Errorf("%s does not list the values of label %q", metricsDoc, label)
		}
	}
}

// checkExportedDocumented is the other direction of TestRunningRelay's metrics check,
// on the same scrape (text, parsed as fams): every relay_ metric the relay exports is
// documented, with the same labels and type, and every value it exports for an
// enumerated label is one of the documented ones.
func checkExportedDocumented(t *testing.T, text string, fams map[string]*metricFamily, specs map[string]metricSpec, values map[string][]string) {
	t.Helper()
	for _, name := range slices.Sorted(maps.Keys(fams)) {
		if !strings.HasPrefix(name, "relay_") {
			continue // the Go and process collectors
		}
		f := fams[name]
		s, ok := specs[name]
		switch {
		case !ok:
			t.Errorf("the relay exports %s{%s} (a %s), which %s does not document", name, strings.Join(f.labels, ","), f.typ, metricsDoc)
		case !slices.Equal(f.labels, s.labels):
			t.Errorf("%s has labels %v; %s says %v", name, f.labels, metricsDoc, s.labels)
		case (f.typ == "histogram") != s.histogram:
			t.Errorf("%s is a %s; %s says otherwise", name, f.typ, metricsDoc)
		}
	}
	for line := range strings.Lines(text) {
		end := strings.IndexByte(line, '{')
		if !strings.HasPrefix(line, "relay_") || end < 0 {
			continue
		}
		labels, _, err := promMatchers(line, end)
		if err != nil {
			t.Fatalf("/metrics: %q: %v", line, err)
		}
		for _, l := range labels {
			if allowed := values[l.label]; len(allowed) > 0 && !slices.Contains(allowed, l.value) {
				t.Errorf("the relay exports %s=%q in %q; %s lists %v", l.label, l.value, strings.TrimSpace(line), metricsDoc, allowed)
			}
		}
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
// docs/api.md's contract, and returns which metrics are used where.
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
				t.Errorf("%s: %s is not a metric docs/api.md documents", e.where, s.name)
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
			t.Errorf("%s: %s is not a metric docs/api.md documents", r.where, r.metric)
		case !slices.Contains(spec.labels, r.label):
			t.Errorf("%s: %s has no label %q", r.where, r.metric, r.label)
		default:
			use(spec.name, r.where)
		}
	}
	return used
}

// checkLabelValue checks a matcher's value against the values docs/api.md lists for
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
// only the metrics, labels and label values of docs/api.md; TestRunningRelay checks that
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
