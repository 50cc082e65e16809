package providers

import (
	"slices"
	"strings"
	"testing"
)

// TestEveryProviderIsComplete keeps the tables that list providers or their routes in
// step with All: a provider added there and missing from one of them fails here, saying
// which table to extend (README, "Adding a provider").
func TestEveryProviderIsComplete(t *testing.T) {
	var conformance, examples []string
	for _, c := range append(cfCases(), cfCardlyticsCases(t)...) {
		route, _, _ := strings.Cut(c.name, " ")
		conformance = append(conformance, route)
	}
	for _, ex := range docExamples() {
		examples = append(examples, ex.route)
	}
	names := map[string]bool{}
	for _, p := range All() {
		if names[p.Name] {
			t.Errorf("provider %q listed twice in All", p.Name)
		}
		names[p.Name] = true
		if p.NewSection == nil || p.Ops == nil || p.RateLimit <= 0 {
			t.Errorf("provider %q: NewSection, Ops and RateLimit are required", p.Name)
			continue
		}
		ops := p.Ops(p.NewSection())
		if len(ops) == 0 {
			t.Errorf("provider %q has no routes", p.Name)
		}
		for _, op := range ops {
			if prefix, _, _ := strings.Cut(op.Route, "/"); prefix != p.Name {
				t.Errorf("route %q of %q must start with %q/", op.Route, p.Name, p.Name)
			}
			if !slices.Contains(conformance, op.Route) {
				t.Errorf("route %q has no conformance case (cfCases in conformance_test.go)", op.Route)
			}
			if !slices.Contains(examples, op.Route) {
				t.Errorf("route %q has no documented example (docExamples in examples_test.go)", op.Route)
			}
			if _, ok := benchBodies[op.Route]; !ok {
				t.Errorf("route %q has no benchmark body (benchBodies in bench_test.go)", op.Route)
			}
		}
	}
	for _, route := range append(conformance, examples...) {
		if prefix, _, _ := strings.Cut(route, "/"); !names[prefix] {
			t.Errorf("a test table lists route %q of a provider missing from All", route)
		}
	}
}
