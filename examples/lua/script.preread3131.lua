-- The talk's limit_req example: a leaky bucket of 1 connection per second with a burst of 3,
-- per client address, in the preread phase of port 3131. Needs the shared dict
-- stream_limit_req_store (shared_dicts in the config, or --shared-dict).
local limit_req = require "resty.limit.req"

local lim = limit_req.new("stream_limit_req_store", 1, 3)
local key = ngx.var.remote_addr
local delay, err = lim.incoming(key, true)
if not delay then
    return ngx.exit(1)
end
if delay >= 0.001 then
    ngx.sleep(delay)
end
