package checkups

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Registry holds the upstreams by name. It is safe for concurrent use; an update swaps in a new
// pool that the next selection sees, while connections already open keep theirs. Health state of
// servers that stay in an upstream is kept across updates.
type Registry struct {
	// Logger receives peer up/down transitions. Default: discard.
	Logger *slog.Logger
	// HeartbeatDefault applies to upstreams without "enable" (checkups' default_heartbeat_enable).
	// The zero Registry uses true; set DisableHeartbeatDefault to flip it.
	DisableHeartbeatDefault bool
	// Now is the clock; default time.Now.
	Now func() time.Time
	// OnDial, when set, gets every attempt of Try (a dial, a MySQL login) with its error; set
	// it before the first upstream. OnHeartbeat gets each upstream's heartbeat round time.
	OnDial      func(upstream, server string, err error)
	OnHeartbeat func(upstream string, d time.Duration)
	// ImpliedRole gives the role of an upstream without "role" (mysql-proxy: its listeners'
	// upstreams are primaries, their _read upstreams replicas). Nil: none.
	ImpliedRole func(upstream string) string
	// ServerInfo, when set, adds what the daemon knows of a server (host:port) to its status
	// (ServerStatus.Pool).
	ServerInfo func(addr string) map[string]any

	mu      sync.RWMutex
	pools   map[string]*pool
	version atomic.Int64

	hb heartbeatInfo

	instance     sync.Once
	instanceName string
}

// instanceID is a random name of this registry, the same for its whole life.
func (r *Registry) instanceID() string {
	r.instance.Do(func() {
		var b [8]byte
		rand.Read(b[:])
		r.instanceName = hex.EncodeToString(b[:])
	})
	return r.instanceName
}

func (r *Registry) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

func (r *Registry) logger() *slog.Logger {
	if r.Logger != nil {
		return r.Logger
	}
	return slog.New(slog.DiscardHandler)
}

func (r *Registry) get(name string) *pool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.pools[name]
}

// Set replaces (or creates) an upstream with a validated config.
func (r *Registry) Set(name string, up *Upstream) error {
	if err := up.validate(); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.setLocked(name, up)
	return nil
}

func (r *Registry) setLocked(name string, up *Upstream) {
	if r.pools == nil {
		r.pools = make(map[string]*pool)
	}
	var states map[string]*peerState
	if old := r.pools[name]; old != nil {
		states = old.states()
	}
	r.pools[name] = newPool(name, up, states, !r.DisableHeartbeatDefault, r.now())
	r.pools[name].observe = r.OnDial
	r.version.Add(1)
}

// PutJSON applies an admin protocol PUT body: {"cluster":...} replaces the whole upstream;
// the short form {"servers":[...], ...} is applied over the upstream there is (ApplyShort):
// its servers replace the first level's, the fields it names replace those, the rest is kept.
// Errors carry the original's messages.
func (r *Registry) PutJSON(name string, body []byte) error {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(body, &fields); err != nil || fields == nil {
		return invalid(msgInvalidBody)
	}
	if fields["servers"] == nil {
		if fields["cluster"] == nil {
			return invalid(msgInvalidBody)
		}
		up, err := ParseUpstream(body)
		if err != nil {
			return err
		}
		return r.Set(name, up)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	var old *Upstream
	if p := r.pools[name]; p != nil {
		old = p.up
	}
	up, err := ApplyShort(old, body, false)
	if err != nil {
		return err
	}
	r.setLocked(name, up)
	return nil
}

// IsShort reports whether an upstream body is the short form {"servers":[...], ...} (as opposed
// to the full form with "cluster").
func IsShort(body []byte) bool {
	var fields map[string]json.RawMessage
	return json.Unmarshal(body, &fields) == nil && fields["servers"] != nil && fields["cluster"] == nil
}

// ApplyShort is the one meaning of the short form, wherever it arrives (1895, slardarctl,
// store-sync): over old (nil when there is none) its servers replace the first level's servers,
// every other field it names replaces old's, and what it does not name is kept. So
// {"servers":[...]} changes the servers and nothing else (the original's PUT), and a store's
// {"enable":true,"servers":[...]} changes those two. old is not modified; strict refuses
// unknown fields, as ParseUpstreamStrict.
func ApplyShort(old *Upstream, body []byte, strict bool) (*Upstream, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(body, &fields); err != nil || fields == nil || fields["servers"] == nil || fields["cluster"] != nil {
		return nil, invalid(msgInvalidBody)
	}
	merged := map[string]json.RawMessage{}
	if old != nil {
		b, err := json.Marshal(old)
		if err != nil {
			return nil, err
		}
		if err := json.Unmarshal(b, &merged); err != nil {
			return nil, err
		}
		delete(merged, "cluster")
	}
	maps.Copy(merged, fields) // an unknown field stays one, for parseUpstream to refuse or ignore
	b, err := json.Marshal(merged)
	if err != nil {
		return nil, err
	}
	up, err := parseUpstream(b, strict)
	if err != nil {
		return nil, err
	}
	if old != nil && len(old.Cluster.Levels) > 0 {
		servers := up.Cluster.Levels[0].Servers
		up.Cluster = old.Cluster
		up.Cluster.Levels = slices.Clone(old.Cluster.Levels)
		up.Cluster.Levels[0].Servers = servers
	} else if old != nil && old.Cluster.Named {
		up.Cluster.Named = true
		up.Cluster.Levels[0].Name = "1"
	}
	return up, nil
}

// Delete removes an upstream.
func (r *Registry) Delete(name string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.pools[name]; !ok {
		return invalid("upstream %s not found", name)
	}
	delete(r.pools, name)
	r.version.Add(1)
	return nil
}

// Get returns a copy of an upstream's config, or nil.
func (r *Registry) Get(name string) *Upstream {
	p := r.get(name)
	if p == nil {
		return nil
	}
	cp := *p.up
	return &cp
}

// Info is GET upstream info: every upstream's config by name.
func (r *Registry) Info() map[string]*Upstream {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make(map[string]*Upstream, len(r.pools))
	for n, p := range r.pools {
		out[n] = p.up
	}
	return out
}

// Has reports whether an upstream of that name exists.
func (r *Registry) Has(name string) bool { return r.get(name) != nil }

// Version counts config changes.
func (r *Registry) Version() int64 { return r.version.Load() }

// Try selects peers of the named upstream for key (the client address, for hash modes) and
// calls fn until it succeeds; see pool.try. The returned int is the number of attempts.
func (r *Registry) Try(ctx context.Context, name, key string, fn TryFunc) (Peer, int, error) {
	p := r.get(name)
	if p == nil {
		return Peer{}, 0, &UnknownUpstreamError{Name: name}
	}
	return p.try(ctx, key, r.now, func(pe Peer, err error, down bool) {
		if down {
			r.logger().Info("peer down (passive)", "upstream", name, "server", pe.Addr(), "err", err)
		}
	}, fn)
}

// Timeout is the named upstream's dial timeout.
func (r *Registry) Timeout(name string) time.Duration {
	if p := r.get(name); p != nil {
		return p.up.DialTimeout()
	}
	return 5 * time.Second
}

// roleOf is an upstream's role: its own, or the implied one.
func (r *Registry) roleOf(p *pool) string {
	if p.up.Role != "" || r.ImpliedRole == nil {
		return p.up.Role
	}
	return r.ImpliedRole(p.name)
}

// Replication is what the last mysql heartbeat read of a server of an upstream (read_only,
// gtid_slave_pos, lag, ...; see GET upstream status), or nil.
func (r *Registry) Replication(upstream, addr string) map[string]any {
	_, pe, err := r.server(upstream, addr)
	if err != nil {
		return nil
	}
	pe.state.mu.Lock()
	defer pe.state.mu.Unlock()
	repl, _ := pe.state.hExtra["replication"].(map[string]any)
	return repl
}

// RoutineAccess is what the stored function fn ("schema.name", lower-cased) of the servers of
// upstream declares of its data access (NO SQL, READS SQL DATA, CONTAINS SQL, MODIFIES SQL
// DATA), as the last mysql heartbeat of a replica upstream read it; "" when no server's
// catalog has it. Servers that disagree (a function changed between two heartbeats) give the
// one that may write most.
func (r *Registry) RoutineAccess(upstream, fn string) string {
	p := r.get(upstream)
	if p == nil {
		return ""
	}
	worst, found := "", false
	for _, pe := range p.all {
		pe.state.mu.Lock()
		routines, _ := pe.state.hExtra["routines"].(map[string]string)
		access, ok := routines[fn]
		pe.state.mu.Unlock()
		if !ok {
			return "" // a server that does not know it: the function is new, or not everywhere
		}
		if !found || accessRank(access) > accessRank(worst) {
			worst, found = access, true
		}
	}
	return worst
}
