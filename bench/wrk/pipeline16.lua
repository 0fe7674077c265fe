-- 16 GETs of / in one write, for HTTP/1.1 pipelining (bench/run, scenario 14): wrk parses the
-- batch to know how many responses to expect, counts each response in its total, and sends the
-- next batch once all 16 are in (its latency figures are those of a whole batch).
init = function(args)
   local r = {}
   for i = 1, 16 do
      r[i] = wrk.format("GET", "/")
   end
   req = table.concat(r)
end

request = function()
   return req
end
