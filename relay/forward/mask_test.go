package forward

import "testing"

func TestMaskEmails(t *testing.T) {
	for in, want := range map[string]string{
		`HTTP 400: {"message":"contact jane.doe+x@example.co.uk not found"}`: `HTTP 400: {"message":"contact j***@example.co.uk not found"}`,
		"a@b.c and z@y.org":  "a***@b.c and z***@y.org",
		"no address here @x": "no address here @x",
	} {
		if got := maskEmails(in); got != want {
			t.Errorf("maskEmails(%q) = %q, want %q", in, got, want)
		}
	}
}
