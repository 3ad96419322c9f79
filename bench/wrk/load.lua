-- wrk script for the gateway benchmark.
--   env BENCH_KEY    API key sent in X-Api-Key (empty: no header, e.g. direct/nginx)
--   env BENCH_PATH   request path (default /api/customers?page_size=20)
--   env BENCH_ACCEPT Accept header (default application/json; the gateway narrows
--                    Accept to a route's declared types: a CSV export needs text/csv)
-- done() prints one JSON line prefixed "BENCH_JSON " with throughput, errors and
-- latency percentiles in microseconds (p50, p90, p99, p99.9 and a CDF grid).

local key = os.getenv("BENCH_KEY") or ""
local path = os.getenv("BENCH_PATH") or "/api/customers?page_size=20"
local accept = os.getenv("BENCH_ACCEPT") or "application/json"

function init(args)
  wrk.method = "GET"
  wrk.path = path
  wrk.headers["Accept"] = accept
  if key ~= "" then
    wrk.headers["X-Api-Key"] = key
  end
end

function request()
  return wrk.format(nil, path)
end

local grid = {1, 5, 10, 20, 30, 40, 50, 60, 70, 75, 80, 85, 90, 95, 97, 98, 99, 99.5, 99.9, 99.99}

function done(summary, latency, requests)
  local cdf = {}
  for _, p in ipairs(grid) do
    cdf[#cdf + 1] = string.format('["%s", %d]', tostring(p), latency:percentile(p))
  end
  cdf[#cdf + 1] = string.format('["100", %d]', latency.max)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests": %d, "duration_us": %d, "bytes": %d, ' ..
    '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, ' ..
    '"latency_us": {"mean": %.1f, "stdev": %.1f, "max": %d, "p50": %d, "p90": %d, "p99": %d, "p99.9": %d}, ' ..
    '"cdf_us": [%s]}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.mean, latency.stdev, latency.max,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9),
    table.concat(cdf, ", ")))
end
