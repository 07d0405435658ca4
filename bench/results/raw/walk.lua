local start = "/v1/buckets?per_page=20&cursor=WzgwMDAwLDgwMDAwXQ._aUJ0o8kcCS5HSyhUOq7tA"
local path = start
request = function() return wrk.format("GET", path) end
response = function(status, headers, body)
  local cursor = body:match('"next_cursor":%s*"([^"]+)"')
  if cursor then path = "/v1/buckets?per_page=20&cursor=" .. cursor else path = start end
end
