// Package snirouter is sni-router: a daemon.Core whose hooks (Router) route raw TLS by
// ClientHello server name, the route admin topic, and its command line.
package snirouter

import (
	"context"
	"encoding/json"
	"log/slog"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/slardar-go/slardar/pkg/config"
	"github.com/slardar-go/slardar/pkg/daemon"
	"github.com/slardar-go/slardar/pkg/metrics"
	"github.com/slardar-go/slardar/pkg/sni"
)

// Defaults of sni-router.
const (
	DefaultAdminListen = "127.0.0.1:1897"
	DefaultHTTPListen  = "127.0.0.1:1997"
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
	d.Reloader.Record = d.RecordReload
	routed := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: metrics.Namespace, Name: "sni_routes_total",
		Help: "Connections by route (its pattern; empty when none matched) and result: routed, no_route, bad_hello (no readable ClientHello), forbidden (a target outside the allow-list)."},
		[]string{"route", "result"})
	d.Prom.MustRegister(routed)
	for _, result := range []string{"no_route", "bad_hello"} {
		routed.WithLabelValues("", result)
	}
	d.router.Routed = func(route, result string) { routed.WithLabelValues(route, result).Inc() }
	registerRoute(d.Mux, d.router.Routes)
	if err := d.StartEndpoints(ctx, &cfg.Common, DefaultAdminListen); err != nil {
		return nil, err
	}
	if err := d.apply(ctx, cfg); err != nil {
		d.Shutdown(context.Background())
		return nil, err
	}
	return d, nil
}

// apply makes the router match cfg, all or nothing: the new listeners are bound first, then
// the hello limits, the allow-list, the routes and the common parts change. Routes the file
// defines anew or differently are put, routes that left it are deleted, and the others (and
// routes set over the admin protocol) stay as they are.
func (d *Daemon) apply(ctx context.Context, cfg *config.SNIFile) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	listen := cfg.Listen
	if len(listen) == 0 {
		listen = []string{DefaultListen}
	}
	var listeners []config.Listener
	for _, addr := range listen {
		listeners = append(listeners, config.Listener{Listen: addr})
	}
	defs := make(map[string]string, len(cfg.Routes))
	for pattern, r := range cfg.Routes {
		b, _ := json.Marshal(r)
		defs[pattern] = string(b)
	}
	ch, err := d.Prepare(ctx, &cfg.Common, listeners)
	if err != nil {
		return err
	}
	d.router.SetLimits(Limits{MaxHello: cfg.SNI.MaxHello, HelloTimeout: cfg.SNI.HelloTimeout})
	d.router.Routes.SetAllow(cfg.AllowList)
	set, gone := d.fileRoutes.Diff(defs)
	for _, pattern := range set {
		d.router.Routes.Put(pattern, cfg.Routes[pattern]) // checked against this allow-list by Finish
	}
	for _, pattern := range gone {
		d.router.Routes.Delete(pattern)
		d.Log.Info("route removed with the config", "route", pattern)
	}
	d.fileRoutes.Commit(defs)
	ch.Commit(ctx)
	return nil
}
