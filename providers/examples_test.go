package providers

// docExample is a request body from a provider's documentation, which the relay must accept
// as is (the body is the provider's own, minus its secrets).
type docExample struct {
	name, route, body string
}

// docExamples returns the examples of the provider pages in testdata/pages, plus the few the
// provider pages beside them lack (marked). Placeholders are replaced by real values:
// '[email protected]' (an e-mail address the page lost to obfuscation) by an address, and
// BannerFlex's 'your-banner-uuid' and 'your-metric-uuid-from-dashboard' by UUIDs. The
// JavaScript examples are written as the JSON they send.
func docExamples() []docExample {
	return []docExample{
		// linkrunner-capture-event.txt
		{"linkrunner request body", "linkrunner/capture-event", `{
  "event_name": "product_viewed",
  "event_data": {
    "product_id": "ABC123",
    "category": "electronics",
    "amount": 249.99,
    "currency": "USD",
    "is_featured": true
  },
  "user_id": "user_12345"
}`},
		{"linkrunner revenue sharing", "linkrunner/capture-event", `{
  "event_name": "purchase_completed",
  "event_data": {
    "product_id": "ABC123",
    "category": "electronics",
    "amount": 149.99
  },
  "user_id": "user_12345"
}`},
		{"linkrunner fetch purchase", "linkrunner/capture-event", `{"event_name":"purchase_completed",` +
			`"event_data":{"order_id":"ORD-12345","product_ids":["P-001","P-002"],"total_amount":125.99,` +
			`"currency":"USD","payment_method":"credit_card"},"user_id":"user_12345"}`},
		{"linkrunner ecommerce", "linkrunner/capture-event", `{
  "event_name": "add_to_cart",
  "event_data": {
    "content_ids": ["whshct4mwc"],
    "contents": [
      {
        "id": "whshct4mwc",
        "quantity": 2,
        "item_price": 1000
      }
    ],
    "content_type": "product",
    "currency": "INR",
    "value": 2000.0,
    "num_items": 2,
    "order_id": "order_id_1234"
  },
  "user_id": "user_12345"
}`},
		// Not a page example (none beside docs/providers.md): every documented field once.
		{"linkrunner payment", "linkrunner/capture-payment", `{"user_id":"user_12345","payment_id":"pay_001",` +
			`"amount":249.99,"type":"FIRST_PAYMENT","status":"PAYMENT_COMPLETED","event_data":{"currency":"USD"}}`},
		// ens-ads-click.txt (impression shares the body)
		{"ens click", "ens/click", `{
    "campaignId": 1,
    "placement": "header_banner",
    "location": "US",
    "device": "mobile"
  }`},
		{"ens impression", "ens/impression", `{"campaignId": 1, "placement": "header_banner", "location": "US", "device": "mobile"}`},
		// Not beside docs/providers.md: the create-event example of
		// developers.brevo.com/docs/event-endpoints.
		{"brevo v3 event", "brevo/events", `{
 "event_name": "video_played",
 "event_date": "2024-02-06T20:59:23.383Z",
 "identifiers": {
 "email_id": "jane.doe@example.com"
 },
 "contact_properties": {
 "AGE": 32,
 "GENDER": "FEMALE"
 },
 "event_properties": {
 "video_title": "Brevo — The most approachable CRM suite",
 "vide_description": "Create your free account today!",
 "duration": 142,
 "autoplayed": false,
 "upload_date": "2023-11-24T12:09:10+01:00"
 }
}`},
		// brevo-track-event.txt
		{"brevo trackEvent", "brevo/track-event", `
{
"email": "jane.doe@example.com",
"event": "cart_updated",
"eventdata": {
"data": {
"added_product": [
{
"currency": "EUR",
"name": "Wrist watch",
"type": "accessories",
"price": "50.00"
}
]
}
},
"properties": {
"additionalProp": "string"
}
}`},
		// bannerflex-banner-events.txt
		{"bannerflex impression", "bannerflex/banner-events", `{"bannerId":"3f2504e0-4f89-41d3-9a0c-0305e82c3301",` +
			`"event":"impression","campaignId":"bnrflx-your-campaign-id"}`},
		{"bannerflex click", "bannerflex/banner-events", `{"bannerId":"3F2504E0-4F89-41D3-9A0C-0305E82C3301",` +
			`"event":"click","campaignId":"bnrflx-your-campaign-id"}`},
		{"bannerflex custom", "bannerflex/banner-events", `{"bannerId":"3f2504e0-4f89-41d3-9a0c-0305e82c3301",` +
			`"event":"custom","metricId":"9b2e6f1c-8d4a-4c3e-b1f0-2a7d5e9c6b11","campaignId":"bnrflx-your-campaign-id"}`},
		{"bannerflex cta", "bannerflex/banner-events", `{"bannerId":"3f2504e0-4f89-41d3-9a0c-0305e82c3301",` +
			`"event":"custom","metricId":"bnrflx-cta"}`},
		// cardlytics-client-events.txt
		{"cardlytics impression", "cardlytics/client-events", `{
    "clientEvents": [
        {
            "clientEventId": "2e08d638-04e2-4561-b56a-ca32cfff6203",
            "clientEventType": "AdImpression",
            "clientEvent": "AdViewableImpression",
            "clientEventTimestamp": "2023-03-11T08:00:00Z",
            "clientEventMetadata": {
                "serveToken": "91e471aed3c04b81bee792f23ad4859d",
                "section": "LatestOffers",
                "channel": "OLB",
                "imageSlots": [
                    "logo"
                ],
                "categoryId": "1",
                "displayPosition": 2
            }
        }
    ]
}`},
		{"cardlytics activate", "cardlytics/client-events", `{
    "clientEvents": [
        {
            "clientEventId": "2e08d638-04e2-4561-b56a-ca32cfff6203",
            "clientEventType": "AdInteraction",
            "clientEvent": "ActivateOffer",
            "clientEventTimestamp": "2023-03-11T08:00:00Z",
            "clientEventMetadata": {
                "serveToken": "91e471aed3c04b81bee792f23ad4859d",
                "section": "LatestOffers",
                "channel": "OLB",
                "imageSlots": [
                    "logo"
                ],
                "categoryId": "1",
                "curationId": "22",
                "displayPosition": 2
            }
        }
    ]
}`},
		{"cardlytics park", "cardlytics/client-events", `{
    "clientEvents": [
        {
            "clientEventId": "2e08d638-04e2-4561-b56a-ca32cfff6203",
            "clientEventType": "AdInteraction",
            "clientEvent": "ParkOffer",
            "clientEventTimestamp": "2023-03-11T08:00:00Z",
            "clientEventMetadata": {
                "serveToken": "91e471aed3c04b81bee792f23ad4859d",
                "section": "LatestOffers",
                "channel": "OLB",
                "imageSlots": [
                    "logo"
                ],
                "categoryId": "1",
                "curationId": "22"
            }
        }
    ]
}`},
		{"cardlytics other activity", "cardlytics/client-events", `{
    "clientEvents": [
        {
            "clientEventId": "2e08d638-04e2-4561-b56a-ca32cfff6203",
            "clientEventType": "SessionAction",
            "clientEvent": "LogEnrollment",
            "clientEventTimestamp": "2023-03-11T08:00:00Z",
            "clientEventMetadata": null
        },
        {
            "clientEventId": "7a26012c-8ede-4375-a956-8af1c27f5280",
            "clientEventType": "CustomerProfileAction",
            "clientEvent": "ExpandRedemption",
            "clientEventTimestamp": "2023-03-11T08:05:00Z",
            "clientEventMetadata": null
        },
        {
            "clientEventId": "ad664ef4-5bcb-4a54-b787-efa500e723fd",
            "clientEventType": "SessionAction",
            "clientEvent": "RewardSummaryLinkClicked",
            "clientEventTimestamp": "2023-03-11T08:07:00Z",
            "clientEventMetadata": null
        }
    ]
}`},
	}
}
