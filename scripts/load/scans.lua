-- Consumers scanning bottle labels: the consumer page (HTML) most of the time, the GS1 linkset
-- (JSON) when an app asks for it. Paths come one a line from the file named by the first
-- argument. No pause between requests: this kind measures how many scans the server serves.
dofile(os.getenv("DV_LOAD_DIR") .. "/_report.lua")

local paths = {}
local counter = 0

function init(args)
  for line in io.lines(args[1]) do
    if #line > 0 then paths[#paths + 1] = line end
  end
  counter = math.random(1, #paths)
end

function request()
  counter = counter + 1
  local path = paths[counter % #paths + 1]
  if counter % 4 == 0 then
    return wrk.format("GET", path, {["Accept"] = "application/linkset+json"})
  end
  local language = (counter % 3 == 0) and "en-GB,en;q=0.8" or "zh-CN,zh;q=0.9"
  return wrk.format("GET", path, {["Accept"] = "text/html", ["Accept-Language"] = language})
end

done = report("scan")
