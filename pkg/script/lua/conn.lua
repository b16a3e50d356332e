-- resty.limit.conn: concurrency limit, after openresty/lua-resty-limit-traffic.
local ngx_shared = ngx.shared
local floor, setmetatable = math.floor, setmetatable

local _M = { _VERSION = "0.06" }
local mt = { __index = _M }

function _M.incoming(self, key, commit)
    local dict, max, burst = self.dict, self.max, self.burst
    self.committed = false
    local conn, err
    if commit then
        conn, err = dict:incr(key, 1, 0)
        if not conn then
            return nil, err
        end
        if conn > max + burst then
            conn, err = dict:incr(key, -1)
            if not conn then
                return nil, err
            end
            return nil, "rejected"
        end
        self.committed = true
    else
        conn = (dict:get(key) or 0) + 1
        if conn > max + burst then
            return nil, "rejected"
        end
    end
    if conn > max then
        return self.unit_delay * floor((conn - 1) / max), conn
    end
    return 0, conn
end

function _M.is_committed(self) return self.committed end

function _M.leaving(self, key, req_latency)
    local conn, err = self.dict:incr(key, -1)
    if not conn then
        return nil, err
    end
    if req_latency then
        self.unit_delay = (req_latency + self.unit_delay) / 2
    end
    return conn
end

function _M.uncommit(self, key) return self.dict:incr(key, -1) end
function _M.set_conn(self, conn) self.max = conn end
function _M.set_burst(self, burst) self.burst = burst end

function _M.new(dict_name, max, burst, default_conn_delay)
    local dict = ngx_shared[dict_name]
    if not dict then
        return nil, "shared dict not found"
    end
    assert(max > 0 and burst >= 0 and default_conn_delay > 0)
    local self = setmetatable({ dict = dict, max = max + 0, burst = burst, unit_delay = default_conn_delay }, mt)
    return slardar_bind(self, _M, { "incoming", "is_committed", "leaving", "uncommit", "set_conn", "set_burst" })
end

return _M
