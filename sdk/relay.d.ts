// TypeScript declarations of the event relay's browser SDK, served as /v1/relay.js
// (docs/api.md, "Browser SDK"). The script defines the global `relay`.

declare namespace relay {
  /** Options of init. `key` and `endpoint` are required; the rest have defaults. */
  interface Options {
    /** The site's public key (`sites[].key`), sent as `?key=`. */
    key: string;
    /** The relay's base URL, with `server.path_prefix` if any: `https://t.example.com`. */
    endpoint: string;
    /**
     * Identity token (HS256 JWT minted by the site's backend), sent as `?identity=`; or a
     * function returning the current one, called at each send.
     */
    identity?: string | (() => string | null | undefined) | null;
    /** Events per request, at most the relay's `server.max_batch_events`. Default 20. */
    batchSize?: number;
    /** Milliseconds an event may wait for others before a request is sent. Default 1000. */
    flushInterval?: number;
    /** Events kept while the relay cannot be reached; the oldest are dropped beyond. Default 1000. */
    maxQueue?: number;
    /** Failed attempts of a batch before its events are dropped. Default 10. */
    maxRetries?: number;
    /** Backoff: the first retry waits up to this many milliseconds, doubling. Default 1000. */
    retryBase?: number;
    /** Backoff cap in milliseconds (a longer `Retry-After` still wins). Default 60000. */
    retryMax?: number;
  }

  /** Options of one tracked event. */
  interface TrackOptions {
    /** The event id, 1–128 of `A-Z a-z 0-9 . _ : -`; default a random UUID. */
    id?: string;
  }

  /** Counters since the page loaded. */
  interface Stats {
    /** Events waiting to be sent (or whose last send is unconfirmed). */
    queued: number;
    /** Events the relay accepted (202). */
    sent: number;
    /** Events dropped: the queue was full, or their batch failed maxRetries times. */
    dropped: number;
    /** Events the SDK or the relay refused (invalid id, body or route; 4xx). */
    rejected: number;
    /** Failed attempts (network error, 408, 429, 5xx). */
    failed: number;
  }

  /** Routes of docs/api.md; any other string is sent as is and refused by the relay. */
  type Route =
    | "linkrunner/capture-event"
    | "linkrunner/capture-payment"
    | "ens/impression"
    | "ens/click"
    | "brevo/events"
    | "brevo/track-event"
    | "bannerflex/banner-events"
    | "cardlytics/client-events"
    | (string & {});

  /** Configures the SDK; call again to change options (e.g. the identity). */
  function init(options: Options): void;
  /**
   * Queues one event: `route` without `/v1/`, `body` the route's JSON body. Returns the
   * event id, or "" when the event is refused at once (counted in `rejected`).
   */
  function track(route: Route, body: object, options?: TrackOptions): string;
  /** Sends what is queued now, unless a retry is waiting for its backoff. */
  function flush(): void;
  /** The SDK's counters. */
  function stats(): Stats;
}

interface Window {
  relay: typeof relay;
}
