-- Field sensors posting batches of readings, one device per wrk thread (tokens one a line in
-- the file named by the first argument). Each reading has a time of its own (1 ms apart from
-- the second argument, the epoch milliseconds of the devices' installation, per thread a
-- stretch of its own), so every one is new. Arguments 3 and 4: readings per batch, batches a
-- second per device.
dofile(os.getenv("DV_LOAD_DIR") .. "/_report.lua")

local threads = {}
local counter = 1

function setup(thread)
  thread:set("number", #threads)
  threads[#threads + 1] = thread
end

local token, base_ms, per_batch, sent

function init(args)
  local tokens = {}
  for line in io.lines(args[1]) do
    if #line > 0 then tokens[#tokens + 1] = line end
  end
  token = tokens[number % #tokens + 1]
  base_ms = tonumber(args[2]) + number * 1000000
  per_batch = tonumber(args[3])
  delay = paced(tonumber(args[4]))
  sent = 0
end

function request()
  local readings = {}
  for i = 1, per_batch do
    local metric = (i % 2 == 0) and "soil_temperature" or "soil_moisture"
    local value = (i % 2 == 0) and (18 + (sent % 70) / 10) or (25 + (sent % 100) / 10)
    readings[i] = string.format('{"metric":"%s","time":%.0f,"value":%.1f}',
      metric, base_ms + sent, value)
    sent = sent + 1
  end
  local body = '{"readings":[' .. table.concat(readings, ",") .. ']}'
  return post_json("/api/v1/telemetry", token, body)
end

done = report("ingest")
