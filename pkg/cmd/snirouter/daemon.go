// Package snirouter is sni-router: a daemon.Core whose hooks (Router) route raw TLS by
// ClientHello server name, the route admin topic, and its command line.
package snirouter

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"

	"github.com/slardar-go/slardar/pkg/config"
	"github.com/slardar-go/slardar/pkg/daemon"
	"github.com/slardar-go/slardar/pkg/sni"
)

// Defaults of sni-router.
const (
	DefaultAdminListen = "127.0.0.1:1897"
	DefaultListen      = ":443"
)

// Daemon is a running sni-router.
type Daemon struct {
	*daemon.Core
	router                           *Router
	daemon.Reloader[*config.SNIFile] // SIGHUP: the config read again (file + flags) and applied

	mu         sync.Mutex // serialises applies
	fileRoutes daemon.FromFile
}

// Start builds the router from cfg and starts serving; load reads the config again on Reload.
func Start(ctx context.Context, log *slog.Logger, cfg *config.SNIFile, load func() (*config.SNIFile, error)) (*Daemon, error) {
	d := &Daemon{router: &Router{Routes: &sni.Table{}}}
	d.Reloader = daemon.Reloader[*config.SNIFile]{Load: load, Use: d.apply}
	d.Core = daemon.NewCore(log, &cfg.Common, d.router)
	registerRoute(d.Mux, d.router.Routes)
	if err := d.StartAdmin(ctx, cfg.Admin, DefaultAdminListen); err != nil {
		return nil, err
	}
	if err := d.apply(ctx, cfg); err != nil {
		d.Shutdown(context.Background())
		return nil, err
	}
	return d, nil
}

// apply sets the hello limits, the allow-list and the routes from the config (routes that came
// from an earlier config and left it are deleted; routes set over the admin protocol stay),
// then the common parts.
func (d *Daemon) apply(ctx context.Context, cfg *config.SNIFile) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.router.SetLimits(Limits{MaxHello: cfg.SNI.MaxHello, HelloTimeout: cfg.SNI.HelloTimeout})
	d.router.Routes.SetAllow(cfg.AllowList)
	for _, pattern := range slices.Sorted(maps.Keys(cfg.Routes)) {
		if err := d.router.Routes.Put(pattern, cfg.Routes[pattern]); err != nil {
			return fmt.Errorf("route %q: %w", pattern, err)
		}
	}
	for _, pattern := range d.fileRoutes.Replace(maps.Keys(cfg.Routes)) {
		d.router.Routes.Delete(pattern)
		d.Log.Info("route removed with the config", "route", pattern)
	}
	listen := cfg.Listen
	if len(listen) == 0 {
		listen = []string{DefaultListen}
	}
	var listeners []config.Listener
	for _, addr := range listen {
		listeners = append(listeners, config.Listener{Listen: addr})
	}
	return d.Apply(ctx, &cfg.Common, listeners)
}
