package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/slardar-go/slardar/pkg/admin"
	"github.com/slardar-go/slardar/pkg/checkups"
	"github.com/slardar-go/slardar/pkg/config"
	"github.com/slardar-go/slardar/pkg/l4"
)

// DefaultShutdownGrace is how long open connections may finish after SIGTERM.
const DefaultShutdownGrace = 30 * time.Second

// Core is what every proxy daemon runs around its hooks: the admin server (with the upstream
// topic), the checkups registry and its heartbeats, the data listeners and the proxy behind
// them, and the drain on shutdown. slardar-proxy and sni-router are a Core plus their hooks.
type Core struct {
	Log     *slog.Logger
	Reg     *checkups.Registry
	Proxy   *l4.Proxy
	Mux     *admin.Mux // topics the daemon serves; upstream is registered by NewCore
	tracker *l4.Tracker

	admin     config.Admin // settings in force (a change needs a restart)
	adminLn   net.Listener
	adminDone chan struct{}
	stopOnce  sync.Once

	mu            sync.Mutex
	grace         time.Duration
	listeners     map[config.Listener]*listener
	fileUpstreams FromFile
	hbCancel      context.CancelFunc
	hbDone        chan struct{}
	hbInterval    time.Duration
}

type listener struct {
	ln     net.Listener
	cancel context.CancelFunc
	done   chan struct{}
}

// NewCore builds a core whose proxy runs hooks (nil: none). It serves the upstream topic; the
// daemon registers its own topics on Mux before StartAdmin.
func NewCore(log *slog.Logger, common *config.Common, hooks l4.Hooks) *Core {
	c := &Core{
		Log:       log,
		Reg:       &checkups.Registry{Logger: log.With("component", "checkups"), DisableHeartbeatDefault: common.Checkups.DisableHeartbeatDefault},
		Mux:       &admin.Mux{},
		tracker:   &l4.Tracker{},
		listeners: make(map[config.Listener]*listener),
	}
	c.Proxy = &l4.Proxy{Registry: c.Reg, AccessLog: log.With("log", "access"), Logger: log, Tracker: c.tracker, Hooks: hooks}
	registerUpstream(c.Mux, c.Reg)
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
		MaxLine: a.MaxLine, IdleTimeout: a.IdleTimeout, Token: a.Token}
	c.adminDone = make(chan struct{})
	go func() { defer close(c.adminDone); srv.Serve(ctx, ln) }()
	c.Log.Info("admin listening", "addr", ln.Addr().String(), "token", a.Token != "")
	return nil
}

// Apply makes the proxy settings, upstreams, heartbeats and listeners match the config.
// Upstreams that came from an earlier config and are gone from this one are deleted; upstreams
// set over the admin protocol are left alone.
func (c *Core) Apply(ctx context.Context, common *config.Common, listeners []config.Listener) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.adminLn != nil && common.Admin != c.admin {
		c.Log.Warn("admin settings changed in the config: they take effect at the next restart")
	}
	c.Proxy.SetIdleTimeout(common.Proxy.IdleTimeout)
	c.grace = common.Proxy.ShutdownGrace
	if c.grace <= 0 {
		c.grace = DefaultShutdownGrace
	}
	for _, name := range slices.Sorted(maps.Keys(common.Upstreams)) {
		if err := c.Reg.Set(name, common.Upstreams[name]); err != nil {
			return fmt.Errorf("upstream %q: %w", name, err)
		}
	}
	for _, name := range c.fileUpstreams.Replace(maps.Keys(common.Upstreams)) {
		c.Reg.Delete(name)
		c.Log.Info("upstream removed with the config", "upstream", name)
	}
	c.applyHeartbeat(ctx, common.Checkups.Interval)
	return c.applyListeners(ctx, listeners)
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

// applyListeners closes listeners that left the config (their connections go on) and opens
// the new ones.
func (c *Core) applyListeners(ctx context.Context, listeners []config.Listener) error {
	want := make(map[config.Listener]bool, len(listeners))
	for _, l := range listeners {
		want[l] = true
	}
	for l, rl := range c.listeners {
		if !want[l] {
			rl.cancel()
			<-rl.done
			delete(c.listeners, l)
			c.Log.Info("listener closed", "addr", rl.ln.Addr().String(), "upstream", l.Upstream)
		}
	}
	var errs []error
	for _, l := range listeners {
		if c.listeners[l] != nil {
			continue
		}
		ln, err := l4.Listen(ctx, l.Listen)
		if err != nil {
			errs = append(errs, fmt.Errorf("listener %s: %w", l.Listen, err))
			continue
		}
		lctx, cancel := context.WithCancel(ctx)
		rl := &listener{ln: ln, cancel: cancel, done: make(chan struct{})}
		c.listeners[l] = rl
		go func() {
			defer close(rl.done)
			c.Proxy.Serve(lctx, ln, l.Upstream)
		}()
		c.Log.Info("listening", "addr", ln.Addr().String(), "upstream", l.Upstream)
	}
	return errors.Join(errs...)
}

// AdminAddr is the bound admin address.
func (c *Core) AdminAddr() string { return c.adminLn.Addr().String() }

// ListenerAddr returns the bound address of the listener serving upstream, or "".
func (c *Core) ListenerAddr(upstream string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	for l, rl := range c.listeners {
		if l.Upstream == upstream {
			return rl.ln.Addr().String()
		}
	}
	return ""
}

// Shutdown stops accepting, lets open connections finish until ctx is done or the grace period
// ends, force-closes the rest, then stops heartbeats and the admin server. Calls after the
// first do nothing.
func (c *Core) Shutdown(ctx context.Context) {
	c.stopOnce.Do(func() { c.shutdown(ctx) })
}

func (c *Core) shutdown(ctx context.Context) {
	c.mu.Lock()
	for l, rl := range c.listeners {
		rl.cancel()
		<-rl.done
		delete(c.listeners, l)
	}
	grace := c.grace
	c.mu.Unlock()
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
}
