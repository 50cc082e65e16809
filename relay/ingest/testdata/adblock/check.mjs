// Evaluates request URLs against real filter lists with Ghostery's ad-blocker engine, offline.
// Input on stdin: {"lists": ["/path/easylist.txt", ...], "requests": [{"url", "sourceUrl", "type"}]}.
// Output on stdout: one result per request, in order: {"url", "type", "blocked", "filter", "exception"}.
import { readFileSync } from 'node:fs';
import { FiltersEngine, Request } from '@ghostery/adblocker';

const input = JSON.parse(readFileSync(0, 'utf8'));
const text = input.lists.map((p) => readFileSync(p, 'utf8')).join('\n');
const engine = FiltersEngine.parse(text, { loadNetworkFilters: true, loadCosmeticFilters: false });
const results = input.requests.map((r) => {
  const m = engine.match(Request.fromRawDetails({ url: r.url, sourceUrl: r.sourceUrl, type: r.type }));
  return {
    url: r.url,
    type: r.type,
    blocked: Boolean(m.match),
    filter: m.filter ? m.filter.toString() : '',
    exception: m.exception ? m.exception.toString() : '',
  };
});
process.stdout.write(JSON.stringify({ filters: engine.getFilters().networkFilters.length, results }));
