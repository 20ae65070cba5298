-- Shared by the profiles (each `dofile`s this file): a JSON POST with a bearer token, and
-- `report(kind)`, the `done` hook that writes one JSON line with this kind's figures.

function post_json(path, token, body)
  return wrk.format("POST", path, {
    ["Authorization"] = "Bearer " .. token,
    ["Content-Type"] = "application/json",
  }, body)
end

function report(kind)
  return function(summary, latency, requests)
    local errors = summary.errors
    io.write(string.format(
      '{"kind":"%s","requests":%d,"seconds":%.3f,"connect_errors":%d,"read_errors":%d,' ..
      '"write_errors":%d,"timeouts":%d,"http_errors":%d,"p50_ms":%.2f,"p90_ms":%.2f,' ..
      '"p99_ms":%.2f,"max_ms":%.2f}\n',
      kind, summary.requests, summary.duration / 1e6, errors.connect, errors.read,
      errors.write, errors.timeout, errors.status, latency:percentile(50) / 1000,
      latency:percentile(90) / 1000, latency:percentile(99) / 1000, latency.max / 1000))
  end
end
