-- wrk script: every wrk thread holds one connection and plays one subscriber
-- at a time, each hop sent after the previous reply (run with -t N -c N).
-- args: pause_ms nonce file [first] (the journey's hops as a dialect sends them,
-- one a line: path TAB content type TAB body with SIDXSID and MSISDNXMSISDN for
-- the session and the caller: bench/journeys.py; first: the thread's first
-- subscriber of its 156, so a warm-up leaves the measured run fresh ones)
local threads, counter = {}, 0

function setup(thread)
  thread:set("tid", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

function init(args)
  pause = tonumber(args[1] or "0")
  nonce = args[2] or "x"
  hops = {}
  for line in io.lines(args[3]) do
    local path, ctype, body = line:match("^([^\t]*)\t([^\t]*)\t(.*)$")
    hops[#hops + 1] = {path = path, ctype = ctype, body = body,
                       form = ctype == "application/x-www-form-urlencoded"}
  end
  -- bench/seed.py made 5000 subscribers with an open offer: each thread takes
  -- its own 156, a new one per session (a consent journey needs an open offer).
  msisdns = {}
  for i = 0, 155 do msisdns[#msisdns + 1] = string.format("+62813%07d", tid * 156 + i) end
  first = tonumber(args[4] or "0")
  step, session, bad = 0, first, 0
end

function request()
  step = step + 1
  if step > #hops then step, session = 1, session + 1 end
  local hop = hops[step]
  local msisdn = msisdns[session % #msisdns + 1]
  if hop.form then msisdn = msisdn:gsub("+", "%%2B") end
  local sid = nonce .. "-" .. tid .. "-" .. session
  -- function replacements: a '%' in a replacement string would name a capture
  local body = hop.body:gsub("SIDXSID", function() return sid end)
  body = body:gsub("MSISDNXMSISDN", function() return msisdn end)
  return wrk.format("POST", hop.path, {["Content-Type"] = hop.ctype}, body)
end

function response(status, headers, body)
  -- a reply in the dialect's form; a failed hop answers 200 with the busy text
  if status ~= 200 or body:find("sedang sibuk", 1, true) or
     (hops[1].form and not (body:sub(1, 4) == "CON " or body:sub(1, 4) == "END ")) then
    bad = bad + 1
  end
end

function delay()
  return pause
end

function done(summary, latency, requests)
  local wrong, most = 0, 0
  for _, t in ipairs(threads) do
    wrong = wrong + (t:get("bad") or 0)
    most = math.max(most, (t:get("session") or 0) - (t:get("first") or 0) + 1)
  end
  io.write(string.format("RESULT requests=%d seconds=%.3f p50_us=%d p99_us=%d bad=%d errors=%d sessions=%d\n",
    summary.requests, summary.duration / 1e6, latency:percentile(50), latency:percentile(99),
    wrong, summary.errors.status + summary.errors.connect + summary.errors.read +
    summary.errors.write + summary.errors.timeout, most))
end
