// Package snirouter is sni-router: a daemon.Core whose hooks (Router) route raw TLS by
// ClientHello server name, the route admin topic, and its command line.
package snirouter

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"

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

// Daemon is a running sni-router: a daemon.Core whose hooks route by server name, and the
// routes of the config file as its part.
type Daemon struct {
	*daemon.Daemon[*config.SNIFile]
	router     *Router
	fileRoutes daemon.FromFile
}

// Start builds the router from cfg and starts serving; load reads the config again on Reload.
func Start(ctx context.Context, log *slog.Logger, cfg *config.SNIFile, load func() (*config.SNIFile, error)) (*Daemon, error) {
	d := &Daemon{router: &Router{Routes: &sni.Table{}}}
	d.Daemon = daemon.New(daemon.Spec[*config.SNIFile]{Log: log, Hooks: d.router, AdminListen: DefaultAdminListen,
		Load: load, Common: commonOf}, cfg)
	routed := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: metrics.Namespace, Name: "sni_routes_total",
		Help: "Connections by route (its pattern; empty when none matched) and result: routed, no_route, bad_hello (no readable ClientHello), forbidden (a target outside the allow-list)."},
		[]string{"route", "result"})
	d.Prom.MustRegister(routed)
	for _, result := range []string{"no_route", "bad_hello"} {
		routed.WithLabelValues("", result)
	}
	d.router.Routed = func(route, result string) { routed.WithLabelValues(route, result).Inc() }
	registerRoute(d.Mux, d.router.Routes)
	d.Add(daemon.PartFunc[*config.SNIFile](d.prepareRoutes))
	if err := d.Start(ctx, cfg); err != nil {
		return nil, err
	}
	return d, nil
}

// commonOf is the Core's share of cfg: its listeners are the listen addresses (default :443).
func commonOf(cfg *config.SNIFile) (*config.Common, []config.Listener) {
	listen := cfg.Listen
	if len(listen) == 0 {
		listen = []string{DefaultListen}
	}
	listeners := make([]config.Listener, 0, len(listen))
	for _, addr := range listen {
		listeners = append(listeners, config.Listener{Listen: addr})
	}
	return &cfg.Common, listeners
}

// prepareRoutes is the routes part: at commit the hello limits, the allow-list and the routes
// change. Routes the file defines anew or differently are put, routes that left it are
// deleted, and the others (and routes set over the admin protocol) stay as they are.
func (d *Daemon) prepareRoutes(_ context.Context, cfg *config.SNIFile) (func(), error) {
	defs := make(map[string]string, len(cfg.Routes))
	for pattern, r := range cfg.Routes {
		b, err := json.Marshal(r)
		if err != nil {
			return nil, fmt.Errorf("route %q: %w", pattern, err)
		}
		defs[pattern] = string(b)
	}
	return func() {
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
	}, nil
}
