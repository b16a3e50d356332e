package daemon

import (
	"context"
	"log/slog"
	"sync"

	"github.com/slardar-go/slardar/pkg/config"
	"github.com/slardar-go/slardar/pkg/l4"
	"github.com/slardar-go/slardar/pkg/lifecycle"
)

// A Part is a piece of a daemon beside its Core that the configuration C sets: the scripts
// directory, the SNI routes, the MySQL users and sessions. Prepare checks and readies its share
// of cfg without changing what serves (a file read, a script compiled, a table built) and
// returns what makes it take effect; a reload whose Prepare fails anywhere changes nothing.
type Part[C any] interface {
	Prepare(ctx context.Context, cfg C) (commit func(), err error)
}

// PartFunc is a Part made of its Prepare.
type PartFunc[C any] func(ctx context.Context, cfg C) (commit func(), err error)

// Prepare implements Part.
func (f PartFunc[C]) Prepare(ctx context.Context, cfg C) (func(), error) { return f(ctx, cfg) }

// PartOf is p for a configuration that holds p's: get finds it (mysql-proxy's file holds
// slardar-proxy's).
func PartOf[C, D any](p Part[D], get func(C) D) Part[C] {
	return PartFunc[C](func(ctx context.Context, cfg C) (func(), error) { return p.Prepare(ctx, get(cfg)) })
}

// Daemon is a Core and the Parts a configuration C sets, applied together all or nothing, at
// start and on each SIGHUP. Each binary is one: slardar-proxy a Core with Scripts, mysql-proxy
// with Scripts and its MySQL part, sni-router with its routes.
type Daemon[C any] struct {
	*Core
	reload   lifecycle.Reloader[C]
	common   func(C) (*config.Common, []config.Listener)
	parts    []Part[C]
	closers  []func()
	adminDef string
	stopOnce sync.Once
}

// Spec is what a binary's daemon is made of.
type Spec[C any] struct {
	Log *slog.Logger
	// Common are the settings of Core (admin, checkups, upstreams, proxy) in cfg, and its data
	// listeners.
	Common func(cfg C) (*config.Common, []config.Listener)
	// Hooks run for each connection (nil: none).
	Hooks l4.Hooks
	// AdminListen is the admin address when the configuration gives none.
	AdminListen string
	// Load reads the configuration again on SIGHUP (nil: a reload is refused).
	Load func() (C, error)
}

// New builds a daemon whose Core runs s.Hooks, from the first configuration's common settings
// (nothing listens yet). Parts are added with Add before Start.
func New[C any](s Spec[C], first C) *Daemon[C] {
	common, _ := s.Common(first)
	d := &Daemon[C]{Core: NewCore(s.Log, common, s.Hooks), common: s.Common, adminDef: s.AdminListen}
	d.reload = lifecycle.Reloader[C]{Load: s.Load, Use: d.apply, Record: d.RecordReload}
	return d
}

// Add adds parts, prepared and committed in this order before the Core's change.
func (d *Daemon[C]) Add(parts ...Part[C]) { d.parts = append(d.parts, parts...) }

// OnShutdown runs f after the Core drained (a part's pool closed).
func (d *Daemon[C]) OnShutdown(f func()) { d.closers = append(d.closers, f) }

// Start serves the HTTP endpoint and the admin port, then applies cfg; if that fails the
// daemon is shut down and the error returned. ctx bounds the daemon's life as a whole; call
// Shutdown to stop it gracefully.
func (d *Daemon[C]) Start(ctx context.Context, cfg C) error {
	common, _ := d.common(cfg)
	if err := d.StartEndpoints(ctx, common, d.adminDef); err != nil {
		return err
	}
	if err := d.reload.Apply(ctx, cfg); err != nil {
		d.Shutdown(context.Background())
		return err
	}
	return nil
}

// Apply makes the daemon match cfg, all or nothing.
func (d *Daemon[C]) Apply(ctx context.Context, cfg C) error { return d.reload.Apply(ctx, cfg) }

// Reload implements lifecycle.Service: the configuration read again and applied.
func (d *Daemon[C]) Reload(ctx context.Context) error { return d.reload.Reload(ctx) }

// Shutdown implements lifecycle.Service: the Core drains (see Core.Shutdown), then what the
// parts asked to close is closed.
func (d *Daemon[C]) Shutdown(ctx context.Context) {
	d.stopOnce.Do(func() {
		d.Core.Shutdown(ctx)
		for _, f := range d.closers {
			f()
		}
	})
}

// apply prepares the Core's change (new listeners bound) and every part's, then commits the
// parts and the Core; a failure anywhere before the commits changes nothing.
func (d *Daemon[C]) apply(ctx context.Context, cfg C) error {
	common, listeners := d.common(cfg)
	ch, err := d.Prepare(ctx, common, listeners)
	if err != nil {
		return err
	}
	commits := make([]func(), 0, len(d.parts))
	for _, p := range d.parts {
		commit, err := p.Prepare(ctx, cfg)
		if err != nil {
			ch.Abort()
			return err
		}
		commits = append(commits, commit)
	}
	for _, commit := range commits {
		commit()
	}
	ch.Commit(ctx)
	return nil
}
