-- wrk script of the load bench (bench/README.md, row w): sends the Go generator's request
-- mix (bench/cmd/loadbench/mix.go) from wrk, a C generator that costs far less CPU per
-- request than the Go one.
--
--   wrk -t1 -c64 -d4s --latency -s wrk.lua http://127.0.0.1:PORT -- wrk-mix.lua
--
-- wrk-mix.lua is written by loadbench (it keeps it in the run's temp dir with -keep): a
-- Lua table of the requests of the weighted schedule in order, each with its method,
-- path (with query), headers (Content-Type, Origin, X-Relay-Key, User-Agent or
-- Authorization, exactly as the Go generator sets them) and body. Each wrk thread
-- formats them once in init and walks them round-robin from the start (the mix's
-- proportions; the Go generator walks the same schedule from a per-connection offset).
-- wrk adds Host and Content-Length.
--
-- done prints one line that loadbench parses; with --latency wrk also prints its latency
-- distribution. wrk is closed-loop: a connection sends its next request when the reply
-- came back, so its latencies are at saturation and omit the waits of requests it did
-- not send while the server was slow (coordinated omission).

local reqs, n, i = {}, 0, 0

function init(args)
  local mix = dofile(args[1])
  for k, r in ipairs(mix) do
    reqs[k] = wrk.format(r.method, r.path, r.headers, r.body)
  end
  n = #reqs
end

function request()
  i = i % n + 1
  return reqs[i]
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "loadbench-wrk requests=%d duration_us=%d connect=%d read=%d write=%d status=%d timeout=%d p50_us=%d p99_us=%d max_us=%d\n",
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99), latency.max))
end
