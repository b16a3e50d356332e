package snirouter

import (
	"fmt"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/slardar-go/slardar/pkg/cmdutil"
	"github.com/slardar-go/slardar/pkg/config"
	"github.com/slardar-go/slardar/pkg/lifecycle"
	"github.com/slardar-go/slardar/pkg/version"
)

// Options are sni-router's flags; set flags override the config file.
type Options struct {
	lifecycle.CommonFlags
	Listens []string
	Allow   []string
}

// NewCommand builds the sni-router root command.
func NewCommand() *cobra.Command {
	o := &Options{}
	cmd := &cobra.Command{
		Use:   "sni-router",
		Short: "Route raw TLS by ClientHello server name, without terminating it",
		Long: `sni-router reads the server name (and ALPN list) of each connection's TLS ClientHello without
consuming it, picks a route and splices the untouched connection to the backend: a checkups
upstream (balancing, health checks and retry as in slardar-proxy) or an address template such as
$sni:443 or ${1}.internal:8443 (the talk's proxy_pass $ssl_preread_server_name:$server_port),
which must pass the allow-list, so the router is never an open proxy.

Routes: exact names, *.example.com (exactly one label in place of the star), ~regexp (whole
name; captures usable in the target), default. Unmatched names get a TLS unrecognized_name
alert. Routes and upstreams change at run time over the admin protocol (PUT/DELETE route,
GET route info; PUT upstream ...) and with slardarctl route/upstream --addr 127.0.0.1:1897.

Signals: SIGTERM/SIGINT drain, SIGHUP reloads the config file.

` + cmdutil.EnvHelp,
		Example: `  sni-router --config /etc/slardar/sni-router.yaml
  sni-router --listen 127.0.0.1:8443 --allow '*.internal:443'`,
		Args:    cobra.NoArgs,
		Version: version.Version,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return o.run(cmd)
		},
	}
	cmd.SetVersionTemplate(version.Template)
	f := cmd.Flags()
	o.CommonFlags.Register(f, DefaultAdminListen, DefaultHTTPListen, "listen, routes, upstreams, sni, admin, http, log")
	f.StringArrayVarP(&o.Listens, "listen", "l", nil, "data address PORT or HOST:PORT; repeatable (default :443)")
	f.StringArrayVar(&o.Allow, "allow", nil, "allow targets HOST:PORT, *.DOMAIN:PORT or ~REGEXP (port may be *); repeatable")
	return cmd
}

// run is the daemon's life (lifecycle.Run): the config loaded and validated once, then served
// until a signal.
func (o *Options) run(cmd *cobra.Command) error {
	return lifecycle.Run(cmd, o.Check, func() (*config.SNIFile, error) { return o.config(cmd.Flags()) }, Start)
}

// config reads the effective configuration: the file, if any, with the set flags on top.
func (o *Options) config(fl *pflag.FlagSet) (*config.SNIFile, error) {
	cfg, err := lifecycle.Load(&o.CommonFlags, fl, config.ReadSNI)
	if err != nil {
		return nil, err
	}
	if fl.Changed("listen") {
		cfg.Listen = append([]string(nil), o.Listens...)
	}
	cfg.SNI.Allow = append(cfg.SNI.Allow, o.Allow...)
	if err := cfg.Finish(); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return cfg, nil
}
