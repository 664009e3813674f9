-- wrk script: random valid 256-px tiles across every zoom level, as OpenSeadragon asks for them
-- (region x,y,w,h at scale s, size w,h of the scaled region; edge tiles are clipped and rounded up as IIIF does).
-- The URL form is understood by Image API 3.0 servers (ours, iipsrv 1.3) and by iipsrv 1.1 (API 2.0, which
-- accepts "w,h" sizes), so only the prefix differs: "/iiif/3/" for ours, "/iiif/" for iipsrv.
--
-- Usage: wrk -s bench/random_tiles.lua http://HOST:PORT -- IDENTIFIER WIDTH HEIGHT [TILE] [PREFIX] [SEED]
--
-- SEED makes the tile sequence reproducible, so two servers can be sent the same requests; each wrk thread
-- gets SEED + its index (threads would otherwise draw identical sequences). Without SEED: seeded from the clock.
local identifier, width, height, tile, prefix, levels
local thread_count = 0

function setup(thread)
  thread:set("thread_index", thread_count)
  thread_count = thread_count + 1
end

function init(args)
  identifier = args[1] or "trong-dong-ngoc-lu.tif"
  width = tonumber(args[2] or 10240)
  height = tonumber(args[3] or 8192)
  tile = tonumber(args[4] or 256)
  prefix = args[5] or "/iiif/3/"
  local seed = tonumber(args[6] or (os.time() + math.floor(os.clock() * 1e6)))
  math.randomseed(seed + (thread_index or 0) * 7919)
  levels = 0
  while math.max(width, height) / 2 ^ levels > tile do levels = levels + 1 end
end

function request()
  local s = 2 ^ math.random(0, levels)
  local span = tile * s
  local col = math.random(0, math.ceil(width / span) - 1)
  local row = math.random(0, math.ceil(height / span) - 1)
  local x, y = col * span, row * span
  local w, h = math.min(span, width - x), math.min(span, height - y)
  local sw, sh = math.ceil(w / s), math.ceil(h / s)
  return wrk.format("GET", string.format("%s%s/%d,%d,%d,%d/%d,%d/0/default.jpg", prefix, identifier, x, y, w, h, sw, sh))
end
