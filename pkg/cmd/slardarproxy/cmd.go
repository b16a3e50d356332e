// Package slardarproxy is slardar-proxy's command line: the L4 balancer daemon is a
// daemon.Core whose hooks are Lua scripts (daemon.Scripts).
package slardarproxy

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/slardar-go/slardar/pkg/admin"
	"github.com/slardar-go/slardar/pkg/cmdutil"
	"github.com/slardar-go/slardar/pkg/config"
	"github.com/slardar-go/slardar/pkg/daemon"
	"github.com/slardar-go/slardar/pkg/lifecycle"
	"github.com/slardar-go/slardar/pkg/units"
	"github.com/slardar-go/slardar/pkg/version"
)

// DefaultAdminListen is slardar-proxy's admin address.
const DefaultAdminListen = admin.DefaultAddr

// DefaultHTTPListen serves /metrics, /livez and /readyz: the original Slardar's HTTP admin port.
const DefaultHTTPListen = "127.0.0.1:1995"

// Daemon is a running slardar-proxy: a daemon.Core whose hooks are Lua scripts.
type Daemon struct {
	*daemon.Daemon[*config.File]
	Scripts *daemon.Scripts
}

// Start builds slardar-proxy from cfg and starts serving: admin first (on cfg's address, or
// DefaultAdminListen), then scripts, upstreams, heartbeats and listeners. load reads the config
// again on SIGHUP (nil: a reload is refused).
func Start(ctx context.Context, log *slog.Logger, cfg *config.File, load func() (*config.File, error)) (*Daemon, error) {
	scripts := daemon.NewScripts(log)
	d := &Daemon{Scripts: scripts, Daemon: daemon.New(daemon.Spec[*config.File]{Log: log, Hooks: scripts.Runtime,
		AdminListen: DefaultAdminListen, Load: load, Common: commonOf}, cfg)}
	scripts.Attach(d.Core)
	d.Add(scripts)
	if err := d.Start(ctx, cfg); err != nil {
		return nil, err
	}
	if len(cfg.Listeners) == 0 {
		log.Info("no listeners configured: serving the admin protocol only; give --listen PORT or a config file with listeners")
	}
	return d, nil
}

func commonOf(cfg *config.File) (*config.Common, []config.Listener) {
	return &cfg.Common, cfg.Listeners
}

// Options are slardar-proxy's flags; set flags override the config file.
type Options struct {
	lifecycle.CommonFlags
	Listens     []string
	SharedDicts []string
	ScriptsDir  string
}

// NewCommand builds the slardar-proxy root command.
func NewCommand() *cobra.Command {
	o := &Options{}
	cmd := &cobra.Command{
		Use:   "slardar-proxy",
		Short: "L4 TCP balancer with checkups health checks, managed over the Slardar admin protocol",
		Long: `slardar-proxy balances TCP connections over upstreams named, as in the original Slardar, by
the port they are served on: a connection to port 3131 goes to upstream "3131". Upstreams use the
lua-resty-checkups model (levels, weights, round robin or consistent hash, passive and active
health checks) and are changed at run time over the admin protocol on 127.0.0.1:1895 with
slardarctl, store-sync or plain nc, without a restart.

Signals: SIGTERM/SIGINT stop accepting and let open connections finish (proxy.shutdown_grace,
30s by default); SIGHUP re-reads the config file without dropping connections.

` + cmdutil.EnvHelp,
		Example: `  slardar-proxy --config /etc/slardar/slardar.yaml
  slardar-proxy --listen 127.0.0.1:3131
  slardar-proxy --listen 3306=mysql --admin-listen 127.0.0.1:1895`,
		Args:    cobra.NoArgs,
		Version: version.Version,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return o.run(cmd)
		},
	}
	cmd.SetVersionTemplate(version.Template)
	f := cmd.Flags()
	o.CommonFlags.Register(f, DefaultAdminListen, DefaultHTTPListen, "listeners, upstreams, scripts, checkups, admin, http, log")
	f.StringArrayVarP(&o.Listens, "listen", "l", nil, "data listener PORT or HOST:PORT, optionally =UPSTREAM (default upstream: the port); repeatable")
	f.StringArrayVar(&o.SharedDicts, "shared-dict", nil, "declare an ngx.shared dictionary NAME=SIZE (e.g. stream_limit_req_store=10m); repeatable")
	f.StringVar(&o.ScriptsDir, "scripts-dir", "", "directory of *.lua scripts and modules loaded at start and on SIGHUP")
	return cmd
}

// run is the daemon's life (lifecycle.Run): the config loaded and validated once, then served
// until a signal.
func (o *Options) run(cmd *cobra.Command) error {
	return lifecycle.Run(cmd, o.Check, func() (*config.File, error) { return o.config(cmd.Flags()) }, Start)
}

// config reads the effective configuration: the file, if any, with the set flags on top.
func (o *Options) config(fl *pflag.FlagSet) (*config.File, error) {
	cfg, err := lifecycle.Load(&o.CommonFlags, fl, config.Load)
	if err != nil {
		return nil, err
	}
	if err := cfg.AddListeners(o.Listens); err != nil {
		return nil, err
	}
	for _, sd := range o.SharedDicts {
		name, size, err := config.ParseSharedDict(sd)
		if err != nil {
			return nil, fmt.Errorf("--shared-dict: %w", err)
		}
		if cfg.SharedDicts == nil {
			cfg.SharedDicts = make(map[string]units.Size)
		}
		cfg.SharedDicts[name] = size
	}
	if fl.Changed("scripts-dir") {
		cfg.Scripts.Dir = o.ScriptsDir
	}
	return cfg, nil
}
