package providers

import (
	"errors"
	"testing"

	"github.com/eventrelay/relay/strictjson"
)

// FuzzValidate runs every op on arbitrary bodies, signed or not, with an arbitrary customer
// header. Validate must never panic; what it accepts must re-encode to JSON the strict
// pre-pass accepts, validate again unchanged (identities are applied once), and carry a
// customer id fit for an HTTP header.
func FuzzValidate(f *testing.F) {
	for _, ex := range docExamples() {
		f.Add([]byte(ex.body), "cust-42", false)
		f.Add([]byte(ex.body), "cust-7", true)
	}
	f.Add([]byte(`{"clientEvents":[{"clientEventType":"AdImpression","clientEventMetadata":{"imageSlots":[1]}}]}`), "c\r\n", false)
	f.Add([]byte(`{"event_name":"x","identifiers":{},"contact_properties":{"SMS":[]}}`), "", true)
	ops := Ops(allProviders())
	f.Fuzz(func(t *testing.T, data []byte, customer string, signed bool) {
		id := Identity{CustomerID: customer}
		if signed {
			id = Identity{UserID: "user_1", Email: "jane@example.com", CustomerID: customer, Signed: true}
		}
		for _, op := range ops {
			body, err := strictjson.Parse(data, 0)
			if err != nil {
				return
			}
			ev, err := op.Validate(body, id)
			if err != nil {
				if fe := (*FieldError)(nil); !errors.As(err, &fe) {
					t.Fatalf("%s: error %T %v is not a *FieldError", op.Route, err, err)
				}
				continue
			}
			out := ev.Body.AppendJSON(nil)
			again, err := strictjson.Parse(out, 0)
			if err != nil {
				t.Fatalf("%s: accepted body re-encodes as %q, which does not parse: %v", op.Route, out, err)
			}
			ev2, err := op.Validate(again, id)
			if err != nil || ev2.Changed {
				t.Fatalf("%s: re-validating %q: changed %v, %v", op.Route, out, ev2.Changed, err)
			}
			if op.Identity == ClaimCustomer && (ev.CustomerID == "" || hasControl(ev.CustomerID)) {
				t.Fatalf("%s: accepted customer %q", op.Route, ev.CustomerID)
			}
		}
	})
}
