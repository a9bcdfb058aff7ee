-- wrk script: GET /api/datasets/{id} for ids picked at random from a file (one id a line).
-- The file is named by the environment variable AGORA_BENCH_IDS; ACCEPT (optional) sets the
-- Accept header (default application/ld+json). Each wrk thread has its own Lua state and
-- its own seed, so threads do not walk the same sequence.
--   AGORA_BENCH_IDS=ids.txt wrk -t2 -c32 -d30s --latency -s benches/wrk_get_dataset.lua http://127.0.0.1:8080

local ids = {}
local accept = os.getenv("ACCEPT") or "application/ld+json"
local counter = 0

local function load()
  local path = os.getenv("AGORA_BENCH_IDS")
  if path == nil then error("set AGORA_BENCH_IDS to a file of dataset ids") end
  for line in io.lines(path) do
    if #line > 0 then ids[#ids + 1] = line end
  end
  if #ids == 0 then error("no ids in " .. path) end
end

function setup(thread)
  counter = counter + 1
  thread:set("seed", counter * 7919)
end

function init(args)
  load()
  math.randomseed(seed or 1)
end

function request()
  local id = ids[math.random(#ids)]
  return wrk.format("GET", "/api/datasets/" .. id, { ["Accept"] = accept })
end
