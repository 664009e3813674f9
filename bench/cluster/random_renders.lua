-- wrk script: random rendered views (a region of random place and size scaled to a random width), as
-- zooming viewers and thumbnails ask for them: each costs the node a decode, resize and JPEG encode, and
-- nearly every one is new, so the load measures the nodes' CPU rather than caches, HAProxy or wrk.
--
-- Usage: wrk -s bench/cluster/random_renders.lua http://HOST:PORT -- IDENTIFIER WIDTH HEIGHT [SEED]
local identifier, width, height
local thread_count = 0

function setup(thread)
  thread:set("thread_index", thread_count)
  thread_count = thread_count + 1
end

function init(args)
  identifier = args[1]
  width = tonumber(args[2])
  height = tonumber(args[3])
  local seed = tonumber(args[4] or (os.time() + math.floor(os.clock() * 1e6)))
  math.randomseed(seed + (thread_index or 0) * 7919)
end

function request()
  local w = math.random(512, 2048)
  local h = math.random(512, 2048)
  local x = math.random(0, width - w)
  local y = math.random(0, height - h)
  local size = math.random(200, 500)
  return wrk.format("GET", string.format("/iiif/3/%s/%d,%d,%d,%d/%d,/0/default.jpg", identifier, x, y, w, h, size))
end
