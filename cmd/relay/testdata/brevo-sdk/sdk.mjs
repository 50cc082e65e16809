// Drives Brevo's official Node SDK (pinned in package.json) against the relay's Brevo
// mirror, for cmd/relay/e2e_brevo_sdk_test.go. The only change from using Brevo directly
// is baseUrl (relay + path_prefix + /brevo/v3) and an apiKey that is a relay client token.
// Usage: node sdk.mjs <track|retry>; env RELAY_BASE_URL, RELAY_TOKEN. Prints one JSON
// object per step on stdout; exits non-zero on an unexpected outcome.
import { BrevoClient, BrevoError } from "@getbrevo/brevo";

const baseUrl = process.env.RELAY_BASE_URL;
const client = new BrevoClient({ apiKey: process.env.RELAY_TOKEN, baseUrl });
const who = { email_id: "jane@example.com" };
const out = (o) => console.log(JSON.stringify(o));

async function track() {
  const one = await client.event.createEvent({
    event_name: "sdk_single",
    identifiers: who,
    event_properties: { cart_id: "c-1" },
  }).withRawResponse();
  out({ step: "createEvent", status: one.rawResponse.status, data: one.data ?? null });

  const batch = await client.event.createBatchEvents({
    events: [
      { event_name: "sdk_batch_a", identifiers: who },
      { event_name: "sdk_batch_b", identifiers: { ext_id: "u-42" }, contact_properties: { PLAN: "pro" } },
    ],
  }).withRawResponse();
  out({ step: "createBatchEvents", status: batch.rawResponse.status, data: batch.data });

  const stranger = new BrevoClient({ apiKey: "not-a-relay-token-000000", baseUrl, maxRetries: 0 });
  try {
    await stranger.event.createEvent({ event_name: "sdk_stranger", identifiers: who });
    out({ step: "unknownKey", status: 0 });
  } catch (e) {
    if (!(e instanceof BrevoError)) throw e;
    out({ step: "unknownKey", status: e.statusCode, body: e.body, name: e.constructor.name });
  }
}

// retry sends one event while the relay answers 503: the SDK itself must retry (it honours
// Retry-After) until the relay accepts it. The Idempotency-Key makes the retries safe.
async function retry() {
  const res = await client.event.createEvent(
    { event_name: "sdk_retried", identifiers: who },
    { maxRetries: 10, headers: { "Idempotency-Key": "sdk-retry-0001" } },
  ).withRawResponse();
  out({ step: "retried", status: res.rawResponse.status });
}

const step = { track, retry }[process.argv[2]];
if (!step) {
  console.error("usage: node sdk.mjs <track|retry>");
  process.exit(2);
}
await step();
