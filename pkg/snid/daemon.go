// Package snid is sni-router: a daemon.Core whose hooks route raw TLS by ClientHello server
// name, and its command line.
package snid

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
	router *sni.Router
	load   func() (*config.SNIFile, error)

	mu         sync.Mutex // serialises applies
	fileRoutes map[string]bool
}

// Start builds the router from the config load returns and starts serving.
func Start(ctx context.Context, log *slog.Logger, load func() (*config.SNIFile, error)) (*Daemon, error) {
	cfg, err := load()
	if err != nil {
		return nil, err
	}
	d := &Daemon{router: &sni.Router{Routes: &sni.Table{}, Logger: log.With("component", "sni")}, load: load}
	d.Core = daemon.NewCore(log, &cfg.Common, d.router)
	daemon.RegisterRoute(d.Mux, d.router.Routes)
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
	d.router.SetLimits(sni.Limits{MaxHello: cfg.SNI.MaxHello, HelloTimeout: cfg.SNI.HelloTimeout})
	d.router.Routes.SetAllow(cfg.AllowList)
	for _, pattern := range slices.Sorted(maps.Keys(cfg.Routes)) {
		if err := d.router.Routes.Put(pattern, cfg.Routes[pattern]); err != nil {
			return fmt.Errorf("route %q: %w", pattern, err)
		}
	}
	for pattern := range d.fileRoutes {
		if _, ok := cfg.Routes[pattern]; !ok {
			d.router.Routes.Delete(pattern)
			d.Log.Info("route removed with the config", "route", pattern)
		}
	}
	d.fileRoutes = make(map[string]bool, len(cfg.Routes))
	for pattern := range cfg.Routes {
		d.fileRoutes[pattern] = true
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

// Reload re-reads the configuration and applies it without dropping connections.
func (d *Daemon) Reload(ctx context.Context) error {
	cfg, err := d.load()
	if err != nil {
		return fmt.Errorf("reload: %w", err)
	}
	return d.apply(ctx, cfg)
}
