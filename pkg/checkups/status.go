package checkups

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"
)

// TimeLayout is how checkups prints times (local time).
const TimeLayout = "2006-01-02 15:04:05"

// ServerStatus is one server in GET upstream status, in checkups' shape plus the passive state
// and open connections, which the original kept per worker and never showed.
type ServerStatus struct {
	Server       string         `json:"server"` // "<upstream>:<host>:<port>"
	Weight       int            `json:"weight"`
	MaxFails     int            `json:"max_fails"`
	FailTimeout  float64        `json:"fail_timeout"`
	Status       Status         `json:"status"` // heartbeat: ok, err, unstable, lagging or unchecked; maint when paused
	State        string         `json:"state"`  // the operator's: ready, drain or maint (PUT server)
	Msg          *string        `json:"msg"`
	FailNum      int            `json:"fail_num"`
	LastModified string         `json:"lastmodified"`
	Passive      Status         `json:"passive"`       // ok or err (max_fails within fail_timeout)
	PassiveFails int            `json:"passive_fails"` // failures in the current window
	ActiveConns  int64          `json:"active_conns"`
	Replication  map[string]any `json:"replication,omitempty"`
	RedisVersion any            `json:"redis_version,omitempty"`
	// Pool is what the daemon's connection pool holds of the server (mysql-proxy: open, idle,
	// waiting, limit, waits, wait_seconds), from Registry.ServerInfo.
	Pool map[string]any `json:"pool,omitempty"`

	Upstream, Addr string `json:"-"` // for Go callers: the upstream's name, the server's host:port
}

// Status is GET upstream status: checkups' fields plus "cls:<name>" → levels → servers.
func (r *Registry) Status(version string) map[string]any {
	now := r.now()
	alive, last := r.heartbeatAlive(now)
	out := map[string]any{
		"checkup_timer_alive": alive,
		"last_check_time":     nil,
		"start_time":          nil,
		"conf_hash":           nil,
		"shd_config_version":  r.Version(),
		"slardar_version":     version,
		"instance_id":         r.instanceID(), // tells a restarted daemon from the one before (store-sync)
	}
	if !last.IsZero() {
		out["last_check_time"] = last.Format(TimeLayout)
	}
	r.hb.mu.Lock()
	if !r.hb.started.IsZero() {
		out["start_time"] = r.hb.started.Format(TimeLayout)
	}
	r.hb.mu.Unlock()

	r.mu.RLock()
	pools := make(map[string]*pool, len(r.pools))
	for n, p := range r.pools {
		pools[n] = p
	}
	r.mu.RUnlock()
	for name, p := range pools {
		levels := make([][]ServerStatus, len(p.levels))
		for li, ls := range p.levels {
			levels[li] = make([]ServerStatus, 0, len(ls.servers))
			for _, pe := range ls.servers {
				st := p.serverStatus(pe, now)
				if r.ServerInfo != nil {
					st.Pool = r.ServerInfo(st.Addr)
				}
				levels[li] = append(levels[li], st)
			}
		}
		if p.up.Cluster.Named {
			named := make(map[string][]ServerStatus, len(levels))
			for li, l := range p.up.Cluster.Levels {
				named[l.Name] = levels[li]
			}
			out["cls:"+name] = named
		} else {
			out["cls:"+name] = levels
		}
	}
	return out
}

func (p *pool) serverStatus(pe *peer, now time.Time) ServerStatus {
	st := pe.state
	st.mu.Lock()
	defer st.mu.Unlock()
	s := ServerStatus{
		Server:       p.name + ":" + pe.srv.Host + ":" + itoa(pe.srv.Port),
		Weight:       pe.srv.Weight,
		MaxFails:     pe.srv.MaxFails,
		FailTimeout:  float64(pe.srv.FailTimeout),
		Status:       st.hStatus,
		FailNum:      st.hFailNum,
		LastModified: st.hLastMod.Format(TimeLayout),
		Passive:      st.passiveLocked(pe.srv, now),
		ActiveConns:  st.active.Load(),
		State:        StateReady,
		Upstream:     p.name,
		Addr:         pe.srv.Addr(),
	}
	if st.admin != "" {
		s.State = st.admin
	}
	if s.Passive == StatusErr || !st.pLastMod.Add(pe.srv.failTimeout()).Before(now) {
		s.PassiveFails = st.pFails
	}
	if st.hMsg != "" {
		msg := st.hMsg
		s.Msg = &msg
	}
	if !p.heartbeatEnabled() {
		s.Status, s.FailNum, s.Msg = StatusUnchecked, 0, nil
	}
	if s.State == StateMaint {
		s.Status = StatusMaint
	}
	if st.hExtra != nil {
		s.Replication, _ = st.hExtra["replication"].(map[string]any)
		s.RedisVersion = st.hExtra["redis_version"]
	}
	return s
}

// EachServer calls f with the status of every server of every upstream, by upstream name.
func (r *Registry) EachServer(f func(ServerStatus)) {
	now := r.now()
	r.mu.RLock()
	names := slices.Sorted(maps.Keys(r.pools))
	pools := make([]*pool, len(names))
	for i, n := range names {
		pools[i] = r.pools[n]
	}
	r.mu.RUnlock()
	for _, p := range pools {
		for _, pe := range p.all {
			f(p.serverStatus(pe, now))
		}
	}
}

// ErrNoServer is a server that is not in the upstream.
var ErrNoServer = errors.New("no such server")

// server finds addr (host:port) in upstream.
func (r *Registry) server(upstream, addr string) (*pool, *peer, error) {
	p := r.get(upstream)
	if p == nil {
		// The admin protocol's words for a missing name (the Lua API keeps "unknown skey").
		return nil, nil, invalid("upstream %s not found", upstream)
	}
	for _, pe := range p.all {
		if pe.srv.Addr() == addr {
			return p, pe, nil
		}
	}
	return nil, nil, fmt.Errorf("%w: upstream %s has no server %s", ErrNoServer, upstream, addr)
}

// Server is the status of one server of an upstream (GET server).
func (r *Registry) Server(upstream, addr string) (ServerStatus, error) {
	p, pe, err := r.server(upstream, addr)
	if err != nil {
		return ServerStatus{}, err
	}
	return p.serverStatus(pe, r.now()), nil
}

// SetServerState sets the operator's state of a server (PUT server): StateDrain takes it out
// of rotation while its open connections finish, StateMaint also pauses its heartbeats,
// StateReady brings it back. The state stays with the server through PUTs of its upstream
// that keep it.
func (r *Registry) SetServerState(upstream, addr, state string) error {
	switch state {
	case StateReady, StateDrain, StateMaint:
	default:
		return fmt.Errorf("state %q: want ready, drain or maint", state)
	}
	_, pe, err := r.server(upstream, addr)
	if err != nil {
		return err
	}
	prev := pe.state.adminState()
	pe.state.mu.Lock()
	pe.state.admin = state
	if state == StateReady {
		pe.state.admin = ""
	}
	pe.state.mu.Unlock()
	if prev != state {
		r.logger().Info("server state set", "upstream", upstream, "server", addr, "state", state, "open", pe.state.active.Load())
	}
	return nil
}
