package config_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/eventrelay/relay/config"
	"github.com/eventrelay/relay/providers"
)

// Every bad server.path_prefix is reported at its path, with what is wrong; good ones pass.
func TestPathPrefixValidation(t *testing.T) {
	for _, tc := range []struct {
		prefix string
		want   string // "" for valid; else a part of the message
	}{
		{"", ""},
		{"/t", ""},
		{"/a/b-c_d.e~1", ""},
		{"/..x", ""},
		{"t", `must start with "/"`},
		{"/", `must not end with "/"`},
		{"/t/", `must not end with "/"`},
		{"/a//b", `must not contain "//"`},
		{"/a/../b", `"." or ".." segments`},
		{"/a/..", `"." or ".." segments`},
		{"/a/./b", `"." or ".." segments`},
		{"/t?x=1", `"?", "#" or "%"`},
		{"/t#x", `"?", "#" or "%"`},
		{"/t%2F", `"?", "#" or "%"`},
		{"/t x", "spaces or control characters"},
		{"/t\tx", "spaces or control characters"},
		{"/t\x00", "spaces or control characters"},
		{"/t\u00a0", "spaces or control characters"},
		{"/t\u0085", "spaces or control characters"},
	} {
		yml := "admin: {listen: \"127.0.0.1:9090\", token: \"admin-token-0123456789\"}\n" +
			"server: {path_prefix: " + yamlQuote(tc.prefix) + "}\nproviders: {bannerflex: {}}\n"
		_, err := config.Parse([]byte(yml), func(string) (string, bool) { return "", false }, providers.Specs())
		if tc.want == "" {
			if err != nil {
				t.Errorf("path_prefix %q: %v", tc.prefix, err)
			}
			continue
		}
		var errs *config.Errors
		if !errors.As(err, &errs) || len(*errs) != 1 {
			t.Errorf("path_prefix %q: err %v, want one problem", tc.prefix, err)
			continue
		}
		p := (*errs)[0]
		if p.Path != "server.path_prefix" || !strings.Contains(p.String(), tc.want) {
			t.Errorf("path_prefix %q: %s (path %s), want server.path_prefix ... %s", tc.prefix, p.String(), p.Path, tc.want)
		}
	}
}

// yamlQuote writes s as a double-quoted YAML scalar, escaping what YAML needs escaped.
func yamlQuote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteString(`\` + string(r))
		case r < 0x20 || (r >= 0x7f && r <= 0x9f) || r == 0xa0:
			fmt.Fprintf(&b, `\u%04X`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}
