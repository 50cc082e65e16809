package redact

import (
	"encoding/json"
	"strings"
	"testing"
)

// Upstream error texts, as the forwarder logs them.
func TestEmailsInErrorTexts(t *testing.T) {
	for in, want := range map[string]string{
		`HTTP 400: {"message":"contact jane.doe+x@example.co.uk not found"}`: `HTTP 400: {"message":"contact j***@example.co.uk not found"}`,
		"a@b.c and z@y.org":  "a***@b.c and z***@y.org",
		"no address here @x": "no address here @x",
	} {
		if got := Emails(in); got != want {
			t.Errorf("Emails(%q) = %q, want %q", in, got, want)
		}
	}
}

// Event bodies, as the admin API shows them: the JSON stays valid.
func TestEmailsInJSON(t *testing.T) {
	for in, want := range map[string]string{
		`jane@example.com`: `j***@example.com`,
		`{"email":"jane.doe+tag@mail.example.co.uk"}`: `{"email":"j***@mail.example.co.uk"}`,
		`{"a":"x@y.io","b":"bob@b.io"}`:               `{"a":"x***@y.io","b":"b***@b.io"}`,
		`{"n":"line\njane@x.io"}`:                     `{"n":"line\nj***@x.io"}`,
		`{"n":"\u00e9lodie@x.io"}`:                    `{"n":"\u00e9l***@x.io"}`,
		`{"n":"back\\slash@x.io"}`:                    `{"n":"back\\s***@x.io"}`,
		`{"n":"\"quoted@x.io"}`:                       `{"n":"\"q***@x.io"}`,
		`no address @ here`:                           `no address @ here`,
		`user@localhost`:                              `user@localhost`,
		`@example.com`:                                `@example.com`,
		`{"campaignId":1}`:                            `{"campaignId":1}`,
		``:                                            ``,
	} {
		got := Emails(in)
		if got != want {
			t.Errorf("Emails(%s) = %s, want %s", in, got, want)
		}
		if json.Valid([]byte(in)) && !json.Valid([]byte(got)) {
			t.Errorf("Emails(%s) broke the JSON: %s", in, got)
		}
		if strings.Contains(in, "jane@") && strings.Contains(got, "jane@") {
			t.Errorf("Emails(%s) kept the address", in)
		}
	}
}
