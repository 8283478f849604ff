-- wrk script: POSTs Studio's three real-shaped fixtures in turn, each with a fresh UUID v4
-- id, exactly as Studio's fetch sends them. Prints a JSON summary line at the end.
local fixtures_dir = os.getenv("FIXTURES_DIR") or "tests/fixtures"
local names = {"snapshot-with-ground-truth", "snapshot-mono-no-ground-truth", "snapshot-with-corrections-and-nan"}
local parts = {}

for i, name in ipairs(names) do
  local file = assert(io.open(fixtures_dir .. "/" .. name .. ".json", "rb"))
  local body = file:read("*a")
  file:close()
  local s, e = body:find('"id"%s*:%s*"[^"]+"')
  parts[i] = {body:sub(1, s - 1), body:sub(e + 1)}
end

local counter = 0
local headers = {
  ["Content-Type"] = "application/json",
  ["X-Prime-Fabric-Channel"] = "stem-separation",
  ["Origin"] = "http://localhost:5173",
}

function setup(thread)
  thread:set("seed", math.random(1, 2^30))
end

function init(args)
  math.randomseed(seed + os.time())
end

local function uuid4()
  return string.format("%08x-%04x-4%03x-%04x-%06x%06x",
    math.random(0, 0x7fffffff), math.random(0, 0xffff), math.random(0, 0xfff),
    0x8000 + math.random(0, 0x3fff), math.random(0, 0xffffff), math.random(0, 0xffffff))
end

function request()
  counter = counter + 1
  local p = parts[(counter % #parts) + 1]
  return wrk.format("POST", "/stem-separation", headers, p[1] .. '"id": "' .. uuid4() .. '"' .. p[2])
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "bytes": %d, "non2xx": %d, "connect_errors": %d, "read_errors": %d, ' ..
    '"write_errors": %d, "timeouts": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d, "max_us": %d, "mean_us": %.1f}\n',
    summary.requests, summary.duration, summary.bytes, e.status, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean))
end
