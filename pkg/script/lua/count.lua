-- resty.limit.count: fixed window, after openresty/lua-resty-limit-traffic.
local ngx_shared, setmetatable = ngx.shared, setmetatable

local _M = { _VERSION = "0.06" }
local mt = { __index = _M }

function _M.incoming(self, key, commit)
    local dict, limit, window = self.dict, self.limit, self.window
    local remaining, err
    if commit then
        remaining, err = dict:incr(key, -1, limit, window)
        if not remaining then
            return nil, err
        end
    else
        remaining = (dict:get(key) or limit) - 1
    end
    if remaining < 0 then
        return nil, "rejected"
    end
    return 0, remaining
end

function _M.uncommit(self, key) return self.dict:incr(key, 1) end

function _M.new(dict_name, limit, window)
    local dict = ngx_shared[dict_name]
    if not dict then
        return nil, "shared dict not found"
    end
    assert(limit > 0 and window > 0)
    local self = setmetatable({ dict = dict, limit = limit, window = window }, mt)
    return slardar_bind(self, _M, { "incoming", "uncommit" })
end

return _M
