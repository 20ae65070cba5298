-- Shared by the profiles (each `dofile`s this file): a JSON POST with a bearer token,
-- `paced(rate)`, a `delay` hook that sends a wrk thread's requests at `rate` a second in all
-- (each in the next free slot: with enough connections, slow answers do not lower the rate),
-- and `report(kind)`, the `done` hook that writes one JSON line with this kind's figures.

local ffi = require("ffi")
ffi.cdef[[
typedef struct { long tv_sec; long tv_nsec; } dv_timespec;
int clock_gettime(int clk_id, dv_timespec *tp);
]]
local clock = ffi.new("dv_timespec")

local function now_ms()
  ffi.C.clock_gettime(1, clock)  -- CLOCK_MONOTONIC
  return tonumber(clock.tv_sec) * 1000 + tonumber(clock.tv_nsec) / 1e6
end

function paced(rate)
  local interval = 1000 / rate
  local next_at = 0
  return function()
    local now = now_ms()
    if next_at < now then next_at = now end
    local wait = next_at - now
    next_at = next_at + interval
    return wait
  end
end

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
