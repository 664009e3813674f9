-- wrk script for the soak: a mix that makes the server render, cache and evict, not only copy tiles.
-- 60 % random tiles (all levels), 25 % random downscales/crops/rotations in assorted formats, 15 % info.json.
-- Usage: wrk -s bench/soak.lua http://HOST:PORT -- IDENTIFIER WIDTH HEIGHT
local identifier, width, height
local formats = { "jpg", "png", "webp" }

function init(args)
  identifier = args[1]
  width = tonumber(args[2])
  height = tonumber(args[3])
  math.randomseed(os.time() + math.floor(os.clock() * 1e6))
end

local function tile()
  local levels = 0
  while math.max(width, height) / 2 ^ levels > 256 do levels = levels + 1 end
  local s = 2 ^ math.random(0, levels)
  local span = 256 * s
  local x = math.random(0, math.ceil(width / span) - 1) * span
  local y = math.random(0, math.ceil(height / span) - 1) * span
  local w, h = math.min(span, width - x), math.min(span, height - y)
  return string.format("%d,%d,%d,%d/%d,%d/0/default.jpg", x, y, w, h, math.ceil(w / s), math.ceil(h / s))
end

local function render()
  local w = math.random(200, 4000)
  local h = math.random(200, 4000)
  local x = math.random(0, width - w)
  local y = math.random(0, height - h)
  local rotation = ({ "0", "90", "!0", "22.5" })[math.random(1, 4)]
  -- never wider than the region: a valid request, no upscaling (that would be a correct 400)
  return string.format("%d,%d,%d,%d/%d,/%s/default.%s", x, y, w, h, math.random(64, math.min(512, w)), rotation,
    formats[math.random(1, #formats)])
end

function request()
  local r = math.random()
  local tail
  if r < 0.60 then tail = tile() elseif r < 0.85 then tail = render() else tail = "info.json" end
  return wrk.format("GET", "/iiif/3/" .. identifier .. "/" .. tail)
end
