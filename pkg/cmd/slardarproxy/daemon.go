// Package slardarproxy is slardar-proxy: the L4 balancer daemon (a daemon.Core whose hooks are
// Lua scripts) and its command line.
package slardarproxy

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/slardar-go/slardar/pkg/config"
	"github.com/slardar-go/slardar/pkg/daemon"
	"github.com/slardar-go/slardar/pkg/script"
)

// DefaultAdminListen is slardar-proxy's admin address.
const DefaultAdminListen = "127.0.0.1:1895"

// Daemon is a running slardar-proxy: a daemon.Core whose hooks are Lua scripts.
type Daemon struct {
	*daemon.Core
	code                          *script.Code
	scripts                       *script.Runtime
	daemon.Reloader[*config.File] // SIGHUP: the config read again (file + flags) and applied

	mu         sync.Mutex // serialises applies
	dirScripts daemon.FromFile
}

// Start builds the daemon from cfg and starts serving: admin first, then scripts, upstreams,
// heartbeats and listeners. load reads the config again on Reload. ctx bounds the daemon's life
// as a whole; call Shutdown to stop it gracefully.
func Start(ctx context.Context, log *slog.Logger, cfg *config.File, load func() (*config.File, error)) (*Daemon, error) {
	d := &Daemon{code: &script.Code{}}
	d.Reloader = daemon.Reloader[*config.File]{Load: load, Use: d.apply}
	d.scripts = &script.Runtime{Code: d.code, Dicts: &script.Dicts{}, Logger: log.With("component", "script")}
	d.Core = daemon.NewCore(log, &cfg.Common, d.scripts)
	d.code.Register(d.Mux)
	if err := d.StartAdmin(ctx, cfg.Admin, DefaultAdminListen); err != nil {
		return nil, err
	}
	if err := d.apply(ctx, cfg); err != nil {
		d.Shutdown(context.Background())
		return nil, err
	}
	if len(cfg.Listeners) == 0 {
		log.Info("no listeners configured: serving the admin protocol only; give --listen PORT or a config file with listeners")
	}
	return d, nil
}

// apply makes the daemon match cfg, all or nothing: the scripts directory is read and
// compiled and the new listeners are bound first; only when all of that worked do the scripts,
// the script settings and the common parts change.
func (d *Daemon) apply(ctx context.Context, cfg *config.File) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	dir, err := readScriptDir(cfg.Scripts.Dir)
	if err != nil {
		return err
	}
	ch, err := d.Prepare(ctx, &cfg.Common, cfg.Listeners)
	if err != nil {
		return err
	}
	d.installScripts(cfg.Scripts.Dir, dir)
	limits := script.Limits{Timeout: cfg.Scripts.Timeout, LogTimeout: cfg.Scripts.LogTimeout}
	if n, err := script.ParseSize(cfg.Scripts.MaxHeap); err == nil { // validated with the config
		limits.MaxHeap = uint64(n)
	}
	d.scripts.SetLimits(limits)
	for name, size := range cfg.SharedDicts {
		n, _ := script.ParseSize(size) // validated with the config
		d.scripts.Dicts.Define(name, n)
	}
	ch.Commit(ctx)
	return nil
}

// readScriptDir reads and compiles every *.lua file of dir (module name: the file name less
// .lua). A file that does not compile fails the whole read.
func readScriptDir(dir string) (map[string]*script.Module, error) {
	found := make(map[string]*script.Module)
	if dir == "" {
		return found, nil
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("scripts.dir: %w", err)
	}
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), ".lua")
		if !ok || e.IsDir() {
			continue
		}
		src, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("scripts.dir: %w", err)
		}
		if found[name], err = script.NewModule(name, src); err != nil {
			return nil, fmt.Errorf("scripts.dir %s: %w", e.Name(), err)
		}
	}
	return found, nil
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
	}
	for _, name := range gone {
		d.Log.Info("script removed with its file", "name", name)
	}
	d.code.Replace(install, gone)
	d.dirScripts.Commit(versions)
}
