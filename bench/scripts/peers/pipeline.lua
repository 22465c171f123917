-- wrk script: send `depth` GET / requests in one write (TechEmpower plaintext style).
--   wrk -s bench/scripts/peers/pipeline.lua ... -- 16
-- wrk counts each response, so requests/s counts pipelined requests; latency is per batch.
local depth = 16

function init(args)
  depth = tonumber(args[1]) or 16
  local r = {}
  for i = 1, depth do
    r[i] = wrk.format(nil, "/")
  end
  req = table.concat(r)
end

function request()
  return req
end
