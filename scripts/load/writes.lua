-- The cooperative's managers recording the day's work: EPCIS field events (irrigating,
-- fertilizing) and harvests, captured one event a request. Templates come one a line from the
-- file named by the first argument, with @TIME@ (an RFC 3339 time) and @N@ (a number of this
-- request's own, for lot codes) to fill: each event is distinct, so none is a duplicate.
-- Argument 2: the manager's token; 3: events a second (all connections of the thread).
dofile(os.getenv("DV_LOAD_DIR") .. "/_report.lua")

local threads = {}

function setup(thread)
  thread:set("number", #threads)
  threads[#threads + 1] = thread
end

local templates, token, sent, start

function init(args)
  templates = {}
  for line in io.lines(args[1]) do
    if #line > 0 then templates[#templates + 1] = line end
  end
  token = args[2]
  delay = paced(tonumber(args[3]))
  sent = 0
  start = os.time()
end

function request()
  sent = sent + 1
  -- A minute apart, going back from now: never in the future, never the same time twice.
  local when = os.date("!%Y-%m-%dT%H:%M:%S.000Z", start - 60 * (number * 100000 + sent))
  local n = string.format("%d%06d", number, sent)
  local body = templates[sent % #templates + 1]:gsub("@TIME@", when):gsub("@N@", n)
  return post_json("/api/v1/events", token, body)
end

done = report("write")
