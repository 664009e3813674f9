-- wrk script: random valid 256-px tiles across every zoom level, as OpenSeadragon asks for them
-- (Image API 3.0 URLs: region x,y,w,h at scale s, size w,h of the scaled region).
-- Usage: wrk -s bench/random_tiles.lua http://HOST:PORT -- IDENTIFIER WIDTH HEIGHT [TILE] [PREFIX]
local identifier, width, height, tile, prefix

function init(args)
  identifier = args[1] or "trong-dong-ngoc-lu.tif"
  width = tonumber(args[2] or 10240)
  height = tonumber(args[3] or 8192)
  tile = tonumber(args[4] or 256)
  prefix = args[5] or "/iiif/3/"
  math.randomseed(os.time() + math.floor(os.clock() * 1e6))
end

function request()
  local levels = 0
  while math.max(width, height) / 2 ^ levels > tile do levels = levels + 1 end
  local s = 2 ^ math.random(0, levels)
  local span = tile * s
  local col = math.random(0, math.ceil(width / span) - 1)
  local row = math.random(0, math.ceil(height / span) - 1)
  local x, y = col * span, row * span
  local w, h = math.min(span, width - x), math.min(span, height - y)
  local sw, sh = math.ceil(w / s), math.ceil(h / s)
  return wrk.format("GET", string.format("%s%s/%d,%d,%d,%d/%d,%d/0/default.jpg", prefix, identifier, x, y, w, h, sw, sh))
end
