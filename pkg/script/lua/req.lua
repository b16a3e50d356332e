-- resty.limit.req: leaky bucket, after openresty/lua-resty-limit-traffic (rate and burst are
-- kept multiplied by 1000; state is "excess:last_ms" in an ngx.shared dict).
local ngx_shared = ngx.shared
local math_max, tonumber, setmetatable = math.max, tonumber, setmetatable

local _M = { _VERSION = "0.08" }
local mt = { __index = _M }

local function decode(v)
    local e, last = v:match("^([^:]+):(.+)$")
    return tonumber(e), tonumber(last)
end

function _M.incoming(self, key, commit)
    -- excess = max(prev_excess - rate * |elapsed_ms| / 1000 + 1000, 0), over burst rejected;
    -- computed and stored atomically by the dict.
    local excess, err = self.dict:slardar_leaky(key, self.rate, self.burst, commit)
    if not excess then
        return nil, err
    end
    return excess / self.rate, excess / 1000
end

function _M.uncommit(self, key)
    local dict = self.dict
    local v = dict:get(key)
    if not v then
        return nil, "not found"
    end
    local e, last = decode(v)
    dict:set(key, math_max(e - 1000, 0) .. ":" .. last)
    return true
end

function _M.set_rate(self, rate) self.rate = rate * 1000 end
function _M.set_burst(self, burst) self.burst = burst * 1000 end

function _M.new(dict_name, rate, burst)
    local dict = ngx_shared[dict_name]
    if not dict then
        return nil, "shared dict not found"
    end
    assert(rate > 0 and burst >= 0)
    local self = setmetatable({ dict = dict, rate = rate * 1000, burst = burst * 1000 }, mt)
    return slardar_bind(self, _M, { "incoming", "uncommit", "set_rate", "set_burst" })
end

return _M
