package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/slardar-go/slardar/pkg/admin"
	"github.com/slardar-go/slardar/pkg/checkups"
	"github.com/slardar-go/slardar/pkg/config"
	"github.com/slardar-go/slardar/pkg/l4"
	"github.com/slardar-go/slardar/pkg/metrics"
)

// DefaultShutdownGrace is how long open connections may finish after SIGTERM.
const DefaultShutdownGrace = 30 * time.Second

// Core is what every proxy daemon runs around its hooks: the admin server (with the upstream
// topic), the checkups registry and its heartbeats, the data listeners and the proxy behind
// them, and the drain on shutdown. slardar-proxy and sni-router are a Core plus their hooks.
type Core struct {
	Log   *slog.Logger
	Reg   *checkups.Registry
	Proxy *l4.Proxy
	Mux   *admin.Mux // topics the daemon serves; upstream and server are registered by NewCore
	// Prom is the daemon's metrics registry (served by StartHTTP); Metrics the proxy metrics
	// on it. A daemon registers its own metrics on Prom.
	Prom    *prometheus.Registry
	Metrics *metrics.Proxy
	tracker *l4.Tracker

	reloadMu   sync.Mutex
	lastReload Reload
	seriesMu   sync.Mutex
	series     map[string][]string // servers by upstream whose series exist (forgetGone)
	ready      atomic.Bool         // the first config is applied and the daemon is not draining
	http       *metrics.Endpoint

	admin     config.Admin // settings in force (a change needs a restart)
	adminLn   net.Listener
	adminDone chan struct{}
	stopOnce  sync.Once
	drain     context.CancelFunc // ends the connections' context (hooks' waits) on shutdown

	mu            sync.Mutex
	grace         time.Duration
	listeners     map[string]*listener // by listenerKey
	fileUpstreams FromFile
	hbCancel      context.CancelFunc
	hbDone        chan struct{}
	hbInterval    time.Duration
}

type listener struct {
	ln       net.Listener
	upstream *l4.Upstream
	cancel   context.CancelFunc
	done     chan struct{}
}

// NewCore builds a core whose proxy runs hooks (nil: none). It serves the upstream topic; the
// daemon registers its own topics on Mux before StartAdmin.
func NewCore(log *slog.Logger, common *config.Common, hooks l4.Hooks) *Core {
	connCtx, drain := context.WithCancel(context.Background())
	c := &Core{
		Log:       log,
		Reg:       &checkups.Registry{Logger: log.With("component", "checkups"), DisableHeartbeatDefault: common.Checkups.DisableHeartbeatDefault},
		Mux:       &admin.Mux{},
		tracker:   &l4.Tracker{},
		listeners: make(map[string]*listener),
		drain:     drain,
	}
	c.Proxy = &l4.Proxy{Registry: c.Reg, AccessLog: log.With("log", "access"), Logger: log, Tracker: c.tracker,
		Hooks: hooks, BaseContext: connCtx}
	c.observe()
	c.registerUpstream()
	c.registerServer()
	return c
}

// StartAdmin serves the admin protocol (every topic on Mux) on a.Listen, or defaultAddr.
func (c *Core) StartAdmin(ctx context.Context, a config.Admin, defaultAddr string) error {
	addr := a.Listen
	if addr == "" {
		addr = defaultAddr
	}
	ln, err := ListenAdmin(addr, a.Token)
	if err != nil {
		return err
	}
	c.admin, c.adminLn = a, ln
	srv := &admin.Server{Mux: c.Mux, Logger: c.Log.With("component", "admin"), MaxBody: a.MaxBody,
		MaxLine: a.MaxLine, IdleTimeout: a.IdleTimeout, MaxConns: a.MaxConns, Token: a.Token, OnCommand: c.OnCommand}
	for _, spec := range c.Mux.Specs() { // every command's counters exist from the start
		for _, result := range []string{"ok", "error"} {
			c.Metrics.AdminCommands.WithLabelValues(spec.Method, spec.Topic, result)
		}
	}
	c.adminDone = make(chan struct{})
	go func() { defer close(c.adminDone); srv.Serve(ctx, ln) }()
	c.Log.Info("admin listening", "addr", ln.Addr().String(), "token", a.Token != "")
	return nil
}

// Change is a config prepared against the running daemon: checked, and with the listeners it
// adds already bound, but nothing that serves changed yet. Commit applies it; Abort drops it.
// A daemon prepares its own parts around it, so that a reload is all or nothing.
type Change struct {
	c                 *Core
	common            *config.Common
	want              []config.Listener
	opened            map[string]net.Listener
	upstreamDefs      map[string]string
	setUps, goneUps   []string
	committed, closed bool
}

// Prepare checks common and listeners and binds the listeners that are new. On error nothing
// changed. The caller must Commit or Abort the change; the daemon serialises its applies.
func (c *Core) Prepare(ctx context.Context, common *config.Common, listeners []config.Listener) (*Change, error) {
	ch := &Change{c: c, common: common, want: listeners, opened: make(map[string]net.Listener),
		upstreamDefs: make(map[string]string, len(common.Upstreams))}
	for name, up := range common.Upstreams {
		def, err := json.Marshal(up)
		if err != nil {
			return nil, fmt.Errorf("upstream %q: %w", name, err)
		}
		ch.upstreamDefs[name] = string(def)
	}
	c.mu.Lock()
	ch.setUps, ch.goneUps = c.fileUpstreams.Diff(ch.upstreamDefs)
	c.mu.Unlock()
	for _, l := range listeners {
		key := listenerKey(l)
		c.mu.Lock()
		_, running := c.listeners[key]
		c.mu.Unlock()
		if running || ch.opened[key] != nil {
			continue
		}
		ln, err := l4.Listen(ctx, l.Listen)
		if err != nil {
			ch.Abort()
			return nil, fmt.Errorf("listener %s: %w", l.Listen, err)
		}
		ch.opened[key] = ln
	}
	return ch, nil
}

// listenerKey identifies a listener across reloads: its address, so that a change of upstream
// keeps the socket; an ephemeral port (":0") is a new socket per upstream.
func listenerKey(l config.Listener) string {
	if _, port, _ := net.SplitHostPort(l.Listen); port == "0" {
		return l.Listen + "=" + l.Upstream
	}
	return l.Listen
}

// Abort closes the listeners the change bound; nothing else was touched.
func (ch *Change) Abort() {
	if ch.committed || ch.closed {
		return
	}
	ch.closed = true
	for _, ln := range ch.opened {
		ln.Close()
	}
}

// Commit makes the proxy settings, upstreams, heartbeats and listeners match the config.
// Upstreams the file defines anew or differently are set; those that left it are deleted;
// the others, and upstreams set over the admin protocol, are left as they are. Listeners that
// left the config are closed (their connections go on); a listener whose upstream changed keeps
// its socket.
func (ch *Change) Commit(ctx context.Context) {
	c := ch.c
	ch.committed = true
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.adminLn != nil && ch.common.Admin != c.admin {
		c.Log.Warn("admin settings changed in the config: they take effect at the next restart")
	}
	c.Proxy.SetIdleTimeout(ch.common.Proxy.IdleTimeout)
	c.grace = ch.common.Proxy.ShutdownGrace
	if c.grace <= 0 {
		c.grace = DefaultShutdownGrace
	}
	for _, name := range ch.setUps {
		c.Reg.Set(name, ch.common.Upstreams[name]) // validated when the config was parsed
	}
	for _, name := range ch.goneUps {
		c.Reg.Delete(name)
		c.Log.Info("upstream removed with the config", "upstream", name)
	}
	c.fileUpstreams.Commit(ch.upstreamDefs)
	c.applyHeartbeat(ctx, ch.common.Checkups.Interval)
	c.swapListeners(ctx, ch.want, ch.opened)
	c.prime()
	c.ready.Store(true)
}

// Apply prepares and commits a config in one step.
func (c *Core) Apply(ctx context.Context, common *config.Common, listeners []config.Listener) error {
	ch, err := c.Prepare(ctx, common, listeners)
	if err != nil {
		return err
	}
	ch.Commit(ctx)
	return nil
}

func (c *Core) applyHeartbeat(ctx context.Context, interval time.Duration) {
	if interval <= 0 {
		interval = checkups.DefaultInterval
	}
	if c.hbCancel != nil && interval == c.hbInterval {
		return
	}
	c.stopHeartbeat()
	hctx, cancel := context.WithCancel(ctx)
	c.hbCancel, c.hbDone, c.hbInterval = cancel, make(chan struct{}), interval
	go func(done chan struct{}) {
		defer close(done)
		c.Reg.Heartbeat(hctx, interval)
	}(c.hbDone)
}

func (c *Core) stopHeartbeat() {
	if c.hbCancel != nil {
		c.hbCancel()
		<-c.hbDone
		c.hbCancel = nil
	}
}

// swapListeners closes listeners that left the config (their connections go on), points those
// that stay at their (maybe new) upstream, and serves the ones opened by Prepare.
func (c *Core) swapListeners(ctx context.Context, want []config.Listener, opened map[string]net.Listener) {
	byKey := make(map[string]config.Listener, len(want))
	for _, l := range want {
		byKey[listenerKey(l)] = l
	}
	for _, key := range slices.Sorted(maps.Keys(c.listeners)) {
		rl := c.listeners[key]
		if l, ok := byKey[key]; ok {
			rl.upstream.Set(l.Upstream)
			continue
		}
		rl.cancel()
		<-rl.done
		delete(c.listeners, key)
		c.Log.Info("listener closed", "addr", rl.ln.Addr().String(), "upstream", rl.upstream.Get())
	}
	for _, l := range want {
		key := listenerKey(l)
		ln := opened[key]
		if ln == nil || c.listeners[key] != nil {
			continue
		}
		lctx, cancel := context.WithCancel(ctx)
		rl := &listener{ln: ln, upstream: l4.NewUpstream(l.Upstream), cancel: cancel, done: make(chan struct{})}
		c.listeners[key] = rl
		go func() {
			defer close(rl.done)
			c.Proxy.Serve(lctx, ln, rl.upstream)
		}()
		if everyInterface(ln.Addr()) {
			c.Log.Warn("listening on every interface: give HOST:PORT (127.0.0.1:PORT) to serve loopback only",
				"addr", ln.Addr().String(), "upstream", l.Upstream)
		} else {
			c.Log.Info("listening", "addr", ln.Addr().String(), "upstream", l.Upstream)
		}
	}
}

// everyInterface reports a listener bound to the unspecified address (a bare ":PORT").
func everyInterface(a net.Addr) bool {
	ap, err := netip.ParseAddrPort(a.String())
	return err == nil && ap.Addr().IsUnspecified()
}

// AdminAddr is the bound admin address.
func (c *Core) AdminAddr() string { return c.adminLn.Addr().String() }

// ListenerAddr returns the bound address of the listener serving upstream, or "".
func (c *Core) ListenerAddr(upstream string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, rl := range c.listeners {
		if rl.upstream.Get() == upstream {
			return rl.ln.Addr().String()
		}
	}
	return ""
}

// ListenerAddrs are the bound addresses of every data listener.
func (c *Core) ListenerAddrs() []net.Addr {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []net.Addr
	for _, rl := range c.listeners {
		out = append(out, rl.ln.Addr())
	}
	return out
}

// Shutdown stops accepting, lets open connections finish until ctx is done or the grace period
// ends, force-closes the rest, then stops heartbeats and the admin server. Hooks' waits (a
// script's sleep or socket read) end at once. Calls after the first do nothing.
func (c *Core) Shutdown(ctx context.Context) {
	c.stopOnce.Do(func() { c.shutdown(ctx) })
}

func (c *Core) shutdown(ctx context.Context) {
	c.ready.Store(false)
	c.mu.Lock()
	for key, rl := range c.listeners {
		rl.cancel()
		<-rl.done
		delete(c.listeners, key)
	}
	grace := c.grace
	c.mu.Unlock()
	c.drain()
	if open := c.tracker.Len(); open > 0 {
		c.Log.Info("draining connections", "open", open, "grace", grace.String())
	}
	gctx, cancel := context.WithTimeout(ctx, grace)
	defer cancel()
	if n := c.tracker.Shutdown(gctx); n > 0 {
		c.Log.Warn("grace period over: closed connections", "closed", n)
	}
	c.mu.Lock()
	c.stopHeartbeat()
	c.mu.Unlock()
	if c.adminLn != nil {
		c.adminLn.Close()
		<-c.adminDone
	}
	c.http.Close()
}

// prime creates the series of every listener, upstream and server at zero, so that a rate or
// an alert sees them before the first event. Called with c.mu held.
func (c *Core) prime() {
	m := c.Metrics
	servers := c.forgetGone()
	for name, addrs := range servers {
		m.Bytes.WithLabelValues(name, "in")
		m.Bytes.WithLabelValues(name, "out")
		for _, addr := range addrs {
			m.DialAttempts.WithLabelValues(name, addr, "ok")
			m.DialAttempts.WithLabelValues(name, addr, "error")
		}
	}
	for _, rl := range c.listeners {
		up := rl.upstream.Get()
		for _, addr := range servers[up] {
			m.Connections.WithLabelValues(rl.ln.Addr().String(), up, addr, "ok")
		}
	}
}

// forgetGone deletes the series of servers and upstreams that left the registry (a PUT or
// DELETE upstream, a reload), so that server churn (store-sync feeding changing addresses)
// does not grow the metrics without bound. It returns the servers of every upstream now.
func (c *Core) forgetGone() map[string][]string {
	servers := map[string][]string{}
	for name, up := range c.Reg.Info() {
		for _, l := range up.Cluster.Levels {
			for _, srv := range l.Servers {
				servers[name] = append(servers[name], srv.Addr())
			}
		}
	}
	c.seriesMu.Lock()
	defer c.seriesMu.Unlock()
	m := c.Metrics
	for name, addrs := range c.series {
		now, kept := servers[name]
		for _, addr := range addrs {
			if !kept || !slices.Contains(now, addr) {
				gone := prometheus.Labels{"upstream": name, "server": addr}
				m.Connections.DeletePartialMatch(gone)
				m.DialAttempts.DeletePartialMatch(gone)
			}
		}
		if !kept {
			m.Bytes.DeletePartialMatch(prometheus.Labels{"upstream": name})
			m.Duration.DeletePartialMatch(prometheus.Labels{"upstream": name})
			m.HeartbeatDuration.DeletePartialMatch(prometheus.Labels{"upstream": name})
		}
	}
	c.series = servers
	return servers
}
