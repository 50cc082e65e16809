// A PromQL scanner, just enough to find the metric names and labels that the dashboard
// and the alert rules use: the real parser lives in the Prometheus server module, far too
// heavy a dependency for this.

package deploy_test

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// promSelector is one vector selector: a metric name and its label matchers.
type promSelector struct {
	name     string
	matchers []promMatcher
}

type promMatcher struct {
	label, op, value string
}

// promQuery is what parsePromQL finds in an expression.
type promQuery struct {
	selectors []promSelector
	grouping  []string // labels of by, without, on, ignoring, group_left, group_right
}

var (
	// promAggregations may be followed by "by (...)" before their parentheses, so an
	// identifier is a metric only if it is none of these nor a function call.
	promAggregations = []string{"sum", "min", "max", "avg", "group", "stddev", "stdvar", "count",
		"count_values", "bottomk", "topk", "quantile", "limitk", "limit_ratio"}
	promGrouping = []string{"by", "without", "on", "ignoring", "group_left", "group_right"}
	promKeywords = []string{"bool", "and", "or", "unless", "offset", "atan2", "inf", "nan"}
)

func isIdentStart(c byte) bool {
	return c == '_' || c == ':' || ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z')
}

func isIdentChar(c byte) bool { return isIdentStart(c) || ('0' <= c && c <= '9') }

// parsePromQL scans a PromQL expression (Grafana's $variables allowed) for its vector
// selectors and grouping labels. It is no validator: it skips strings, ranges, numbers
// and functions and reports what it cannot scan.
func parsePromQL(s string) (promQuery, error) {
	var q promQuery
	skipSpace := func(i int) int {
		for i < len(s) && strings.IndexByte(" \t\r\n", s[i]) >= 0 {
			i++
		}
		return i
	}
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == '"' || c == '\'' || c == '`':
			_, j, err := promString(s, i)
			if err != nil {
				return q, err
			}
			i = j
		case c == '#': // a comment runs to the end of the line
			for i < len(s) && s[i] != '\n' {
				i++
			}
		case c == '[': // a range or subquery: durations and Grafana intervals
			j := strings.IndexByte(s[i:], ']')
			if j < 0 {
				return q, fmt.Errorf("unclosed [ at %d", i)
			}
			i += j + 1
		case c == '$': // a Grafana variable: $name or ${name}
			i++
			if i < len(s) && s[i] == '{' {
				j := strings.IndexByte(s[i:], '}')
				if j < 0 {
					return q, fmt.Errorf("unclosed ${ at %d", i)
				}
				i += j + 1
			}
			for i < len(s) && isIdentChar(s[i]) {
				i++
			}
		case '0' <= c && c <= '9' || c == '.':
			for i < len(s) && (isIdentChar(s[i]) || s[i] == '.' ||
				((s[i] == '+' || s[i] == '-') && (s[i-1] == 'e' || s[i-1] == 'E'))) {
				i++
			}
		case c == '{': // a selector without a name: {__name__="..."}
			sel, j, err := promMatchers(s, i)
			if err != nil {
				return q, err
			}
			for _, m := range sel {
				if m.label == "__name__" && m.op == "=" {
					q.selectors = append(q.selectors, promSelector{name: m.value, matchers: sel})
				}
			}
			i = j
		case isIdentStart(c):
			start := i
			for i < len(s) && isIdentChar(s[i]) {
				i++
			}
			id := s[start:i]
			next := skipSpace(i)
			switch {
			case slices.Contains(promGrouping, strings.ToLower(id)):
				if next < len(s) && s[next] == '(' {
					end := strings.IndexByte(s[next:], ')')
					if end < 0 {
						return q, fmt.Errorf("unclosed %s( at %d", id, next)
					}
					for l := range strings.SplitSeq(s[next+1:next+end], ",") {
						if l = strings.TrimSpace(l); l != "" {
							q.grouping = append(q.grouping, l)
						}
					}
					i = next + end + 1
				}
			case slices.Contains(promKeywords, strings.ToLower(id)),
				slices.Contains(promAggregations, strings.ToLower(id)),
				next < len(s) && s[next] == '(': // a function call
			default:
				sel := promSelector{name: id}
				if next < len(s) && s[next] == '{' {
					m, j, err := promMatchers(s, next)
					if err != nil {
						return q, err
					}
					sel.matchers, i = m, j
				}
				q.selectors = append(q.selectors, sel)
			}
		default:
			i++
		}
	}
	return q, nil
}

// promMatchers parses the label matchers of {...} starting at s[i] == '{'.
func promMatchers(s string, i int) ([]promMatcher, int, error) {
	var out []promMatcher
	i++
	for {
		for i < len(s) && strings.IndexByte(" \t\r\n,", s[i]) >= 0 {
			i++
		}
		if i >= len(s) {
			return nil, i, errors.New("unclosed {")
		}
		if s[i] == '}' {
			return out, i + 1, nil
		}
		start := i
		for i < len(s) && isIdentChar(s[i]) {
			i++
		}
		var m promMatcher
		m.label = s[start:i]
		for i < len(s) && s[i] == ' ' {
			i++
		}
		for _, op := range []string{"=~", "!~", "!=", "="} {
			if strings.HasPrefix(s[i:], op) {
				m.op = op
				break
			}
		}
		if m.label == "" || m.op == "" {
			return nil, i, fmt.Errorf("bad label matcher at %d: %q", start, s[start:min(len(s), start+20)])
		}
		i += len(m.op)
		for i < len(s) && s[i] == ' ' {
			i++
		}
		v, j, err := promString(s, i)
		if err != nil {
			return nil, i, err
		}
		m.value, i = v, j
		out = append(out, m)
	}
}

// promString reads the string literal at s[i] and returns its value and the index after it.
func promString(s string, i int) (string, int, error) {
	if i >= len(s) || strings.IndexByte("\"'`", s[i]) < 0 {
		return "", i, fmt.Errorf("want a string at %d", i)
	}
	quote := s[i]
	var b strings.Builder
	for j := i + 1; j < len(s); j++ {
		switch {
		case s[j] == quote:
			return b.String(), j + 1, nil
		case s[j] == '\\' && quote != '`' && j+1 < len(s):
			j++
			b.WriteByte(s[j])
		default:
			b.WriteByte(s[j])
		}
	}
	return "", len(s), fmt.Errorf("unclosed string at %d", i)
}

func TestParsePromQL(t *testing.T) {
	for _, tc := range []struct {
		expr      string
		selectors []string // name{label op value,...}
		grouping  []string
	}{
		{`up{job="relay"} == 0`, []string{`up{job="relay"}`}, nil},
		{`absent(up{job="relay"})`, []string{`up{job="relay"}`}, nil},
		{`max by (provider) (relay_oldest_undelivered_seconds) > 15 * 60`, []string{`relay_oldest_undelivered_seconds{}`}, []string{"provider"}},
		{`sum(rate(a_total{code=~"5.."}[5m])) / sum without(x, y) (rate(a_total[$__rate_interval])) > 1e-3`,
			[]string{`a_total{code=~"5.."}`, `a_total{}`}, []string{"x", "y"}},
		{`histogram_quantile(0.99, sum by (provider, le) (rate(h_bucket{provider=~"$provider", s!="a\"b}"}[${__interval}])))`,
			[]string{`h_bucket{provider=~"$provider",s!="a"b}"}`}, []string{"provider", "le"}},
		{`a * on(instance) group_left(state) b offset 5m`, []string{`a{}`, `b{}`}, []string{"instance", "state"}},
		{`{__name__="m", x="1"} # comment m2`, []string{`m{__name__="m",x="1"}`}, nil},
	} {
		q, err := parsePromQL(tc.expr)
		if err != nil {
			t.Errorf("%s: %v", tc.expr, err)
			continue
		}
		var got []string
		for _, s := range q.selectors {
			var ms []string
			for _, m := range s.matchers {
				ms = append(ms, m.label+m.op+strconv.Quote(m.value))
			}
			got = append(got, s.name+"{"+strings.Join(ms, ",")+"}")
		}
		// strconv.Quote escapes the quote the expectations write bare.
		for i := range got {
			got[i] = strings.ReplaceAll(got[i], `\"`, `"`)
		}
		if !slices.Equal(got, tc.selectors) || !slices.Equal(q.grouping, tc.grouping) {
			t.Errorf("%s:\n got %q by %q\nwant %q by %q", tc.expr, got, q.grouping, tc.selectors, tc.grouping)
		}
	}
	for _, bad := range []string{`a{b="c"`, `a{b~"c"}`, `rate(a[5m)`, `a{b="c}`} {
		if _, err := parsePromQL(bad); err == nil {
			t.Errorf("%s: no error", bad)
		}
	}
}
