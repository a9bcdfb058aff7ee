-- wrk script: GET /api/datasets?q=... (search) with one or two words picked at random from a
-- file (one word a line) named by AGORA_BENCH_WORDS. Throughput of search under load, as a
-- complement to the single-client latency the bench driver measures.
local words = {}
local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("seed", counter * 104729)
end

function init(args)
  for line in io.lines(os.getenv("AGORA_BENCH_WORDS")) do
    if #line > 0 then words[#words + 1] = line end
  end
  math.randomseed(seed or 1)
end

local function escape(s)
  return (s:gsub("[^%w%-_%.~]", function(c) return string.format("%%%02X", string.byte(c)) end))
end

function request()
  local q = words[math.random(#words)]
  if math.random() < 0.5 then q = q .. " " .. words[math.random(#words)] end
  return wrk.format("GET", "/api/datasets?limit=20&q=" .. escape(q))
end
