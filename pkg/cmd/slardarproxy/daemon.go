// Package slardarproxy is slardar-proxy: the L4 balancer daemon (a daemon.Core whose hooks are
// Lua scripts) and its command line.
package slardarproxy

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
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

// apply loads the scripts directory and the script settings, then the common parts.
func (d *Daemon) apply(ctx context.Context, cfg *config.File) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.loadScriptDir(cfg.Scripts.Dir); err != nil {
		return err
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
	return d.Apply(ctx, &cfg.Common, cfg.Listeners)
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
		d.Log.Info("script loaded", "name", name, "dir", dir)
	}
	for _, name := range d.dirScripts.Replace(maps.Keys(found)) {
		d.code.Delete(name)
		d.Log.Info("script removed with its file", "name", name)
	}
	return nil
}
