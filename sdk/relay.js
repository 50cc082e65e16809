/*
 * relay.js: the event relay's browser SDK (docs/api.md#browser-sdk). No dependencies.
 *   relay.init({key, endpoint, identity});  relay.track("ens/click", {...});
 * Events are batched into POST {endpoint}/v1/batch with a client id each, so a resend
 * (retry, or a beacon racing a fetch) is queued once by the relay. No entry point throws.
 */
(function (w) {
  "use strict";
  var q = [], // queued events: {s: JSON of the batch item, n: its UTF-8 bytes, i: id, b: beaconed}
    o, // options (init)
    busy, // a fetch is in flight
    timer = 0,
    tries = 0, // failed attempts of the batch at the head of the queue
    until = 0, // no fetch before this time (ms): backoff
    lim = 0, // batch size cap learnt from the relay (0: none)
    st = { sent: 0, dropped: 0, rejected: 0, failed: 0 },
    // A batch's body: two fit in the browser's 64 KB quota of keepalive and beacon bytes in
    // flight. One event may be larger, up to maxEvent (server.max_body_bytes is 65536).
    maxBytes = 30000,
    maxEvent = 65000,
    ID = /^[\w.:-]{1,128}$/,
    defaults = { batchSize: 20, flushInterval: 1000, maxQueue: 1000, maxRetries: 10, retryBase: 1000, retryMax: 60000 };

  // safe wraps an entry point: the page never sees an exception from the SDK.
  function safe(f) {
    return function (a, b, c) {
      try {
        return f(a, b, c);
      } catch (e) {}
    };
  }

  function utf8(s) {
    try {
      return new TextEncoder().encode(s).length;
    } catch (e) {
      return s.length * 3;
    }
  }

  function newID() {
    var c = w.crypto, a, s = "", i;
    if (c && c.randomUUID) return c.randomUUID();
    a = new Uint8Array(16);
    if (c && c.getRandomValues) c.getRandomValues(a);
    else for (i = 0; i < 16; i++) a[i] = Math.random() * 256;
    for (i = 0; i < 16; i++) s += (a[i] + 256).toString(16).slice(1);
    return s;
  }

  function url() {
    var e = encodeURIComponent, u = o.endpoint.replace(/\/+$/, "") + "/v1/batch?key=" + e(o.key),
      id = typeof o.identity == "function" ? o.identity() : o.identity;
    return id ? u + "&identity=" + e(id) : u;
  }

  // take returns the next batch of list from index i: at most batchSize events and maxBytes.
  function take(list, i) {
    var b = [], n = 13, max = lim || o.batchSize;
    for (; i < list.length && b.length < max; i++) {
      if (b.length && n + list[i].n + 1 > maxBytes) break;
      b.push(list[i]);
      n += list[i].n + 1;
    }
    return b;
  }

  function body(b) {
    return '{"events":[' + b.map(function (e) { return e.s; }).join(",") + "]}";
  }

  // drop removes b's events from the queue, counting only those still there: one the
  // queue's overflow dropped while b was in flight is counted once, as dropped.
  function drop(b, k) {
    var n = q.length;
    q = q.filter(function (e) { return b.indexOf(e) < 0; });
    st[k] += n - q.length;
  }

  function arm(ms) {
    if (!timer) timer = setTimeout(function () { timer = 0; run(); }, ms);
  }

  var run = safe(function () {
    if (!o || busy || !q.length) return;
    var now = Date.now(), b, p;
    if (now < until) return arm(until - now);
    b = take(q, 0);
    p = fetch(url(), { method: "POST", body: body(b), keepalive: true, credentials: "omit" });
    busy = 1; // only once fetch did not throw: a throw must not leave the SDK stuck
    function done() {
      busy = 0;
      if (q.length) arm(Math.max(until - Date.now(), 0));
    }
    function retry(after) {
      st.failed++;
      if (++tries > o.maxRetries) {
        tries = 0;
        return drop(b, "dropped");
      }
      // Full jitter, but never sooner than the relay's Retry-After.
      until = Date.now() + Math.max(Math.random() * Math.min(o.retryMax, o.retryBase * Math.pow(2, tries - 1)), (after || 0) * 1000);
    }
    p.then(function (r) {
      var s = r.status;
      if (s == 202) {
        tries = 0;
        return drop(b, "sent");
      }
      if (s == 408 || s == 429 || s > 499) return retry(+r.headers.get("Retry-After"));
      return r.json().then(null, function () { return {}; }).then(function (j) {
        var f = (j && j.error && j.error.field) || "", m = /^events\[(\d+)\]/.exec(f);
        tries = 0;
        // A batch is all-or-nothing: refuse the bad item, resend the others.
        if (m && b[m[1]]) return drop([b[m[1]]], "rejected");
        // More items than server.max_batch_events: smaller batches from now on.
        if (f == "events" && b.length > 1) return (lim = b.length >> 1);
        drop(b, "rejected");
      });
    }, function () { retry(); }).then(done, done);
  });

  // hide sends what is queued by sendBeacon: the page is being hidden or unloaded, and a
  // fetch's reply may never be read. Events stay queued (a page that comes back resends
  // them; their ids keep that from duplicating), flagged so a second hide skips them, but
  // only once the browser took the beacon: a refused one (quota) falls back to a keepalive
  // fetch that may fail too, so a later hide (pagehide after visibilitychange) tries again.
  var hide = safe(function () {
    if (!o) return;
    var n = w.navigator, u = url(), list = q.filter(function (e) { return !e.b; }), i = 0, b, s;
    while (i < list.length) {
      b = take(list, i);
      s = body(b);
      if (n.sendBeacon && n.sendBeacon(u, s)) {
        b.forEach(function (e) { e.b = 1; });
      } else {
        try {
          fetch(u, { method: "POST", body: s, keepalive: true, credentials: "omit" }).then(null, function () {});
        } catch (e) {
          return;
        }
      }
      i += b.length;
    }
  });

  w.relay = {
    init: safe(function (opts) {
      o = o || {};
      for (var k in defaults) if (o[k] == null) o[k] = defaults[k];
      for (k in opts) o[k] = opts[k];
      if (!o.key || !o.endpoint) return (o = null);
      if (q.length) arm(0);
    }),
    track: safe(function (route, data, opts) {
      var id = (opts && opts.id) || newID(), max = (o && o.maxQueue) || defaults.maxQueue, s;
      route = String(route).replace(/^\/?(v1\/)?/, "");
      try {
        s = JSON.stringify({ route: route, body: data, id: id });
      } catch (e) {} // a cycle, a BigInt: refused like any bad body
      if (!s || !ID.test(id) || !data || typeof data != "object" || utf8(s) > maxEvent - 13) {
        st.rejected++;
        return "";
      }
      while (q.length >= max) drop([q[0]], "dropped");
      q.push({ s: s, n: utf8(s), i: id });
      if (o) q.length >= (lim || o.batchSize) ? run() : arm(o.flushInterval);
      return id;
    }),
    flush: safe(function () {
      clearTimeout(timer);
      timer = 0;
      run();
    }),
    stats: safe(function () {
      return { queued: q.length, sent: st.sent, dropped: st.dropped, rejected: st.rejected, failed: st.failed };
    })
  };

  try {
    w.addEventListener("pagehide", hide);
    w.document.addEventListener("visibilitychange", safe(function () {
      if (w.document.visibilityState == "hidden") return hide();
      q.forEach(function (e) { e.b = 0; });
    }));
  } catch (e) {}
})(window);
