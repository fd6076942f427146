-- wrk script: every wrk thread holds one connection and plays one subscriber
-- at a time, each hop sent after the previous reply (run with -t N -c N).
-- args: pause_ms nonce texts (the session's text after each hop, joined by
-- commas: bench/journeys.py)
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
  for text in ((args[3] or "") .. ","):gmatch("([^,]*),") do hops[#hops + 1] = text end
  -- bench/seed.py made 5000 subscribers with an open offer: each thread takes
  -- its own 156, a new one per session (a consent journey needs an open offer).
  msisdns = {}
  for i = 0, 155 do msisdns[#msisdns + 1] = string.format("+62813%07d", tid * 156 + i) end
  step, session, bad = 0, 0, 0
end

function request()
  step = step + 1
  if step > #hops then step, session = 1, session + 1 end
  local msisdn = msisdns[session % #msisdns + 1]
  local body = "sessionId=" .. nonce .. "-" .. tid .. "-" .. session ..
    "&serviceCode=%2A700%23&phoneNumber=" .. msisdn:gsub("+", "%%2B") ..
    "&text=" .. hops[step]:gsub("%*", "%%2A")
  return wrk.format("POST", "/ussd", {["Content-Type"] = "application/x-www-form-urlencoded"}, body)
end

function response(status, headers, body)
  if status ~= 200 or not (body:sub(1, 4) == "CON " or body:sub(1, 4) == "END ") then
    bad = bad + 1
  end
end

function delay()
  return pause
end

function done(summary, latency, requests)
  local wrong = 0
  for _, t in ipairs(threads) do wrong = wrong + (t:get("bad") or 0) end
  io.write(string.format("RESULT requests=%d seconds=%.3f p50_us=%d p99_us=%d bad=%d errors=%d\n",
    summary.requests, summary.duration / 1e6, latency:percentile(50), latency:percentile(99),
    wrong, summary.errors.status + summary.errors.connect + summary.errors.read +
    summary.errors.write + summary.errors.timeout))
end
