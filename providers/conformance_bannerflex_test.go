package providers

import (
	"strings"
	"testing"
	"time"

	"github.com/eventrelay/relay/delivery"
)

// TestBannerFlexBodySaysNotOK: BannerFlex documents {"ok": true} as the reply of a recorded
// event, so a 2xx whose body says "ok": false is not delivered. Its page documents no such
// reply and so no reading that tells a refused event from a passing fault: the verdict is
// retryable (honouring Retry-After), with the 2xx status and the body's excerpt. Bodies that
// do not say "ok": false stay delivered, and error statuses keep their class.
func TestBannerFlexBodySaysNotOK(t *testing.T) {
	const d, r, p = "delivered", "retryable", "permanent"
	for _, tc := range []struct {
		name   string
		reply  cfReply
		want   string
		status int
		delay  time.Duration
	}{
		{"200 ok false", cfReply{status: 200, body: `{"ok":false,"error":"banner not found"}`}, r, 200, 0},
		{"200 ok false, spaces", cfReply{status: 200, body: "{ \"ok\": false, \"error\": \"metric not linked\" }\n"}, r, 200, 0},
		{"201 ok false", cfReply{status: 201, body: `{"error":"try later","ok":false}`}, r, 201, 0},
		{"200 ok false, Retry-After", cfReply{status: 200, body: `{"ok":false}`, header: map[string]string{"Retry-After": "5"}}, r, 200, 5 * time.Second},
		{"200 ok true", cfReply{status: 200, body: `{"ok":true}`}, d, 0, 0},
		{"200 ok true, false elsewhere", cfReply{status: 200, body: `{"ok":true,"duplicate":false}`}, d, 0, 0},
		{"200 empty", cfReply{status: 200}, d, 0, 0},
		{"200 not JSON", cfReply{status: 200, body: `ok: false`}, d, 0, 0},
		{"200 ok string", cfReply{status: 200, body: `{"ok":"false"}`}, d, 0, 0},
		{"200 nested ok false", cfReply{status: 200, body: `{"ok":true,"result":{"ok":false}}`}, d, 0, 0},
		{"200 array", cfReply{status: 200, body: `[{"ok":false}]`}, d, 0, 0},
		{"404 ok false", cfReply{status: 404, body: `{"ok":false,"error":"banner not found"}`}, p, 404, 0},
		{"503 ok false", cfReply{status: 503, body: `{"ok":false,"error":"maintenance"}`}, r, 503, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newCFFake(t, nil, nil, tc.reply)
			a := newBannerFlexAdapter(&BannerFlexConfig{Delivery: cfDelivery(f.URL(), cfTimeout)})
			err := cfDeliver(t, a, cfMsg("evt-bf", "bannerflex/banner-events", cfBannerFlex)())
			if n := len(f.got()); n != 1 {
				t.Fatalf("%d requests, want 1", n)
			}
			got := map[bool]string{true: p, false: r}[delivery.IsPermanent(err)]
			if err == nil {
				got = d
			}
			if got != tc.want || delivery.StatusOf(err) != tc.status {
				t.Fatalf("%s (status %d, %v), want %s, status %d", got, delivery.StatusOf(err), err, tc.want, tc.status)
			}
			if tc.want == r && tc.status < 300 && !strings.Contains(err.Error(), `"ok": false`) {
				t.Errorf("error %q does not say the body refused the event", err)
			}
			if dl, ok := delivery.RetryDelay(err); dl != tc.delay || ok != (tc.delay > 0) {
				t.Errorf("RetryDelay = %v, %v; want %v", dl, ok, tc.delay)
			}
		})
	}
}
