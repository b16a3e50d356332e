// Package luaproxy is a daemon.Core whose hooks are Lua scripts: the code registry and its
// admin topic, the scripts directory of the config file, shared dicts and script limits.
// slardar-proxy is one; mysql-proxy is one whose content is a MySQL session.
package luaproxy

import (
	"context"
	"log/slog"
	"strings"
	"sync"

	"github.com/slardar-go/slardar/pkg/config"
	"github.com/slardar-go/slardar/pkg/daemon"
	"github.com/slardar-go/slardar/pkg/l4"
	"github.com/slardar-go/slardar/pkg/script"
)

// Daemon is a running Lua-hooked proxy.
type Daemon struct {
	*daemon.Core
	Code                          *script.Code
	Scripts                       *script.Runtime
	daemon.Reloader[*config.File] // SIGHUP: the config read again (file + flags) and applied

	mu         sync.Mutex // serialises applies
	dirScripts daemon.FromFile
}

// New builds the daemon (nothing listens yet). wrap, when not nil, wraps the Lua hooks
// (mysql-proxy serves a MySQL session as the content).
func New(log *slog.Logger, cfg *config.File, load func() (*config.File, error), wrap func(l4.Hooks) l4.Hooks) *Daemon {
	d := &Daemon{Code: &script.Code{}}
	d.Reloader = daemon.Reloader[*config.File]{Load: load, Use: d.apply}
	d.Scripts = &script.Runtime{Code: d.Code, Dicts: &script.Dicts{}, Logger: log.With("component", "script")}
	var hooks l4.Hooks = d.Scripts
	if wrap != nil {
		hooks = wrap(d.Scripts)
	}
	d.Core = daemon.NewCore(log, &cfg.Common, hooks)
	d.Reloader.Record = d.RecordReload
	d.Code.Register(d.Mux)
	d.Scripts.OnRun = func(name, result string) { d.Metrics.ScriptRuns.WithLabelValues(name, result).Inc() }
	return d
}

// Start builds the daemon from cfg and starts serving: admin first (on cfg's address, or
// adminDefault), then scripts, upstreams, heartbeats and listeners. load reads the config
// again on Reload. ctx bounds the daemon's life as a whole; call Shutdown to stop it gracefully.
func Start(ctx context.Context, log *slog.Logger, cfg *config.File, load func() (*config.File, error), adminDefault string) (*Daemon, error) {
	d := New(log, cfg, load, nil)
	if err := d.Serve(ctx, &cfg.Common, adminDefault, func() error { return d.apply(ctx, cfg) }); err != nil {
		return nil, err
	}
	if len(cfg.Listeners) == 0 {
		log.Info("no listeners configured: serving the admin protocol only; give --listen PORT or a config file with listeners")
	}
	return d, nil
}

// Serve starts the HTTP endpoint and the admin port, then apply (the first config); if apply
// fails the daemon is shut down.
func (d *Daemon) Serve(ctx context.Context, common *config.Common, adminDefault string, apply func() error) error {
	if err := d.StartEndpoints(ctx, common, adminDefault); err != nil {
		return err
	}
	if err := apply(); err != nil {
		d.Shutdown(context.Background())
		return err
	}
	return nil
}

// apply makes the daemon match cfg, all or nothing (see Prepare).
func (d *Daemon) apply(ctx context.Context, cfg *config.File) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	ch, err := d.PrepareConfig(ctx, cfg)
	if err != nil {
		return err
	}
	ch.Commit(ctx)
	return nil
}

// Change is a config prepared against the running daemon: the scripts directory read and
// compiled, the new listeners bound; nothing serves differently until Commit.
type Change struct {
	d    *Daemon
	cfg  *config.File
	dir  map[string]*script.Module
	core *daemon.Change
}

// PrepareConfig prepares cfg (see Change); on error nothing changed. The caller serialises
// applies and must Commit or Abort.
func (d *Daemon) PrepareConfig(ctx context.Context, cfg *config.File) (*Change, error) {
	dir, err := script.ReadDir(cfg.Scripts.Dir)
	if err != nil {
		return nil, err
	}
	core, err := d.Prepare(ctx, &cfg.Common, cfg.Listeners)
	if err != nil {
		return nil, err
	}
	return &Change{d: d, cfg: cfg, dir: dir, core: core}, nil
}

// Abort drops the change.
func (ch *Change) Abort() { ch.core.Abort() }

// Commit installs the scripts, the script settings and the common parts.
func (ch *Change) Commit(ctx context.Context) {
	d, cfg := ch.d, ch.cfg
	d.installScripts(cfg.Scripts.Dir, ch.dir)
	limits := script.Limits{Timeout: cfg.Scripts.Timeout, LogTimeout: cfg.Scripts.LogTimeout}
	if n, err := script.ParseSize(cfg.Scripts.MaxHeap); err == nil { // validated with the config
		limits.MaxHeap = uint64(n)
	}
	d.Scripts.SetLimits(limits)
	for name, size := range cfg.SharedDicts {
		n, _ := script.ParseSize(size) // validated with the config
		d.Scripts.Dicts.Define(name, n)
	}
	ch.core.Commit(ctx)
}

// installScripts installs the directory's scripts whose file is new or changed since the last
// load, and uninstalls those whose file is gone; scripts loaded over the admin protocol under
// a name whose file did not change stay.
func (d *Daemon) installScripts(dir string, found map[string]*script.Module) {
	versions := make(map[string]string, len(found))
	for name, m := range found {
		versions[name] = m.Version
	}
	set, gone := d.dirScripts.Diff(versions)
	if len(set)+len(gone) == 0 {
		return
	}
	install := make([]*script.Module, len(set))
	for i, name := range set {
		install[i] = found[name]
		d.Log.Info("script loaded", "name", name, "dir", dir)
		if strings.HasPrefix(name, "script.") { // a hook: its runs are counted from now
			for _, result := range []string{"ok", "exit", "error"} {
				d.Metrics.ScriptRuns.WithLabelValues(name, result)
			}
		}
	}
	for _, name := range gone {
		d.Log.Info("script removed with its file", "name", name)
	}
	d.Code.Replace(install, gone)
	d.dirScripts.Commit(versions)
}
