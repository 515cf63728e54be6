-- wrk script driving one benchmark target; bench/load.py passes the arguments after `--`:
--
--   fixed    <path> [<header-name> <header-value>]   the same request every time
--   distinct <pattern> <first> <count> <threads>     string.format(pattern, n) for
--                                                    n = first .. first+count-1, each once
--   family <pattern> <first> <count> <threads> <spec>...   request k is
--                                                    string.format(pattern, spec[k % S], first + k // S)
--                                                    (every name in each spec, one name after the other)
--
-- In distinct mode wrk's threads interleave the indices (thread i takes i, i+T, i+2T...), so
-- no two requests of a run share a URL until `count` is exhausted; past that the indices wrap
-- and done() reports how many requests reused a URL. That count is approximate by a few: wrk
-- calls request() once on its first thread to verify the script (that name is never sent),
-- and requests still in flight when time is up were generated but are not in the summary.
--
-- done() prints one line "BENCH_JSON {...}" with the counts and latency percentiles in µs.

local threads = {}

function setup(thread)
  thread:set("slot", #threads)
  table.insert(threads, thread)
end

local mode, fixed_request
local pattern, first, count, next_offset, stride
local specs = nil
wrapped = 0

function init(args)
  mode = args[1]
  if mode == "fixed" then
    if args[3] then
      wrk.headers[args[3]] = args[4]
    end
    fixed_request = wrk.format("GET", args[2])
  elseif mode == "distinct" or mode == "family" then
    pattern, first, count = args[2], tonumber(args[3]), tonumber(args[4])
    next_offset, stride = slot, tonumber(args[5])
    if mode == "family" then
      specs = {}
      for i = 6, #args do
        table.insert(specs, args[i])
      end
      count = count * #specs
    end
  else
    error("wrk_target.lua: unknown mode " .. tostring(mode))
  end
end

function request()
  if fixed_request then
    return fixed_request
  end
  local offset = next_offset
  next_offset = next_offset + stride
  if offset >= count then
    wrapped = wrapped + 1
    offset = offset % count
  end
  if specs then
    local n = #specs
    return wrk.format("GET", string.format(pattern, specs[offset % n + 1], first + math.floor(offset / n)))
  end
  return wrk.format("GET", string.format(pattern, first + offset))
end

function done(summary, latency, requests)
  local reused = 0
  for _, thread in ipairs(threads) do
    reused = reused + (thread:get("wrapped") or 0)
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests": %d, "duration_us": %d, "bytes": %d, '
      .. '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, '
      .. '"latency_us": {"p50": %d, "p90": %d, "p99": %d, "mean": %.1f, "max": %d}, '
      .. '"reused_urls": %d}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.mean, latency.max, reused))
end
