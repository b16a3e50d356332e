// Package proxyd is slardar-proxy: the L4 balancer daemon (listeners, checkups, admin server)
// and its command line.
package proxyd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/slardar-go/slardar/pkg/admin"
	"github.com/slardar-go/slardar/pkg/checkups"
	"github.com/slardar-go/slardar/pkg/config"
	"github.com/slardar-go/slardar/pkg/daemon"
	"github.com/slardar-go/slardar/pkg/l4"
	"github.com/slardar-go/slardar/pkg/script"
)

// Defaults of slardar-proxy.
const (
	DefaultAdminListen   = "127.0.0.1:1895"
	DefaultShutdownGrace = 30 * time.Second
)

// Daemon is a running slardar-proxy.
type Daemon struct {
	log     *slog.Logger
	reg     *checkups.Registry
	code    *script.Code
	scripts *script.Runtime
	tracker *l4.Tracker
	proxy   *l4.Proxy
	grace   time.Duration
	load    func() (*config.File, error) // reads the effective config (file + flags)
	admin   config.Admin                 // the admin settings in force (a change needs a restart)

	adminLn   net.Listener
	adminDone chan error

	mu            sync.Mutex
	listeners     map[config.Listener]*listener
	fileUpstreams map[string]bool
	dirScripts    map[string]bool
	hbCancel      context.CancelFunc
	hbDone        chan struct{}
	hbInterval    time.Duration
}

type listener struct {
	ln     net.Listener
	cancel context.CancelFunc
	done   chan struct{}
}

// Start builds the daemon from the config load returns and starts serving: admin first, then
// upstreams, heartbeats and listeners. ctx bounds the daemon's life as a whole; call Shutdown to
// stop it gracefully.
func Start(ctx context.Context, log *slog.Logger, load func() (*config.File, error)) (*Daemon, error) {
	cfg, err := load()
	if err != nil {
		return nil, err
	}
	d := &Daemon{
		log:           log,
		reg:           &checkups.Registry{Logger: log.With("component", "checkups"), DisableHeartbeatDefault: cfg.Checkups.DisableHeartbeatDefault},
		tracker:       &l4.Tracker{},
		load:          load,
		admin:         cfg.Admin,
		listeners:     make(map[config.Listener]*listener),
		fileUpstreams: make(map[string]bool),
	}
	d.code = &script.Code{}
	d.scripts = &script.Runtime{Code: d.code, Dicts: &script.Dicts{}, Logger: log.With("component", "script")}
	d.proxy = &l4.Proxy{Registry: d.reg, AccessLog: log.With("log", "access"), Logger: log, Tracker: d.tracker, Hooks: d.scripts}
	d.applyProxy(cfg)

	adminAddr := cmp(cfg.Admin.Listen, DefaultAdminListen)
	d.adminLn, err = daemon.ListenAdmin(adminAddr, cfg.Admin.Token)
	if err != nil {
		return nil, err
	}
	mux := &admin.Mux{}
	daemon.RegisterUpstream(mux, d.reg)
	daemon.RegisterCode(mux, d.code)
	srv := &admin.Server{Mux: mux, Logger: log.With("component", "admin"), MaxBody: cfg.Admin.MaxBody,
		MaxLine: cfg.Admin.MaxLine, IdleTimeout: cfg.Admin.IdleTimeout, Token: cfg.Admin.Token}
	d.adminDone = make(chan error, 1)
	go func() { d.adminDone <- srv.Serve(ctx, d.adminLn) }()
	log.Info("admin listening", "addr", d.adminLn.Addr().String(), "token", cfg.Admin.Token != "")

	if err := d.apply(ctx, cfg); err != nil {
		d.Shutdown(context.Background())
		return nil, err
	}
	if len(cfg.Listeners) == 0 {
		log.Info("no listeners configured: serving the admin protocol only; give --listen PORT or a config file with listeners")
	}
	return d, nil
}

func cmp(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

func (d *Daemon) applyProxy(cfg *config.File) {
	d.proxy.SetIdleTimeout(cfg.Proxy.IdleTimeout)
	d.grace = cfg.Proxy.ShutdownGrace
	if d.grace <= 0 {
		d.grace = DefaultShutdownGrace
	}
	limits := script.Limits{Timeout: cfg.Scripts.Timeout}
	if n, err := script.ParseSize(cfg.Scripts.MaxHeap); err == nil { // validated with the config
		limits.MaxHeap = uint64(n)
	}
	d.scripts.SetLimits(limits)
	for name, size := range cfg.SharedDicts {
		n, _ := script.ParseSize(size) // validated with the config
		d.scripts.Dicts.Define(name, n)
	}
}

// loadScriptDir loads every *.lua file of dir (module name: the file name less .lua), then
// uninstalls scripts an earlier load of the directory installed and whose file is gone. A file
// that does not compile fails the whole load and nothing of it is installed.
func (d *Daemon) loadScriptDir(dir string) error {
	found := make(map[string][]byte)
	if dir != "" {
		entries, err := os.ReadDir(dir)
		if err != nil {
			return fmt.Errorf("scripts.dir: %w", err)
		}
		for _, e := range entries {
			name, ok := strings.CutSuffix(e.Name(), ".lua")
			if !ok || e.IsDir() {
				continue
			}
			src, err := os.ReadFile(filepath.Join(dir, e.Name()))
			if err != nil {
				return fmt.Errorf("scripts.dir: %w", err)
			}
			if _, err := script.Compile(name, src); err != nil {
				return fmt.Errorf("scripts.dir %s: %w", e.Name(), err)
			}
			found[name] = src
		}
	}
	for _, name := range slices.Sorted(maps.Keys(found)) {
		if m := d.code.Lookup(name); m != nil && m.Version == script.Version(found[name]) {
			continue
		}
		if err := d.code.Load(name, found[name]); err != nil {
			return fmt.Errorf("scripts.dir %s.lua: %w", name, err)
		}
		d.log.Info("script loaded", "name", name, "dir", dir)
	}
	for name := range d.dirScripts {
		if _, ok := found[name]; !ok {
			d.code.Delete(name)
			d.log.Info("script removed with its file", "name", name)
		}
	}
	d.dirScripts = make(map[string]bool, len(found))
	for name := range found {
		d.dirScripts[name] = true
	}
	return nil
}

// apply makes upstreams, heartbeats and listeners match cfg. Upstreams that came from an earlier
// config and are gone from this one are deleted; upstreams set over the admin protocol are left.
func (d *Daemon) apply(ctx context.Context, cfg *config.File) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.loadScriptDir(cfg.Scripts.Dir); err != nil {
		return err
	}
	for _, name := range slices.Sorted(maps.Keys(cfg.Upstreams)) {
		if err := d.reg.Set(name, cfg.Upstreams[name]); err != nil {
			return fmt.Errorf("upstream %q: %w", name, err)
		}
	}
	for name := range d.fileUpstreams {
		if _, ok := cfg.Upstreams[name]; !ok {
			d.reg.Delete(name)
			d.log.Info("upstream removed with the config", "upstream", name)
		}
	}
	d.fileUpstreams = make(map[string]bool, len(cfg.Upstreams))
	for name := range cfg.Upstreams {
		d.fileUpstreams[name] = true
	}

	interval := cfg.Checkups.Interval
	if interval <= 0 {
		interval = checkups.DefaultInterval
	}
	if d.hbCancel == nil || interval != d.hbInterval {
		d.stopHeartbeat()
		hctx, cancel := context.WithCancel(ctx)
		d.hbCancel, d.hbDone, d.hbInterval = cancel, make(chan struct{}), interval
		go func(done chan struct{}) {
			defer close(done)
			d.reg.Heartbeat(hctx, interval)
		}(d.hbDone)
	}

	want := make(map[config.Listener]bool, len(cfg.Listeners))
	for _, l := range cfg.Listeners {
		want[l] = true
	}
	for l, rl := range d.listeners {
		if !want[l] {
			rl.cancel()
			<-rl.done
			delete(d.listeners, l)
			d.log.Info("listener closed", "addr", rl.ln.Addr().String(), "upstream", l.Upstream)
		}
	}
	var errs []error
	for _, l := range cfg.Listeners {
		if d.listeners[l] != nil {
			continue
		}
		ln, err := l4.Listen(ctx, l.Listen)
		if err != nil {
			errs = append(errs, fmt.Errorf("listener %s: %w", l.Listen, err))
			continue
		}
		lctx, cancel := context.WithCancel(ctx)
		rl := &listener{ln: ln, cancel: cancel, done: make(chan struct{})}
		d.listeners[l] = rl
		go func() {
			defer close(rl.done)
			if err := d.proxy.Serve(lctx, ln, l.Upstream); err != nil {
				d.log.Error("listener stopped", "addr", l.Listen, "err", err)
			}
		}()
		d.log.Info("listening", "addr", ln.Addr().String(), "upstream", l.Upstream)
	}
	return errors.Join(errs...)
}

func (d *Daemon) stopHeartbeat() {
	if d.hbCancel != nil {
		d.hbCancel()
		<-d.hbDone
		d.hbCancel = nil
	}
}

// Reload re-reads the configuration and applies it without dropping connections. A config that
// does not load leaves everything as it is.
func (d *Daemon) Reload(ctx context.Context) error {
	cfg, err := d.load()
	if err != nil {
		return fmt.Errorf("reload: %w", err)
	}
	d.mu.Lock()
	d.applyProxy(cfg)
	d.mu.Unlock()
	if cfg.Admin != d.admin {
		d.log.Warn("admin settings changed in the config: they take effect at the next restart")
	}
	return d.apply(ctx, cfg)
}

// AdminAddr is the bound admin address.
func (d *Daemon) AdminAddr() string { return d.adminLn.Addr().String() }

// ListenerAddr returns the bound address of the listener serving upstream, or "".
func (d *Daemon) ListenerAddr(upstream string) string {
	d.mu.Lock()
	defer d.mu.Unlock()
	for l, rl := range d.listeners {
		if l.Upstream == upstream {
			return rl.ln.Addr().String()
		}
	}
	return ""
}

// Shutdown stops accepting, lets open connections finish until ctx is done or the grace period
// ends, force-closes the rest, then stops heartbeats and the admin server.
func (d *Daemon) Shutdown(ctx context.Context) {
	d.mu.Lock()
	for l, rl := range d.listeners {
		rl.cancel()
		<-rl.done
		delete(d.listeners, l)
	}
	grace := d.grace
	d.mu.Unlock()
	open := d.tracker.Len()
	if open > 0 {
		d.log.Info("draining connections", "open", open, "grace", grace.String())
	}
	gctx, cancel := context.WithTimeout(ctx, grace)
	defer cancel()
	if n := d.tracker.Shutdown(gctx); n > 0 {
		d.log.Warn("grace period over: closed connections", "closed", n)
	}
	d.mu.Lock()
	d.stopHeartbeat()
	d.mu.Unlock()
	d.adminLn.Close()
	if err := <-d.adminDone; err != nil {
		d.log.Error("admin server", "err", err)
	}
}
